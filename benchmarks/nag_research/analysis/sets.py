"""Real text sets for the analyses, and featurizing them once into an on-disk cache.

Format-controlled sets keep the surface form fixed and vary the content, so retrieval and clustering cannot key on
format: MMLU questions of different subjects (rendered without the subject), GCIDE entries of different field labels
(with the label itself removed from the text). General text (WordNet glosses, King James Bible passages) serves as
off-target text and as the "generic" side of High-Delta; it never comes from a target's benchmark.

Sampling is deterministic: within each group, documents are ordered by ``sha256(f"{seed}:{id}")``.

Cache: ``<nag_datasets cache>/analysis`` (see
:func:`nag_datasets.storage.cache.cache_root`, the one ``$NAG_DATASETS_CACHE``). A featurized set is stored under a key of the featurizer's configuration,
its model fingerprint and the texts, so any change featurizes again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.ordering import seeded_order

__all__ = [
    "analysis_cache_dir",
    "cached_array",
    "featurize_cached",
    "gcide_field_set",
    "general_text_set",
    "mmlu_subject_set",
    "texts_key",
]

def analysis_cache_dir() -> Path:
    """``<cache root>/analysis`` (see :func:`nag_datasets.storage.cache.cache_root`)."""
    from nag_datasets.storage.cache import cache_root

    return cache_root() / "analysis"


def _order(ids: Sequence[str], seed: int) -> list[int]:
    return seeded_order(ids, seed)


def _dataset(rows: list[dict[str, str]]) -> Any:
    from datasets import Dataset, Features, Value

    columns = ("id", "label", "text")
    features = Features({c: Value("string") for c in columns})
    return Dataset.from_dict({c: [r[c] for r in rows] for c in columns}, features=features)


def _take(groups: dict[str, list[dict[str, str]]], labels: Sequence[str], per_label: int, seed: int,
          offset: int = 0) -> Any:
    rows = []
    for label in labels:
        group = groups.get(label, [])
        order = _order([r["id"] for r in group], seed)[offset:offset + per_label]
        if len(order) < per_label:
            raise ValueError(f"{label!r} has {len(group)} documents, fewer than offset {offset} + {per_label}")
        rows += [{**group[i], "label": label} for i in order]
    return _dataset(rows)


def mmlu_subject_set(subjects: Sequence[str], per_subject: int, *, seed: int = 0, offset: int = 0) -> Any:
    """``per_subject`` MMLU questions of each subject: columns ``id, label`` (the subject) ``, text``.

    ``offset`` skips the first documents of each subject's order, giving disjoint sets for the same seed.
    """
    from nag_datasets.demo_data import iter_source_documents

    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for row in iter_source_documents("mmlu"):
        if row["subject"] in subjects and row["text"] not in seen:
            seen.add(row["text"])
            groups[row["subject"]].append({"id": row["id"], "text": row["text"]})
    return _take(groups, subjects, per_subject, seed, offset)


_GCIDE_MARKUP = re.compile(r"[{}]")


def gcide_field_set(fields: Sequence[str], per_field: int, *, seed: int = 0, offset: int = 0,
                    min_chars: int = 80) -> Any:
    """``per_field`` GCIDE entries of each field label, with every ``(Label)`` removed from the text.

    Entries shorter than ``min_chars`` characters are skipped (bare cross references). Columns ``id, label, text``.
    """
    from ..corpora import gcide_entries

    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for n, entry in enumerate(gcide_entries()):
        if entry.field_label in fields:
            text = _GCIDE_MARKUP.sub("", entry.text.replace(f"({entry.field_label})", "")).strip()
            text = re.sub(r"[ \t]+", " ", text)
            if len(text) >= min_chars:
                groups[entry.field_label].append({"id": f"gcide/{n}", "text": text})
    return _take(groups, fields, per_field, seed, offset)


def general_text_set(n: int, *, seed: int = 0, verses_per_passage: int = 3) -> Any:
    """``n`` general-language documents: half WordNet glosses (``headword: gloss``), half King James passages.

    Columns ``id, label`` (``wordnet`` or ``kjv``) ``, text``.
    """
    from ..corpora import kjv_verses, wordnet_glosses

    glosses = [{"id": f"wordnet/{i}", "text": f"{g.headword}: {g.gloss}"} for i, g in enumerate(wordnet_glosses())]
    verses = list(kjv_verses())
    passages = []
    for i in range(0, len(verses) - verses_per_passage + 1, verses_per_passage):
        chunk = verses[i:i + verses_per_passage]
        if len({(v.book, v.chapter) for v in chunk}) == 1:
            passages.append({"id": f"kjv/{chunk[0].reference}", "text": " ".join(v.text for v in chunk)})
    half = n // 2
    from datasets import concatenate_datasets

    groups = {"wordnet": glosses, "kjv": passages}
    return concatenate_datasets([_take(groups, ["wordnet"], half, seed), _take(groups, ["kjv"], n - half, seed)])


def texts_key(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _featurizer_key(featurizer: Any) -> dict[str, Any]:
    return {
        "source": featurizer.source_key(),
        "neuron_types": list(featurizer.neuron_types),
        "top_k": featurizer.top_k,
        "max_length": featurizer.max_length,
        "layers": featurizer.layers if featurizer.layers is None or isinstance(featurizer.layers, str)
        else list(featurizer.layers),
        "add_special_tokens": featurizer.add_special_tokens,
        "dtype": featurizer.dtype,
        "text_column": featurizer.text_column,
    }


def featurize_cached(ds: Any, featurizer: Any, name: str, *, cache_dir: str | Path | None = None,
                     verbose: bool = True) -> Any:
    """``featurizer.apply(ds)``, stored on disk and reloaded on the next call with the same inputs.

    The key covers the featurizer's configuration and model fingerprint and the dataset's texts; other columns
    are stored as they were on the first call.
    """
    from datasets import load_from_disk

    from nag_datasets.storage.atomic import atomic_dir

    key = json.dumps({"featurizer": _featurizer_key(featurizer),
                      "texts": texts_key(list(ds[featurizer.text_column])), "rows": len(ds)}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else analysis_cache_dir()
    path = folder / "featurized" / f"{name}-{digest}"
    if (path / "dataset_info.json").is_file():
        if verbose:
            print(f"featurized set {name!r}: loaded from cache ({len(ds)} rows)")
        return load_from_disk(str(path))
    import time

    start = time.time()
    out = featurizer.apply(ds, load_from_cache_file=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(path) as tmp:
        out.save_to_disk(str(tmp))
    if verbose:
        tokens = int(np.sum(out["nag_tokens"]))
        print(f"featurized set {name!r}: {len(ds)} rows, {tokens} tokens in {time.time() - start:.0f} s")
    return load_from_disk(str(path))


def cached_array(name: str, key: dict[str, Any], compute: Callable[[], np.ndarray], *,
                 cache_dir: str | Path | None = None) -> np.ndarray:
    """``compute()`` stored as ``.npy`` under a hash of ``key`` (e.g. model fingerprint, texts key, settings)."""
    from nag_datasets.storage.atomic import atomic_write_bytes

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = Path(cache_dir) if cache_dir is not None else analysis_cache_dir()
    path = folder / "arrays" / f"{name}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    value = np.asarray(compute())
    import io

    buf = io.BytesIO()
    np.save(buf, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return value
