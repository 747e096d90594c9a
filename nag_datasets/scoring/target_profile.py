"""The target profile: how often each neuron appears in the target documents' NAGs, and scoring against it.

``counts[l, k]`` is the number of target documents whose layer-``l`` NAG contains neuron ``k``; the method's
weights are ``counts / num_targets`` (each row sums to K). A document's similarity to the targets is the mean of
the weights at its signature's neurons, which equals its mean Dice overlap with the target NAGs.

>>> import numpy as np
>>> from nag_datasets.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
...                      layers=(0, 1), max_length=8, add_special_tokens=False, neurons_per_layer=4)
>>> targets = np.array([[[0, 1], [2, 3]], [[0, 2], [2, 1]]])
>>> profile = NAGProfile.from_signatures(targets, spec, description="two targets")
>>> profile.weights[0]
array([1. , 0.5, 0.5, 0. ])
>>> profile.score(np.array([[[0, 1], [2, 3]], [[3, 1], [0, 3]]]))
array([0.75, 0.25], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import __version__
from ..columns import column_name, get_spec, row_indices, signature_table_column
from ..errors import NAGError
from ..featurize.spec_column import check_batch, check_dataset_column, dataset_spec, refuse_split_dict
from ..spec import SignatureSpec, SpecError
from ..storage import location
from ..storage.atomic import atomic_dir, check_complete, check_replaceable, lock_dir, read_versioned_json, remote_dir
from ._arrow import signature_blocks, table_length
from .kernel import SignatureIndexError, counts_dtype, score_blocks
from .sampling import sample_keys, smallest_keys

__all__ = ["NAGProfile", "ProfileError", "ScoreReport", "SimilarityFilter", "SimilarityScorer", "passes_threshold"]

#: Profile classes by the ``kind`` their saved files record; subclasses in other modules register themselves
#: (``nag_datasets.scoring`` imports them), so this module never imports them back.
_PROFILE_KINDS: dict[str, Any] = {}


def register_profile_kind(kind: str, cls: Any) -> None:
    """Make ``cls`` the class that :meth:`NAGProfile.load` (and :meth:`NAGProfile.contrast`) use for ``kind``."""
    _PROFILE_KINDS[kind] = cls


def _profile_kind(kind: str) -> Any:
    if kind not in _PROFILE_KINDS:
        import importlib

        importlib.import_module("nag_datasets.scoring")  # registers the profile kinds
    return _PROFILE_KINDS[kind]


#: Default size of a background sample (the whole pool when it is smaller); see the contrastive profile.
DEFAULT_BACKGROUND_SAMPLE = 10_000

HUB_CARD_FILE = "README.md"  # the card a Hub repo shows (nag_datasets.hub.templates.CARD_FILE)
PROFILE_FORMAT = "nag_datasets.profile"  # a stored format id: kept when the module moved
PROFILE_FORMAT_VERSION = 1
#: Contrastive profiles are written as format version 2 (two count tables and a weighting), so that a library that
#: only knows version 1 refuses them by version instead of misreading them.
CONTRASTIVE_FORMAT_VERSION = 2
COUNTS_FILE = "profile.safetensors"
META_FILE = "profile.json"
SCORE_COLUMN = "nag_similarity"

#: Score the whole underlying table and take the indices when the mapping covers at least this share of it;
#: below, copy only the referenced rows.
_FULL_TABLE_SHARE = 0.25


class ProfileError(NAGError, ValueError):
    """A profile is inconsistent, or its files are missing, corrupt or were changed."""


@dataclasses.dataclass(frozen=True)
class ScoreReport:
    """What one call of :meth:`NAGProfile.score` did."""

    rows: int
    null_rows: int
    column: str | None
    seconds: float
    rows_per_second: float
    profile_fingerprint: str
    spec_fingerprint: str
    score_kind: str = "similarity"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def passes_threshold(scores: np.ndarray, min_similarity: float) -> np.ndarray:
    """The one comparison every filter uses (in float64, so a threshold is never rounded to float32; NaN fails)."""
    return np.asarray(scores, dtype=np.float64) >= float(min_similarity)


def _signature_array(values: Any, L: int, K: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch column (lists, numpy, torch or Arrow) as ``(n, L, K)`` integers plus a validity mask."""
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 3:
        arr, valid = values, None
    elif isinstance(values, (pa.Array, pa.ChunkedArray)):
        return _signature_array(values.to_pylist(), L, K)
    else:
        rows = list(values)
        mask = np.array([r is not None for r in rows], dtype=np.bool_)
        valid = None if mask.all() else mask
        kept = [r for r in rows if r is not None]
        if not kept:
            return np.zeros((len(rows), L, K), np.uint32), mask
        try:
            dense = np.asarray(kept)
        except ValueError:
            dense = None
        if dense is None or dense.dtype == object or dense.ndim != 3:
            try:
                dense = np.stack([np.asarray(r) for r in kept])
            except ValueError as e:
                raise ValueError(f"signatures in this batch do not all have shape ({L}, {K}): {e}") from None
        if valid is None:
            arr = dense
        else:
            arr = np.zeros((len(rows), *dense.shape[1:]), dtype=dense.dtype)
            arr[mask] = dense
    if arr.shape[1:] != (L, K):
        raise ValueError(f"signatures have shape {arr.shape[1:]}, the profile expects ({L}, {K})")
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.floor(arr)):
            raise ValueError("signatures hold non-integer values")
        arr = arr.astype(np.int64)
    return arr, valid


