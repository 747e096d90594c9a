"""The pool, the target examples and the held-out evaluation sets of the pretraining experiment.

Target = GSM8K. Selection targets are GSM8K documents whose `source_split` is ``train``; target evaluation
documents are those whose split is ``heldout`` (disjoint by construction). The pool mixes real non-GSM8K text:
WordNet glosses, KJV passages (consecutive verses joined), GCIDE entries, HumanEval and MMLU. Each source is put
in a fixed order by ``sha256(f"{seed}:{source}:{key}")``; the first ``n`` documents go to the pool, the next
``n_general_eval`` to the held-out general mix, so pool and general evaluation never share a document. Any pool or
general-evaluation document sharing a whitespace 13-gram with ANY GSM8K text (both splits) is dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from nag_datasets.ordering import seeded_key

NGRAM = 13
POOL_SOURCES = ("wordnet", "kjv", "gcide", "humaneval", "mmlu")


@dataclass
class Corpus:
    pool_texts: list[str]
    pool_sources: list[str]
    target_select: list[str]
    target_eval: list[str]
    general_eval: list[str]
    dropped_contaminated: int = 0
    notes: dict[str, int] = field(default_factory=dict)


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The set of whitespace-token n-grams of ``text`` (empty when it has fewer than ``n`` tokens)."""
    words = text.split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def ngram_index(texts: Iterable[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for t in texts:
        out |= ngrams(t, n)
    return out


def _order(items: Iterable[tuple[str, str]], source: str, seed: int) -> list[str]:
    """Texts of ``(key, text)`` items, ordered by a seeded hash of the key."""
    keyed = [(seeded_key(seed, f"{source}:{k}"), t) for k, t in items]
    return [t for _, t in sorted(keyed)]


def _source_items(source: str, scan: int, kjv_verses_per_doc: int) -> Iterator[tuple[str, str]]:
    from nag_datasets.demo_data import iter_source_documents

    from .. import corpora

    if source == "wordnet":
        for g in itertools.islice(corpora.wordnet_glosses(), scan):
            yield f"{g.headword}/{g.pos}/{g.gloss[:40]}", f"{g.headword}: {g.gloss}"
    elif source == "gcide":
        for i, e in enumerate(itertools.islice(corpora.gcide_entries(), scan)):
            yield f"{i}", e.text.strip()
    elif source == "kjv":
        verses = list(itertools.islice(corpora.kjv_verses(), scan * kjv_verses_per_doc))
        for i in range(0, len(verses) - kjv_verses_per_doc + 1, kjv_verses_per_doc):
            chunk = verses[i:i + kjv_verses_per_doc]
            yield chunk[0].reference, " ".join(v.text for v in chunk)
    elif source in ("humaneval", "mmlu"):
        for row in iter_source_documents(source):  # small sources: always read whole
            yield row["id"], row["text"]
    else:
        raise ValueError(f"unknown pool source {source!r}; choose from {POOL_SOURCES}")


def build_corpus(pool_per_source: dict[str, int], *, n_target_select: int, n_target_eval: int,
                 n_general_eval: int, scan: int, kjv_verses_per_doc: int = 5, seed: int = 0) -> Corpus:
    """Build the pool and the evaluation sets (see the module docstring). Deterministic in its arguments."""
    from nag_datasets.demo_data import iter_source_documents

    gsm = list(iter_source_documents("gsm8k"))
    gsm_grams = ngram_index(r["text"] for r in gsm)
    ordered_gsm = _order(((r["id"], r["text"]) for r in gsm), "gsm8k", seed)
    split_of = {r["text"]: r["split"] for r in gsm}
    target_select = [t for t in ordered_gsm if split_of[t] == "train"][:n_target_select]
    target_eval = [t for t in ordered_gsm if split_of[t] == "heldout"][:n_target_eval]
    if len(target_select) < n_target_select or len(target_eval) < n_target_eval:
        raise ValueError("not enough GSM8K documents for the requested target sizes")

    pool_texts: list[str] = []
    pool_sources: list[str] = []
    general: list[str] = []
    dropped = 0
    notes: dict[str, int] = {}
    for source, n in pool_per_source.items():
        seen: set[str] = set()
        clean: list[str] = []
        for text in _order(_source_items(source, scan, kjv_verses_per_doc), source, seed):
            if not text.strip() or text in seen:
                continue
            seen.add(text)
            if ngrams(text) & gsm_grams:
                dropped += 1
                continue
            clean.append(text)
            if len(clean) >= n + n_general_eval:
                break
        if len(clean) < n + n_general_eval:
            raise ValueError(f"source {source!r} has {len(clean)} usable documents, {n + n_general_eval} needed "
                             f"(raise `scan` or lower the per-source count)")
        pool_texts += clean[:n]
        pool_sources += [source] * n
        general += clean[n:n + n_general_eval]
        notes[source] = n
    return Corpus(pool_texts, pool_sources, target_select, target_eval, general, dropped, notes)


def shared_ngrams(texts: Sequence[str], reference: Sequence[str], n: int = NGRAM) -> int:
    """How many of ``texts`` share at least one whitespace n-gram with ``reference``."""
    ref = ngram_index(reference, n)
    return sum(1 for t in texts if ngrams(t, n) & ref)
