"""The target profile: how often each neuron appears in the target documents' NAGs, and scoring against it.

``counts[l, k]`` is the number of target documents whose layer-``l`` NAG contains neuron ``k``; the method's
weights are ``counts / num_targets`` (each row sums to K). A document's similarity to the targets is the mean of
the weights at its signature's neurons, which equals its mean Dice overlap with the target NAGs.

>>> import numpy as np
>>> from nag_datasets.signatures.spec import SignatureSpec
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

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..signatures.arrow import dataset_blocks, row_indices, signature_blocks, table_column, table_length
from ..signatures.columns import column_name, get_spec
from ..signatures.spec import SignatureSpec, SpecError
from ..signatures.spec_column import check_dataset_column, dataset_spec, refuse_split_dict
from .counting import CountAccumulator, count_rows
from .kernel import KernelTable, counts_dtype, score_blocks
from .map_callables import SCORE_COLUMN, ScoreReport, SimilarityFilter, SimilarityScorer
from .profile_files import (
    PROFILE_FORMAT_VERSION,
    ProfileError,
    profile_kind,
    profile_location,
    profile_paths,
    read_profile_files,
    write_profile_files,
)

__all__ = ["NAGProfile", "ProfileError", "ScoreReport"]

#: Default size of a background sample (the whole pool when it is smaller); see the contrastive profile.
DEFAULT_BACKGROUND_SAMPLE = 10_000



#: Score the whole underlying table and take the indices when the mapping covers at least this share of it;
#: below, gather only the referenced rows.
FULL_TABLE_SHARE = 0.25


def score_dataset_column(ds: Any, column: str, spec: SignatureSpec, table: np.ndarray | KernelTable,
                         norm: int | None, *, num_threads: int | None = None) -> np.ndarray:
    """Scores (float32, NaN for null rows) of a Dataset's signature ``column`` against a scoring ``table``, in the
    dataset's row order: read zero-copy from Arrow, or, for a small selection of a large table, only the rows its
    indices mapping references. The caller has checked the column's spec."""
    idx = row_indices(ds)
    if idx is None or len(idx) >= FULL_TABLE_SHARE * table_length(ds):
        full = score_blocks(list(signature_blocks(table_column(ds, column), spec)), table, norm,
                            num_threads=num_threads)
        return full if idx is None else full[idx]
    parts = list(dataset_blocks(ds, column, spec))
    scores = score_blocks([(sigs, valid) for _, sigs, valid in parts], table, norm, num_threads=num_threads)
    out = np.empty(len(idx), np.float32)
    if parts:
        out[np.concatenate([positions for positions, _, _ in parts])] = scores
    return out


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
        acc = CountAccumulator(spec)
        acc.add(sigs, valid)
        return cls._from_accumulator(acc, description)

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
        from datasets import Dataset, DatasetDict, IterableDatasetDict

        if isinstance(ds, (DatasetDict, IterableDatasetDict)):
            raise TypeError(f"from_dataset needs one split, got a {type(ds).__name__} with splits {list(ds)}: "
                            "pass e.g. ds['train']")
        if sample is not None and int(sample) < 1:
            raise ProfileError(f"sample must be >= 1, got {sample}")
        # A Dataset's spec may also come from its nag_spec column (plain map); a stream needs typed features.
        spec = dataset_spec(ds, column) if isinstance(ds, Dataset) else get_spec(ds, column)
        acc, sample_info = count_rows(ds, column, spec, sample=sample, seed=seed, batch_size=batch_size)
        return cls._from_accumulator(acc, description, sample_info=sample_info)

    @classmethod
    def _from_accumulator(cls, acc: CountAccumulator, description: str, *,
                          sample_info: dict[str, Any] | None = None) -> NAGProfile:
        return NAGProfile(acc.counts(), acc.num_targets, acc.spec, description, skipped_null=acc.skipped_null,
                          sample_info=sample_info)

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

    def scoring_table(self) -> tuple[np.ndarray | KernelTable, int | None]:
        """``(table, num_targets)`` for :func:`nag_datasets.scoring.kernel.score_blocks`: the counts and their divisor
        (a contrastive profile hands its prepared :class:`~nag_datasets.scoring.kernel.KernelTable` and ``None``)."""
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
        >>> from nag_datasets.signatures.spec import SignatureSpec
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
        return profile_kind("contrastive")(self, background, weighting, **params)

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
            # the spec was checked against the column by check_column (typed or nag_spec)
            scores = score_dataset_column(data, column, self.spec, *self.scoring_table(), num_threads=num_threads)
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
        >>> from nag_datasets.signatures.spec import SignatureSpec
        >>> spec = SignatureSpec(model_fingerprint="f", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=1,
        ...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=4)
        >>> profile = NAGProfile(np.array([[1, 0, 1, 0]]), 2, spec)
        >>> NAGProfile.load(profile.save("memory://doc-profile/p")).fingerprint() == profile.fingerprint()
        True
        """
        return write_profile_files(folder, self._tensors(), {**self._meta(), "fingerprint": self.fingerprint()},
                                   version=self._format_version)

    @classmethod
    def load(cls, folder: str | Path) -> NAGProfile:
        """Read a profile written by :meth:`save` (a contrastive one comes back as a contrastive profile); any
        missing, corrupt or altered file raises :class:`ProfileError`."""
        meta, tensors = read_profile_files(folder)
        meta_path, counts_path = profile_paths(folder)
        try:
            spec = SignatureSpec.from_dict(meta["spec"])
        except SpecError as e:
            raise ProfileError(f"{meta_path}: {e}") from None
        kind = meta.get("kind", "frequency")
        expected = {"counts", "background_counts"} if kind == "contrastive" else {"counts"}
        if set(tensors) != expected:
            raise ProfileError(f"{counts_path} must hold exactly the tensors {sorted(expected)}, found "
                               f"{sorted(tensors)}")
        try:
            profile = NAGProfile(tensors["counts"], meta["num_targets"], spec, meta.get("description", ""),
                                 skipped_null=meta.get("skipped_null", 0), sample_info=meta.get("sample"))
            if kind == "contrastive":
                profile = profile_kind("contrastive").from_saved(profile, tensors["background_counts"], meta)
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
        return cls.load(profile_location(folder_or_repo, revision, repo_type=repo_type, token=token))