def _one_row(values: Any) -> bool:
    """Whether a batch value is one row's signature (``map``/``filter`` called without ``batched=True``)."""
    if values is None:
        return True
    if isinstance(values, np.ndarray):
        return values.dtype != object and values.ndim == 2
    if isinstance(values, (list, tuple)) and values:
        first = next((v for v in values if v is not None), None)
        return first is not None and np.ndim(first) == 1
    return False


class SimilarityScorer:
    """Picklable ``ds.map(fn, batched=True)`` callable adding ``out_column`` (float32, NaN for null signatures).

    Every batch's ``nag_spec`` values (written by the featurizer) must name the profile's spec. A batch without that
    column is refused unless the dataset's typed spec was checked when the callable was made
    (:meth:`NAGProfile.scorer_for`, ``scorer(dataset=ds)``) or ``check_spec=False`` says the caller vouches for it.
    It scores with the profile's table: counts for the paper's profile, float weights for a contrastive one.
    """

    def __init__(self, profile: NAGProfile, column: str, out_column: str = SCORE_COLUMN, *, check_spec: bool = True,
                 spec_checked: bool = False) -> None:
        self.table, self.num_targets = profile.scoring_table()
        self.spec = profile.spec
        self.shape = (profile.spec.num_layers, profile.spec.top_k)
        self.column = column
        self.out_column = out_column
        self.check_spec = bool(check_spec)
        self.spec_checked = bool(spec_checked)

    def scores(self, batch: dict[str, Any]) -> np.ndarray:
        if self.column not in batch:
            raise KeyError(f"column {self.column!r} not in batch; columns: {list(batch)}")
        if _one_row(batch[self.column]):
            raise TypeError(f"got one row instead of a batch: call ds.map / ds.filter with batched=True "
                            f"(column {self.column!r} holds a single signature)")
        if self.check_spec:
            check_batch(batch, self.column, self.spec, required=not self.spec_checked)
        sigs, valid = _signature_array(batch[self.column], *self.shape)
        # One thread: map workers are processes already, and batches are small.
        return score_blocks([(sigs, valid)], self.table, self.num_targets, num_threads=1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        return {self.out_column: self.scores(batch)}


class SimilarityFilter:
    """Picklable ``ds.filter(fn, batched=True)`` callable: keep rows with similarity >= ``min_similarity``."""

    def __init__(self, scorer: SimilarityScorer, min_similarity: float) -> None:
        self.scorer = scorer
        self.min_similarity = float(min_similarity)

    def __call__(self, batch: dict[str, Any]) -> list[bool]:
        return passes_threshold(self.scorer.scores(batch), self.min_similarity).tolist()


class NAGProfile:
    """Neuron counts of a target set for one signature spec; see the module docstring."""

    def __init__(
        self,
        counts: np.ndarray,
        num_targets: int,
        spec: SignatureSpec,
        description: str = "",
        *,
        skipped_null: int = 0,
        sample_info: dict[str, Any] | None = None,
    ) -> None:
        counts = np.asarray(counts)
        num_targets = int(num_targets)
        if num_targets < 1:
            raise ProfileError(f"a profile needs at least one target document, got num_targets={num_targets}")
        expected = (spec.num_layers, spec.neurons_per_layer)
        if counts.shape != expected:
            raise ProfileError(f"counts have shape {counts.shape}, the spec implies (layers, neurons) = {expected}")
        if counts.dtype.kind not in "iu":
            raise ProfileError(f"counts must be integers, got {counts.dtype}")
        if counts.size and (counts.min() < 0 or counts.max() > num_targets):
            raise ProfileError(f"counts must lie in 0..num_targets={num_targets}")
        sums = counts.sum(axis=1, dtype=np.int64)
        want = spec.top_k * num_targets
        if not np.all(sums == want):
            layer = int(np.flatnonzero(sums != want)[0])
            raise ProfileError(
                f"counts of layer {layer} sum to {int(sums[layer])}, expected top_k * num_targets = {want}"
            )
        self.counts = np.ascontiguousarray(counts.astype(counts_dtype(num_targets)))
        self.counts.flags.writeable = False
        self.num_targets = num_targets
        self.spec = spec
        self.description = str(description)
        self.skipped_null = int(skipped_null)
        self.sample_info = None if sample_info is None else dict(sample_info)

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_signatures(
        cls,
        signatures: np.ndarray,
        spec: SignatureSpec,
        *,
        valid: np.ndarray | None = None,
        description: str = "",
    ) -> NAGProfile:
        """Profile of target signatures ``(n, L, K)``; the caller vouches that they were computed with ``spec``."""
        sigs = np.asarray(signatures)
        if sigs.ndim != 3 or sigs.shape[1:] != (spec.num_layers, spec.top_k):
            raise ProfileError(
                f"target signatures have shape {sigs.shape}, expected (n, {spec.num_layers}, {spec.top_k})"
            )
        acc = _CountAccumulator(spec)
        acc.add(sigs, valid)
        return acc.profile(description)

    @classmethod
    def from_dataset(
        cls,
        ds: Any,
        column: str = "nag_fwd_up",
        *,
        description: str = "",
        sample: int | None = None,
        seed: int = 0,
        batch_size: int = 8192,
    ) -> NAGProfile:
        """Profile of the rows of ``ds[column]`` (null rows are skipped and counted in ``skipped_null``).

        ``ds`` is a `datasets.Dataset` (read zero-copy from Arrow) or an ``IterableDataset`` (one streamed pass in
        batches of ``batch_size``; memory bounded by the batch and the sample). With ``sample=n`` the profile is
        of a uniform random sample of ``n`` rows with a signature (all of them when there are fewer), drawn with
        ``seed`` in a way that does not depend on batching: a streamed pool and the same pool in memory give the
        same profile. That is how a contrastive profile's background is made (see :meth:`contrast`).
        """
        from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

        if isinstance(ds, (DatasetDict, IterableDatasetDict)):
            raise TypeError(f"from_dataset needs one split, got a {type(ds).__name__} with splits {list(ds)}: "
                            "pass e.g. ds['train']")
        if sample is not None and int(sample) < 1:
            raise ProfileError(f"sample must be >= 1, got {sample}")
        # A Dataset's spec may also come from its nag_spec column (plain map); a stream needs typed features.
        spec = dataset_spec(ds, column) if isinstance(ds, Dataset) else get_spec(ds, column)
        if isinstance(ds, IterableDataset):
            blocks = _stream_blocks(ds, column, spec, batch_size)
        elif isinstance(ds, Dataset):
            blocks = _dataset_blocks(ds, column, spec)
        else:
            raise TypeError(f"from_dataset needs a datasets.Dataset or IterableDataset, got {type(ds).__name__}")
        if sample is None:
            acc = _CountAccumulator(spec)
            for _, sigs, valid in blocks:
                acc.add(sigs, valid)
            return acc.profile(description)
        reservoir = _Reservoir(int(sample), int(seed), spec)
        for positions, sigs, valid in blocks:
            reservoir.add(positions, sigs, valid)
        return reservoir.profile(description)

    @classmethod
    def merge(cls, profiles: Sequence[NAGProfile], *, description: str | None = None) -> NAGProfile:
        """One profile pooling all targets (counts summed).

        This is a different method from the paper's multi-target mixture, where each target selects its own share
        of the pool (see :func:`nag_datasets.selection.budgeted.select_multi_target`): here large target sets dominate.
        """
        profiles = list(profiles)
        if not profiles:
            raise ProfileError("merge needs at least one profile")
        first = profiles[0]
        for i, p in enumerate(profiles[1:], start=1):
            first.spec.check_compatible(p.spec, what=f"profile {i}", against="profile 0")
        total = np.zeros(first.counts.shape, np.int64)
        for p in profiles:
            total += p.counts
        if description is None:
            parts = [p.description or p.fingerprint() for p in profiles]
            description = "merged profile (counts summed) of: " + "; ".join(parts)
        return cls(
            total,
            sum(p.num_targets for p in profiles),
            first.spec,
            description,
            skipped_null=sum(p.skipped_null for p in profiles),
        )

    # -- views -------------------------------------------------------------------------------------------------

    @property
    def weights(self) -> np.ndarray:
        """``w[l, k]``: share of targets whose layer-``l`` NAG contains neuron ``k`` (float64; rows sum to K)."""
        return self.counts.astype(np.float64) / self.num_targets

    @property
    def default_column(self) -> str:
        return column_name(self.spec.neuron_type)

    #: What the score is: the paper's mean Dice similarity to the targets, in [0, 1].
    score_kind = "similarity"
    #: The column :meth:`scorer` adds by default.
    score_column = SCORE_COLUMN
    _format_version = PROFILE_FORMAT_VERSION

    def scoring_table(self) -> tuple[np.ndarray, int | None]:
        """``(table, num_targets)`` for :func:`nag_datasets.scoring.kernel.score_blocks`: the counts and their divisor."""
        return self.counts, self.num_targets

    def summary(self) -> dict[str, Any]:
        """What a selection records about the profile (report, recipe, card)."""
        out: dict[str, Any] = {"fingerprint": self.fingerprint(), "description": self.description,
                               "num_targets": self.num_targets, "score_kind": self.score_kind}
        if self.sample_info is not None:
            out["sample"] = dict(self.sample_info)
        return out

    def contrast(self, background: NAGProfile, weighting: Any = "shrinkage", **params: Any) -> NAGProfile:
        """A contrastive profile: this (target) profile weighted against ``background`` (see
        :class:`nag_datasets.scoring.contrastive.ContrastiveProfile`).

        ``background`` is the plain profile of a uniform sample of the pool
        (``NAGProfile.from_dataset(pool, column, sample=n)``); its spec must match. ``weighting`` is a name
        from :data:`nag_datasets.scoring.weighting.WEIGHTINGS` with its parameters (``alpha=``, ``m=``, ``eps=``; the
        default is shrinkage with m=50, alpha=0.5, chosen in the retrieval harness), a
        :class:`~nag_datasets.scoring.weighting.Weighting`, or ``"frequency"``: the paper's profile, returned unchanged
        (the background is then not used).

        >>> import numpy as np
        >>> from nag_datasets.spec import SignatureSpec
        >>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=1,
        ...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=3)
        >>> target = NAGProfile.from_signatures(np.array([[[0]], [[1]]]), spec)
        >>> background = NAGProfile.from_signatures(np.array([[[0]], [[0]], [[0]], [[2]]]), spec)
        >>> profile = target.contrast(background, "log_odds", alpha=0.5)
        >>> profile.score(np.array([[[0]], [[1]], [[2]]])).round(3)   # neuron 1: target-specific
        array([-0.336,  1.609, -0.588], dtype=float32)
        >>> target.contrast(background, "frequency") is target
        True
        """
        if weighting == "frequency":
            if params:
                raise ProfileError(f"the frequency weighting takes no parameters, got {sorted(params)}")
            return self
        return _profile_kind("contrastive")(self, background, weighting, **params)

    def fingerprint(self) -> str:
        """Short hash of counts, spec (compared fields) and number of targets; the description is not part of it."""
        h = hashlib.sha256(b"nag_datasets.profile/1\0")
        h.update(self.spec.fingerprint().encode())
        h.update(f"\0{self.num_targets}\0{self.counts.shape}\0".encode())
        h.update(self.counts.astype("<u4").tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        desc = f", description={self.description!r}" if self.description else ""
        return (
            f"NAGProfile(neuron_type={self.spec.neuron_type!r}, layers={self.spec.num_layers}, "
            f"top_k={self.spec.top_k}, neurons_per_layer={self.spec.neurons_per_layer}, "
            f"num_targets={self.num_targets}{desc})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NAGProfile):
            return NotImplemented
        return (
            self.spec == other.spec
            and self.num_targets == other.num_targets
            and self.description == other.description
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- scoring -----------------------------------------------------------------------------------------------

    def check_column(self, ds: Any, column: str | None = None) -> str:
        """Refuse a column whose spec differs from the profile's or that carries none; return the column name.

        The spec is the column's typed feature's or, after a plain ``map``, the one its ``nag_spec`` column names.
        """
        column = column or self.default_column
        check_dataset_column(ds, column, self.spec)
        return column

    def score(
        self,
        data: Any,
        column: str | None = None,
        *,
        return_report: bool = False,
        num_threads: int | None = None,
    ) -> np.ndarray | tuple[np.ndarray, ScoreReport]:
        """Similarity of every row to the targets (float32; NaN for null signatures), in the rows' order.

        ``data`` is a `datasets.Dataset` (its signature ``column`` is read zero-copy from Arrow and its spec is
        checked; ``column`` defaults to ``nag_<neuron_type>``) or an ``(n, L, K)`` integer array, whose spec the
        caller vouches for (only the shape is checked).
        """
        from datasets import Dataset

        t0 = time.perf_counter()
        if isinstance(data, Dataset):
            column = self.check_column(data, column)
            scores = self._score_dataset(data, column, num_threads)
        elif type(data).__module__.split(".")[0] == "datasets":
            refuse_split_dict(data, "NAGProfile.score")
            raise TypeError(
                f"score needs a datasets.Dataset or an (n, L, K) array, got {type(data).__name__}; for a "
                "streaming dataset use ds.map(profile.scorer_for(ds), batched=True), for a DatasetDict score each split"
            )
        else:
            sigs = np.asarray(data)
            shape = (self.spec.num_layers, self.spec.top_k)
            if sigs.ndim != 3 or sigs.shape[1:] != shape:
                raise ValueError(f"signatures have shape {sigs.shape}, the profile expects (n, {shape[0]}, {shape[1]})")
            column = None
            table, norm = self.scoring_table()
            scores = score_blocks([(sigs, None)], table, norm, num_threads=num_threads)
        if not return_report:
            return scores
        seconds = time.perf_counter() - t0
        report = ScoreReport(
            rows=len(scores),
            null_rows=int(np.isnan(scores).sum()),
            column=column,
            seconds=seconds,
            rows_per_second=len(scores) / seconds if seconds > 0 else float("inf"),
            profile_fingerprint=self.fingerprint(),
            spec_fingerprint=self.spec.fingerprint(),
            score_kind=self.score_kind,
        )
        return scores, report

    def _score_dataset(self, ds: Any, column: str, num_threads: int | None) -> np.ndarray:
        spec = self.spec  # checked against the column by check_column (typed or nag_spec)
        blocks = list(signature_blocks(signature_table_column(ds, column), spec))
        table, norm = self.scoring_table()
        idx = row_indices(ds)
        n_table = table_length(ds)
        if idx is None or len(idx) >= _FULL_TABLE_SHARE * n_table:
            starts = list(np.cumsum([0] + [len(s) for s, _ in blocks])[:-1])
            full = score_blocks(blocks, table, norm, num_threads=num_threads, row_offsets=starts)
            return full if idx is None else full[idx]
        # A small selection of a large table: copy just the referenced rows, block by block.
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        gathered, offsets = [], []
        start = 0
        for sigs, valid in blocks:
            lo, hi = np.searchsorted(sorted_idx, [start, start + len(sigs)])
            if hi > lo:
                local = sorted_idx[lo:hi] - start
                gathered.append((sigs[local], None if valid is None else valid[local]))
                offsets.append(int(lo))
            start += len(sigs)
        sorted_scores = score_blocks(gathered, table, norm, num_threads=num_threads, row_offsets=offsets)
        out = np.empty(len(idx), np.float32)
        out[order] = sorted_scores
        return out

    def scorer(
        self, column: str | None = None, *, out_column: str | None = None, dataset: Any = None,
        check_spec: bool = True,
    ) -> SimilarityScorer:
        """A ``ds.map(fn, batched=True)`` callable adding ``out_column`` (default :attr:`score_column`:
        ``nag_similarity``, or ``nag_contrast_score`` for a contrastive profile); pass ``dataset`` to check its
        spec first.

        Batches are checked through their ``nag_spec`` column; without ``dataset`` a batch lacking it is refused
        (``check_spec=False`` skips every check: the caller vouches for the spec).
        """
        column = column or self.default_column
        if dataset is not None and check_spec:
            self.check_column(dataset, column)
        return SimilarityScorer(self, column, out_column or self.score_column, check_spec=check_spec,
                                spec_checked=dataset is not None)

    def scorer_for(self, ds: Any, column: str | None = None, *, out_column: str | None = None) -> SimilarityScorer:
        """:meth:`scorer` after checking that ``ds[column]`` was computed with the profile's spec."""
        return self.scorer(column, out_column=out_column, dataset=ds)

    def filter(self, min_similarity: float, column: str | None = None, *, dataset: Any = None,
               check_spec: bool = True) -> SimilarityFilter:
        """A ``ds.filter(fn, batched=True)`` callable keeping rows with similarity >= ``min_similarity``.

        Null signatures never pass. The spec is checked as in :meth:`scorer`.
        """
        return SimilarityFilter(self.scorer(column, dataset=dataset, check_spec=check_spec), min_similarity)

    # -- persistence -------------------------------------------------------------------------------------------

    def _tensors(self) -> dict[str, np.ndarray]:
        """The arrays :meth:`save` writes (a contrastive profile adds the background's counts)."""
        return {"counts": np.ascontiguousarray(self.counts)}

    def _meta(self) -> dict[str, Any]:
        """The JSON fields :meth:`save` writes besides format, hash and fingerprint."""
        meta: dict[str, Any] = {"spec": self.spec.to_dict(), "num_targets": self.num_targets,
                                "description": self.description, "skipped_null": self.skipped_null}
        if self.sample_info is not None:
            meta["sample"] = dict(self.sample_info)
        return meta

    def save(self, folder: str | Path) -> Path | str:
        """Write ``profile.safetensors`` (counts) and ``profile.json`` (spec, hash) into ``folder``, atomically.

        An existing profile folder is replaced; a folder holding anything else is refused. ``folder`` may be an
        fsspec URL (returned as given): the counts are written first, ``profile.json`` last.

        >>> import numpy as np
        >>> from nag_datasets.spec import SignatureSpec
        >>> spec = SignatureSpec(model_fingerprint="f", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=1,
        ...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=4)
        >>> profile = NAGProfile(np.array([[1, 0, 1, 0]]), 2, spec)
        >>> NAGProfile.load(profile.save("memory://doc-profile/p")).fingerprint() == profile.fingerprint()
        True
        """
        from safetensors.numpy import save

        payload = save(self._tensors(), metadata={"format": PROFILE_FORMAT})
        meta = {
            "format": PROFILE_FORMAT,
            "format_version": self._format_version,
            **self._meta(),
            "counts_sha256": hashlib.sha256(payload).hexdigest(),
            "fingerprint": self.fingerprint(),
            "library_version": __version__,
        }
        meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        if location.is_remote(folder):
            url = str(folder)
            try:
                with remote_dir(url, marker=META_FILE, overwrite=True, ours=(COUNTS_FILE, META_FILE).__contains__,
                                what="profile"):
                    location.write_bytes(location.join(url, COUNTS_FILE), payload)
                    location.write_text(location.join(url, META_FILE), meta_text)
            except FileExistsError as e:
                raise ProfileError(str(e)) from None
            return url
        folder = location.local_path(folder)
        with lock_dir(folder):
            try:
                check_replaceable(folder, overwrite=True, marker=META_FILE, ours=(COUNTS_FILE, META_FILE).__contains__,
                                  what="profile")
            except FileExistsError as e:
                raise ProfileError(str(e)) from None
            with atomic_dir(folder) as tmp:
                (tmp / COUNTS_FILE).write_bytes(payload)
                (tmp / META_FILE).write_text(meta_text)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> NAGProfile:
        """Read a profile written by :meth:`save` (a contrastive one comes back as a contrastive profile); any
        missing, corrupt or altered file raises :class:`ProfileError`."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        if location.is_remote(folder):
            try:
                check_complete(folder)
            except OSError as e:
                raise ProfileError(str(e)) from None
            meta_path, counts_path = location.join(folder, META_FILE), location.join(folder, COUNTS_FILE)
            read = location.read_bytes
        else:
            folder = location.local_path(folder)
            meta_path, counts_path = folder / META_FILE, folder / COUNTS_FILE
            read = Path.read_bytes
        for p in (meta_path, counts_path):
            if not (location.isfile(p) if isinstance(p, str) else p.is_file()):
                raise ProfileError(f"not a saved profile: {p} is missing")
        meta = read_versioned_json(meta_path, fmt=PROFILE_FORMAT, version=(1, CONTRASTIVE_FORMAT_VERSION),
                                   error=ProfileError, what="profile description")
        missing = [k for k in ("spec", "num_targets", "counts_sha256") if k not in meta]
        if missing:
            raise ProfileError(f"{meta_path} lacks {', '.join(missing)}")
        payload = read(counts_path)
        digest = hashlib.sha256(payload).hexdigest()
        if digest != meta["counts_sha256"]:
            raise ProfileError(
                f"{counts_path} does not match the sha256 recorded in {meta_path} ({digest[:12]}... vs "
                f"{str(meta['counts_sha256'])[:12]}...): the file was changed, truncated or belongs to another profile"
            )
        try:
            spec = SignatureSpec.from_dict(meta["spec"])
        except SpecError as e:
            raise ProfileError(f"{meta_path}: {e}") from None
        try:
            tensors = load(payload)
        except (SafetensorError, ValueError, TypeError) as e:
            raise ProfileError(f"{counts_path} is not a readable safetensors file: {e}") from None
        kind = meta.get("kind", "frequency")
        expected = {"counts", "background_counts"} if kind == "contrastive" else {"counts"}
        if set(tensors) != expected:
            raise ProfileError(f"{counts_path} must hold exactly the tensors {sorted(expected)}, found "
                               f"{sorted(tensors)}")
        try:
            profile = NAGProfile(tensors["counts"], meta["num_targets"], spec, meta.get("description", ""),
                                 skipped_null=meta.get("skipped_null", 0), sample_info=meta.get("sample"))
            if kind == "contrastive":
                profile = _profile_kind("contrastive").from_saved(profile, tensors["background_counts"], meta)
            elif kind != "frequency":
                raise ProfileError(f"{meta_path} has an unknown profile kind {kind!r}")
        except ProfileError as e:
            raise ProfileError(f"{folder}: {e}") from None
        except (TypeError, ValueError, KeyError) as e:
            raise ProfileError(f"{meta_path} holds a malformed value: {e}") from None
        # The counts are covered by their sha256; the spec, num_targets and weighting by the stored fingerprint.
        stored = meta.get("fingerprint")
        if stored is not None and stored != profile.fingerprint():
            raise ProfileError(
                f"{meta_path} was changed after saving: its spec, num_targets or weighting give fingerprint "
                f"{profile.fingerprint()}, not the recorded {stored!r}"
            )
        return profile

    @classmethod
    def from_pretrained(
        cls,
        folder_or_repo: str | os.PathLike[str],
        revision: str | None = None,
        *,
        repo_type: str = "dataset",
        token: str | None = None,
    ) -> NAGProfile:
        """A profile from a local folder (:meth:`load`) or else a Hub repo (downloaded, cached, then loaded).

        Cards for profiles are written by :func:`nag_datasets.hub.profile_card`; only the profile's files (and its
        card) are downloaded.
        """
        if location.is_remote(folder_or_repo):
            return cls.load(folder_or_repo)
        path = location.local_path(folder_or_repo)
        if path.is_dir():
            return cls.load(path)
        if path.exists() or str(folder_or_repo).startswith((".", "/", "~")):
            raise ProfileError(f"{folder_or_repo} is not a profile folder")
        from huggingface_hub import snapshot_download

        from ..storage.remote import hub_errors, scrub_token

        try:
            local = snapshot_download(str(folder_or_repo), repo_type=repo_type, revision=revision, token=token,
                                      allow_patterns=[COUNTS_FILE, META_FILE, HUB_CARD_FILE])
        except hub_errors() as e:  # offline without a cached copy, unknown repo, no access
            message = scrub_token(f"{type(e).__name__}: {e}", token or "")
            raise ProfileError(f"{folder_or_repo!r} is not a local folder and the Hub {repo_type} repo could not be "
                               f"fetched ({message})") from None
        return cls.load(local)


class _CountAccumulator:
    """Adds blocks of target signatures into per-layer neuron counts (exact integers)."""

    _ROWS = 16_384

    def __init__(self, spec: SignatureSpec) -> None:
        self.spec = spec
        L, N = spec.num_layers, spec.neurons_per_layer
        self.flat = np.zeros(L * N, np.int64)
        self.layer_base = (np.arange(L, dtype=np.int64) * N)[None, :, None]
        self.num_targets = 0
        self.skipped_null = 0

    def add(self, sigs: np.ndarray, valid: np.ndarray | None = None, weight: np.ndarray | None = None) -> None:
        n = len(sigs)
        w = np.ones(n, np.int64) if weight is None else np.asarray(weight, np.int64)
        if valid is not None:
            self.skipped_null += int(w[~valid].sum())
            w = np.where(valid, w, 0)
        N, K = self.spec.neurons_per_layer, self.spec.top_k
        for lo in range(0, n, self._ROWS):
            wi = w[lo : lo + self._ROWS]
            rows = np.flatnonzero(wi)
            if not len(rows):
                continue
            part = np.asarray(sigs[lo : lo + self._ROWS][rows]).astype(np.int64)
            if part.min() < 0 or part.max() >= N:
                raise SignatureIndexError(
                    f"a target signature has neuron index {int(part.min() if part.min() < 0 else part.max())} "
                    f"outside 0..{N - 1} (neurons_per_layer={N})"
                )
            ordered = np.sort(part, axis=2)
            repeats = ordered[:, :, 1:] == ordered[:, :, :-1]
            if repeats.any():
                r, layer, _ = np.argwhere(repeats)[0]
                raise ProfileError(
                    f"target row {lo + int(rows[r])} repeats a neuron in layer {int(layer)}: a NAG is a set of "
                    f"{K} distinct neurons"
                )
            codes = (part + self.layer_base).ravel()
            counts_w = wi[rows]
            if np.all(counts_w == 1):
                self.flat += np.bincount(codes, minlength=len(self.flat))
            else:
                self.flat += np.bincount(codes, weights=np.repeat(counts_w, part.shape[1] * K),
                                         minlength=len(self.flat)).round().astype(np.int64)
            self.num_targets += int(counts_w.sum())

    def profile(self, description: str) -> NAGProfile:
        if self.num_targets == 0:
            raise ProfileError(
                f"no valid target signatures ({self.skipped_null} null rows skipped): a profile needs at least one"
            )
        counts = self.flat.reshape(self.spec.num_layers, self.spec.neurons_per_layer)
        return NAGProfile(counts, self.num_targets, self.spec, description, skipped_null=self.skipped_null)


def _dataset_blocks(ds: Any, column: str, spec: SignatureSpec) -> Any:
    """``(positions, signatures, valid)`` blocks of a Dataset's column in its row order (zero-copy when direct)."""
    idx = row_indices(ds)
    blocks = signature_blocks(signature_table_column(ds, column), spec)
    if idx is None:
        start = 0
        for sigs, valid in blocks:
            yield np.arange(start, start + len(sigs), dtype=np.int64), sigs, valid
            start += len(sigs)
        return
    # An indices mapping: gather each block's referenced rows (a row referenced twice counts twice).
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    start = 0
    for sigs, valid in blocks:
        lo, hi = np.searchsorted(sorted_idx, [start, start + len(sigs)])
        if hi > lo:
            local = sorted_idx[lo:hi] - start
            yield order[lo:hi].astype(np.int64), sigs[local], None if valid is None else valid[local]
        start += len(sigs)


def _stream_blocks(ds: Any, column: str, spec: SignatureSpec, batch_size: int) -> Any:
    """``(positions, signatures, valid)`` blocks of an IterableDataset's column, one streamed pass."""
    from ..columns import signature_feature

    want = signature_feature(spec)
    stream = ds.select_columns([column]).cast_column(column, want).with_format("arrow")
    start = 0
    for table in stream.iter(batch_size=batch_size):
        for sigs, valid in signature_blocks(table.column(column), spec):
            yield np.arange(start, start + len(sigs), dtype=np.int64), sigs, valid
            start += len(sigs)


class _Reservoir:
    """A seeded uniform sample of ``size`` rows with a signature, over one pass of any batching (bottom-k keys)."""

    def __init__(self, size: int, seed: int, spec: SignatureSpec) -> None:
        self.size, self.seed, self.spec = size, seed, spec
        self.keys = np.empty(0, np.uint64)
        self.positions = np.empty(0, np.int64)
        self.sigs = np.empty((0, spec.num_layers, spec.top_k), np.dtype(spec.index_dtype))
        self.rows = 0
        self.null_rows = 0

    def add(self, positions: np.ndarray, sigs: np.ndarray, valid: np.ndarray | None) -> None:
        if valid is not None:
            self.null_rows += int((~valid).sum())
            positions, sigs = positions[valid], sigs[valid]
        self.rows += len(positions)
        keys = np.concatenate([self.keys, sample_keys(positions, self.seed)])
        pos = np.concatenate([self.positions, positions])
        keep = smallest_keys(keys, pos, self.size)
        self.keys, self.positions = keys[keep], pos[keep]
        self.sigs = np.concatenate([self.sigs, np.asarray(sigs)])[keep]

    def profile(self, description: str) -> NAGProfile:
        acc = _CountAccumulator(self.spec)
        acc.add(self.sigs)
        profile = acc.profile(description)
        profile.skipped_null = self.null_rows
        profile.sample_info = {"size": self.size, "seed": self.seed, "rows_with_signature": self.rows,
                               "sampled": len(self.sigs)}
        return profile
