"""One forward pass, two signals: a profile that scores with the embedding signal, alone or fused with NAG.

:meth:`NAGProfile.contrast <nag_datasets.scoring.target_profile.NAGProfile.contrast>` makes a :class:`FusedProfile`
when target and background keep their rows' embeddings (data featurized with ``embedding="last"``):

- ``signal="embedding"``: ``s(x)``, the embedding model's score (:mod:`.embedding_model`: by default a logistic
  regression of the target rows against the background rows on centred unit embeddings; its log-odds);
- ``signal="hybrid"`` (the shipped default, the retrieval harness's pick):
  ``nag_weight * z(NAG) + (1 - nag_weight) * z(s)``, ``nag_weight=0.2``. ``NAG`` is the contrastive profile's score
  (:class:`~nag_datasets.scoring.contrastive.ContrastiveProfile`, float32, taken as float64), and each ``z`` uses
  the mean and population standard deviation of the *background sample's rows' own scores* (NAG: the contrastive
  profile scores those rows; ``s``: the fitted model scores them, in sample); a deviation that is zero or not finite
  becomes 1. Nothing of the pool being scored enters, so a row's score is the same in every entry point and batch.

Scores are float32, in ``nag_contrast_score`` like a contrastive profile's (only their order means anything); the
signal is recorded in the profile's summary, hence in reports, score columns, recipes and cards. A row lacking either
column's value (null signature or null embedding) scores NaN (outside the pool).

>>> fuse_scores(np.array([1.0, 3.0], np.float32), np.array([0.0, 2.0]), 0.5, (2.0, 1.0), (1.0, 2.0)).tolist()
[-0.75, 0.75]
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, WrongTypeError
from ..signatures.arrow import row_indices, table_column, table_length
from ..signatures.embedding_column import (
    EMBEDDING_COLUMN,
    EMBEDDING_FIX,
    check_embedding_column,
    embedding_blocks,
)
from ..signatures.embedding_spec import EmbeddingSpec
from ..signatures.spec_column import check_dataset_column, refuse_split_dict
from .contrastive import CONTRAST_SCORE_COLUMN, Contrasted, ContrastiveProfile
from .embedding_model import EMBEDDING_MODELS, EmbeddingModel, fit_embedding_model
from .map_callables import ScoreReport
from .profile_base import FULL_TABLE_SHARE, Profile, score_dataset_column
from .profile_files import EMBEDDING_FORMAT_VERSION, ProfileError

__all__ = ["DEFAULT_NAG_WEIGHT", "FUSED_SIGNALS", "SIGNALS", "FusedProfile", "background_stats", "fuse_scores",
           "score_embedding_column"]

#: Every signal a contrastive profile can score with; the fused ones are made here.
SIGNALS = ("nag", "embedding", "hybrid")
FUSED_SIGNALS = ("embedding", "hybrid")
#: The weight on z(NAG) in the hybrid (the harness's pick: 0.2 z(NAG) + 0.8 z(embedding model)).
DEFAULT_NAG_WEIGHT = 0.2


def background_stats(scores: Any) -> tuple[float, float]:
    """``(mean, std)`` of background rows' scores in float64, ``std`` the population one (``ddof=0``); a ``std``
    that is zero or not finite becomes 1.0 (z-scoring then only shifts).

    >>> background_stats([1.0, 1.0])
    (1.0, 1.0)
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0 or not np.isfinite(s).all():
        raise ProfileError("z-statistics need a non-empty set of finite background scores")
    mean, std = float(s.mean()), float(s.std())
    return mean, (std if np.isfinite(std) and std > 0 else 1.0)


def fuse_scores(nag: np.ndarray, emb: np.ndarray, nag_weight: float, nag_stats: tuple[float, float],
                emb_stats: tuple[float, float]) -> np.ndarray:
    """``w * (nag - m_n) / s_n + (1 - w) * (emb - m_e) / s_e`` element by element in float64, as float32 (NaN where
    either is NaN)."""
    z_nag = (np.asarray(nag, dtype=np.float64) - nag_stats[0]) / nag_stats[1]
    z_emb = (np.asarray(emb, dtype=np.float64) - emb_stats[0]) / emb_stats[1]
    return (nag_weight * z_nag + (1.0 - nag_weight) * z_emb).astype(np.float32)


def score_embedding_column(ds: Any, column: str, spec: EmbeddingSpec, model: EmbeddingModel) -> np.ndarray:
    """``s(x)`` (float64, NaN for null rows) of a Dataset's embedding ``column`` in its row order: read zero-copy from
    Arrow, or, for a small selection of a large table, only the referenced rows. The caller has checked the spec."""
    idx = row_indices(ds)
    col = table_column(ds, column)
    if idx is not None and len(idx) < FULL_TABLE_SHARE * table_length(ds):
        import pyarrow as pa

        col = col.take(pa.array(idx))
        idx = None
    parts = [model.scores(emb, valid) for emb, valid in embedding_blocks(col, spec)]
    full = np.concatenate(parts) if parts else np.zeros(0, np.float64)
    return full if idx is None else full[idx]


class FusedProfile(Contrasted, Profile):
    """A contrastive profile scoring with the embedding signal (``signal="embedding"``) or the hybrid of NAG and the
    embedding signal (``signal="hybrid"``); see the module docstring. Made by ``NAGProfile.contrast``.

    ``nag`` is the contrastive NAG component (its counts, background and weighting are this profile's), ``model`` the
    embedding model, ``nag_stats`` / ``embedding_stats_z`` the background z-statistics ``(mean, std)`` of each
    component (``nag_stats`` None for the embedding signal).
    """

    score_kind = "contrastive"
    score_column = CONTRAST_SCORE_COLUMN
    _format_version = EMBEDDING_FORMAT_VERSION

    def __init__(self, nag: ContrastiveProfile, model: EmbeddingModel, embedding_spec: EmbeddingSpec, *,
                 signal: str, nag_weight: float = DEFAULT_NAG_WEIGHT, nag_stats: tuple[float, float] | None,
                 embedding_stats_z: tuple[float, float], embedding_column: str = EMBEDDING_COLUMN,
                 rows: dict[str, int] | None = None) -> None:
        if signal not in FUSED_SIGNALS:
            raise InvalidArgumentError(f"a fused profile's signal is one of {FUSED_SIGNALS}, got {signal!r}")
        if not isinstance(nag, ContrastiveProfile):
            raise WrongTypeError(f"the NAG component must be a ContrastiveProfile, got {type(nag).__name__}")
        if not 0.0 <= float(nag_weight) <= 1.0:
            raise InvalidArgumentError(f"nag_weight must lie in [0, 1], got {nag_weight}")
        if signal == "hybrid" and nag_stats is None:
            raise ProfileError("the hybrid signal needs the NAG component's background statistics")
        if model.hidden_size != embedding_spec.hidden_size:
            raise ProfileError(f"the embedding model has {model.hidden_size} coefficients, the embedding spec "
                               f"{embedding_spec.hidden_size} values per row")
        embedding_spec.check_pairs_with(nag.spec, what="the profile's embeddings", against="its signature spec")
        super().__init__(nag.counts, nag.num_targets, nag.spec, nag.description, skipped_null=nag.skipped_null,
                         sample_info=nag.sample_info)
        self.nag = nag
        self.model = model
        self.embedding_spec = embedding_spec  # type: ignore[misc]
        self.embedding_column = embedding_column
        self.signal = signal
        self.nag_weight = float(nag_weight) if signal == "hybrid" else 0.0
        self.nag_stats = None if nag_stats is None or signal != "hybrid" else tuple(float(x) for x in nag_stats)
        self.embedding_stats_z = tuple(float(x) for x in embedding_stats_z)
        self.rows = dict(rows or {})

    @classmethod
    def fit(cls, target: Profile, background: Profile, *, signal: str = "hybrid", weighting: Any = "shrinkage",
            nag_weight: float = DEFAULT_NAG_WEIGHT, embedding_model: str = "learned", **params: Any) -> FusedProfile:
        """The fused profile of ``target`` against ``background``; both must keep their rows' embeddings
        (``NAGProfile.from_dataset`` on data with an embedding column), of one embedding spec."""
        if signal not in FUSED_SIGNALS:
            raise InvalidArgumentError(f"signal must be one of {SIGNALS}, got {signal!r}")
        if embedding_model not in EMBEDDING_MODELS:
            raise InvalidArgumentError(f"embedding_model must be one of {EMBEDDING_MODELS}, got {embedding_model!r}")
        missing = [name for name, p in (("target", target), ("background", background))
                   if getattr(p, "embedding_stats", None) is None]
        if missing:
            raise ProfileError(f"signal={signal!r} needs the rows' embeddings, and the {' and the '.join(missing)} "
                               f"profile{'s have' if len(missing) > 1 else ' has'} none: {EMBEDDING_FIX}, then build "
                               "both profiles with NAGProfile.from_dataset on that data")
        t_rows, b_rows = target.embedding_stats, background.embedding_stats
        assert t_rows is not None and b_rows is not None
        t_rows.spec.check_compatible(b_rows.spec, what="background embeddings", against="target embeddings")
        nag = ContrastiveProfile(target, background, weighting, **params)
        model = fit_embedding_model(t_rows.embeddings, b_rows.embeddings, kind=embedding_model)
        emb_z = background_stats(model.scores(b_rows.embeddings))
        nag_z = None
        if signal == "hybrid":
            nag_z = background_stats(nag.score(b_rows.signatures).astype(np.float64))
        return cls(nag, model, t_rows.spec, signal=signal, nag_weight=nag_weight, nag_stats=nag_z,
                   embedding_stats_z=emb_z, embedding_column=t_rows.column,
                   rows={"target": t_rows.num_rows, "background": b_rows.num_rows})

    # -- views -------------------------------------------------------------------------------------------------

    @property
    def weights(self) -> np.ndarray:
        """The NAG component's weights (what the hybrid's NAG part scores with)."""
        return self.nag.weights

    @property
    def background(self) -> Profile:
        return self.nag.background

    @property
    def weighting(self) -> Any:
        return self.nag.weighting

    def scoring_table(self) -> Any:
        """Refused: a fused score is not a table lookup (use :meth:`score`, :meth:`scorer` or :meth:`score_arrow`)."""
        raise ProfileError(f"a profile with the {self.signal} signal scores signatures and embeddings together: use "
                           "score, scorer or score_arrow, not its NAG table alone (profile.nag has it)")

    def _compute_fingerprint(self) -> str:
        """Short hash of the NAG component (counts, background, weighting), the embedding model, the embedding spec,
        the signal, the weight and the z-statistics."""
        h = hashlib.sha256(b"nag_datasets.fused/1\0")
        payload = {"nag": self.nag.fingerprint, "model": self.model.digest(),
                   "embedding_spec": self.embedding_spec.fingerprint, "column": self.embedding_column,
                   "signal": self.signal, "nag_weight": repr(self.nag_weight),
                   "nag_stats": None if self.nag_stats is None else [repr(x) for x in self.nag_stats],
                   "embedding_stats": [repr(x) for x in self.embedding_stats_z]}
        h.update(json.dumps(payload, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        out = self.nag.summary()
        out["fingerprint"] = self.fingerprint
        out["signal"] = self.signal
        if self.signal == "hybrid":
            out["nag_weight"] = self.nag_weight
            out["nag_z"] = list(self.nag_stats or ())
        out["embedding"] = {**self.model.describe(), "layer": self.embedding_spec.layer,
                            "layer_name": self.embedding_spec.layer_name or str(self.embedding_spec.layer),
                            "spec_fingerprint": self.embedding_spec.fingerprint, "column": self.embedding_column,
                            "z": list(self.embedding_stats_z), "rows": dict(self.rows)}
        return out

    def _repr_fields(self) -> list[str]:
        extra = [f"nag_weight={self.nag_weight}"] if self.signal == "hybrid" else []
        return [f"signal={self.signal!r}", *extra, *self.nag._repr_fields(), f"embedding_model={self.model.kind!r}"]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FusedProfile):
            return NotImplemented
        return (self.nag == other.nag and self.model == other.model and self.embedding_spec == other.embedding_spec
                and self.fingerprint == other.fingerprint)

    __hash__ = None  # type: ignore[assignment]

    # -- scoring -----------------------------------------------------------------------------------------------

    @property
    def default_column(self) -> str:
        """The column named in reports: the signature column (hybrid) or the embedding column (embedding)."""
        return self.nag.default_column if self.signal == "hybrid" else self.embedding_column

    def _signature_column(self, column: str | None) -> str:
        if self.signal == "embedding":
            if column not in (None, self.embedding_column, self.nag.default_column):
                raise InvalidArgumentError(f"the embedding signal reads the embedding column "
                                           f"{self.embedding_column!r}, not {column!r}")
            return self.nag.default_column
        return column or self.nag.default_column

    def check_column(self, ds: Any, column: str | None = None) -> str:
        """Refuse a dataset whose columns this profile cannot score: the embedding column (both signals) and the
        signature column (hybrid) must exist with the profile's specs. Returns :attr:`default_column`'s choice:
        the signature column (hybrid) or the embedding column (embedding signal)."""
        sig_column = self._signature_column(column)
        check_embedding_column(ds, self.embedding_column, self.embedding_spec)
        if self.signal == "embedding":
            return self.embedding_column
        check_dataset_column(ds, sig_column, self.spec)
        return sig_column

    def combine(self, nag: np.ndarray | None, emb: np.ndarray) -> np.ndarray:
        """The float32 score from the components' scores (``nag``: the contrastive profile's float32 scores, unused
        for the embedding signal; ``emb``: ``s(x)`` in float64)."""
        if self.signal == "embedding":
            return np.asarray(emb, dtype=np.float64).astype(np.float32)
        assert nag is not None and self.nag_stats is not None
        return fuse_scores(nag, emb, self.nag_weight, self.nag_stats, self.embedding_stats_z)  # type: ignore[arg-type]

    def score_arrays(self, signatures: np.ndarray | None, embeddings: np.ndarray,
                     valid: np.ndarray | None = None) -> np.ndarray:
        """Scores of rows given as arrays: ``(n, L, K)`` signatures (None for the embedding signal) and ``(n, hidden)``
        embeddings, whose specs the caller vouches for; ``valid`` marks rows that have both."""
        emb = self.model.scores(embeddings, valid)
        nag = None
        if self.signal == "hybrid":
            if signatures is None:
                raise InvalidArgumentError("the hybrid signal needs the rows' signatures too")
            nag = self.nag.score(np.asarray(signatures))
            if valid is not None:
                nag = np.where(valid, nag, np.float32(np.nan))
        return self.combine(nag, emb)

    def score(self, data: Any, column: str | None = None, *, return_report: bool = False,
              num_threads: int | None = None) -> np.ndarray | tuple[np.ndarray, ScoreReport]:
        """Score of every row of a ``datasets.Dataset`` (float32; NaN where a row lacks a signature or an
        embedding), reading both columns zero-copy; for arrays use :meth:`score_arrays`."""
        import time

        from datasets import Dataset

        t0 = time.perf_counter()
        if not isinstance(data, Dataset):
            refuse_split_dict(data, "profile.score")
            raise WrongTypeError(f"a profile with the {self.signal} signal scores a datasets.Dataset holding both "
                                 f"columns (or arrays through score_arrays), got {type(data).__name__}; for a stream "
                                 "use ds.map(profile.scorer_for(ds), batched=True)")
        used = self.check_column(data, column)
        emb = score_embedding_column(data, self.embedding_column, self.embedding_spec, self.model)
        nag = None
        if self.signal == "hybrid":
            table, norm = self.nag.scoring_table()
            nag = score_dataset_column(data, used, self.spec, table, norm, num_threads=num_threads)
        scores = self.combine(nag, emb)
        if not return_report:
            return scores
        seconds = time.perf_counter() - t0
        return scores, ScoreReport(rows=len(scores), null_rows=int(np.isnan(scores).sum()), column=used,
                                   seconds=seconds,
                                   rows_per_second=len(scores) / seconds if seconds > 0 else float("inf"),
                                   profile_fingerprint=self.fingerprint, spec_fingerprint=self.spec.fingerprint,
                                   score_kind=self.score_kind)

    def scorer(self, column: str | None = None, *, out_column: str | None = None, dataset: Any = None,
               check_spec: bool = True) -> Any:
        """A ``ds.map(fn, batched=True)`` callable adding ``out_column`` (default ``nag_contrast_score``); batches
        need the embedding column (and the signature column for the hybrid). Specs are checked as in
        :meth:`Profile.scorer <nag_datasets.scoring.profile_base.Profile.scorer>`."""
        from .fused_scorer import FusedScorer

        sig_column = self._signature_column(column)
        if dataset is not None and check_spec:
            self.check_column(dataset, column)
        return FusedScorer(self, sig_column, out_column or self.score_column, check_spec=check_spec,
                           spec_checked=dataset is not None)

    def arrow_columns(self, column: str | None = None) -> list[str]:
        cols = [self.embedding_column]
        return cols if self.signal == "embedding" else [self._signature_column(column), *cols]

    def column_specs(self, column: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {self.embedding_column: self.embedding_spec}
        if self.signal == "hybrid":
            out[self._signature_column(column)] = self.spec
        return out

    def score_arrow(self, table: Any, column: str | None = None) -> np.ndarray:
        emb = score_embedding_column_arrow(table.column(self.embedding_column), self.embedding_spec, self.model)
        nag = None
        if self.signal == "hybrid":
            nag = self.nag.score_arrow(table, self._signature_column(column))
        return self.combine(nag, emb)

    # -- persistence -------------------------------------------------------------------------------------------

    def _tensors(self) -> dict[str, np.ndarray]:
        return {**self.nag._tensors(), "embedding_mu_b": self.model.mu_b, "embedding_coef": self.model.coef}

    def _meta(self) -> dict[str, Any]:
        meta = self.nag._meta()
        meta["kind"] = "fused"
        meta["signal"] = self.signal
        meta["nag_weight"] = self.nag_weight
        meta["nag_z"] = None if self.nag_stats is None else list(self.nag_stats)
        meta["embedding"] = {"spec": self.embedding_spec.to_dict(), "column": self.embedding_column,
                             "model": self.model.kind, "intercept": self.model.intercept, "C": self.model.C,
                             "z": list(self.embedding_stats_z), "rows": dict(self.rows)}
        return meta

    def _file_version(self) -> int:
        return EMBEDDING_FORMAT_VERSION

    @classmethod
    def from_saved(cls, nag: ContrastiveProfile, meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> FusedProfile:
        """Rebuild a saved fused profile from its NAG component and its files (used by ``NAGProfile.load``)."""
        emb = meta["embedding"]
        model = EmbeddingModel(emb["model"], tensors["embedding_mu_b"], tensors["embedding_coef"],
                               emb["intercept"], emb.get("C"))
        return cls(nag, model, EmbeddingSpec.from_dict(emb["spec"]), signal=meta["signal"],
                   nag_weight=meta["nag_weight"] if meta["signal"] == "hybrid" else DEFAULT_NAG_WEIGHT,
                   nag_stats=None if meta.get("nag_z") is None else tuple(meta["nag_z"]),
                   embedding_stats_z=tuple(emb["z"]), embedding_column=emb.get("column", EMBEDDING_COLUMN),
                   rows=emb.get("rows"))


def score_embedding_column_arrow(column: Any, spec: EmbeddingSpec, model: EmbeddingModel) -> np.ndarray:
    """``s(x)`` (float64, NaN for null rows) of an Arrow embedding column, chunk by chunk."""
    parts = [model.scores(emb, valid) for emb, valid in embedding_blocks(column, spec)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float64)
