"""What every profile kind shares: a target set's neuron counts for one spec, a scoring table made from them, the
entry points that score with that table, and the profile's saved files.

A kind says how its table is made (:meth:`Profile.scoring_table`, :attr:`Profile.weights`) and what it adds to its
files; scoring (``score``, ``scorer``, ``filter``, selection, Ray) and saving are the same for every kind. The paper's
profile is :class:`~nag_datasets.scoring.target_profile.NAGProfile` (weights = target frequencies); a contrastive
profile, :class:`~nag_datasets.scoring.contrastive.ContrastiveProfile`, weights the same counts against a background.
Saved profiles of every kind are read back by :meth:`NAGProfile.load
<nag_datasets.scoring.target_profile.NAGProfile.load>`.

>>> import numpy as np
>>> from nag_datasets.scoring.target_profile import NAGProfile
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=1,
...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=3)
>>> profile = NAGProfile.from_signatures(np.array([[[0]], [[2]]]), spec)
>>> isinstance(profile, Profile), profile.score(np.array([[[0]], [[1]]])).tolist()
(True, [0.5, 0.0])
"""

from __future__ import annotations

import abc
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import InvalidArgumentError, WrongTypeError
from ..signatures.arrow import dataset_blocks, row_indices, signature_blocks, table_column, table_length
from ..signatures.columns import column_name
from ..signatures.spec import SignatureSpec
from ..signatures.spec_column import check_dataset_column, refuse_split_dict
from .kernel import KernelTable, counts_dtype, score_blocks
from .map_callables import SCORE_COLUMN, ScoreReport, SimilarityFilter, SimilarityScorer
from .profile_files import EMBEDDING_FORMAT_VERSION, PROFILE_FORMAT_VERSION, ProfileError, write_profile_files

if TYPE_CHECKING:
    from .embedding_stats import EmbeddingStats

__all__ = ["Profile", "score_dataset_column"]

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


class Profile(abc.ABC):
    """A target set's neuron counts for one signature spec, scored through a table that each kind derives from them.

    ``counts[l, n]``: how many of the ``num_targets`` target documents have neuron ``n`` in their layer-``l`` NAG.
    """

    #: What the score is (``"similarity"``: the paper's mean Dice similarity in [0, 1]; ``"contrastive"``: any sign).
    score_kind: ClassVar[str] = "similarity"
    #: The column :meth:`scorer` adds by default.
    score_column: ClassVar[str] = SCORE_COLUMN
    #: The ``format_version`` of the saved ``profile.json``.
    _format_version: ClassVar[int] = PROFILE_FORMAT_VERSION
    #: The embedding column a profile with the embedding signal reads (None: it reads signatures only).
    embedding_spec: ClassVar[Any] = None

    def __init__(
        self,
        counts: np.ndarray,
        num_targets: int,
        spec: SignatureSpec,
        description: str = "",
        *,
        skipped_null: int = 0,
        sample_info: dict[str, Any] | None = None,
        embedding_stats: EmbeddingStats | None = None,
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
        if embedding_stats is not None:
            embedding_stats.spec.check_pairs_with(spec, what="the profile's embeddings",
                                                  against="its signature spec")
            if embedding_stats.signatures.shape[1:] != (spec.num_layers, spec.top_k):
                raise ProfileError(f"the profile's rows have signatures of shape "
                                   f"{embedding_stats.signatures.shape[1:]}, the spec says "
                                   f"({spec.num_layers}, {spec.top_k})")
        #: The rows behind the counts with their embeddings (None when the data had no embedding column); the
        #: embedding and hybrid signals of :meth:`contrast` are fitted from them.
        self.embedding_stats = embedding_stats

    # -- what a kind defines -----------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def weights(self) -> np.ndarray:
        """``w[l, n]``: what neuron ``n`` of layer ``l`` adds to a document's score (times ``L * K``)."""

    @abc.abstractmethod
    def scoring_table(self) -> tuple[np.ndarray | KernelTable, int | None]:
        """``(table, divisor)`` for :func:`nag_datasets.scoring.kernel.score_blocks`."""

    def fingerprint(self) -> str:
        """Short hash of counts, spec (compared fields), number of targets and, when the profile keeps them, its rows'
        embeddings and signatures; the description is not part of it."""
        h = hashlib.sha256(b"nag_datasets.profile/1\0")
        h.update(self.spec.fingerprint().encode())
        h.update(f"\0{self.num_targets}\0{self.counts.shape}\0".encode())
        h.update(self.counts.astype("<u4").tobytes())
        if self.embedding_stats is not None:
            h.update(b"\0embeddings\0" + self.embedding_stats.digest().encode())
        return h.hexdigest()[:16]

    def without_embeddings(self) -> Profile:
        """This profile without its rows' embeddings (counts, spec and provenance kept); itself when it has none."""
        if self.embedding_stats is None:
            return self
        return type(self)(self.counts, self.num_targets, self.spec, self.description,
                          skipped_null=self.skipped_null, sample_info=self.sample_info)

    def summary(self) -> dict[str, Any]:
        """What a selection records about the profile (report, recipe, card)."""
        out: dict[str, Any] = {"fingerprint": self.fingerprint(), "description": self.description,
                               "num_targets": self.num_targets, "score_kind": self.score_kind}
        if self.sample_info is not None:
            out["sample"] = dict(self.sample_info)
        if self.embedding_stats is not None:
            out["embeddings"] = {"rows": self.embedding_stats.num_rows,
                                 "spec_fingerprint": self.embedding_stats.spec.fingerprint(),
                                 "layer": self.embedding_stats.spec.layer}
        return out

    def _repr_fields(self) -> list[str]:
        return [f"neuron_type={self.spec.neuron_type!r}", f"layers={self.spec.num_layers}", f"top_k={self.spec.top_k}"]

    def __repr__(self) -> str:
        desc = [f"description={self.description!r}"] if self.description else []
        return f"{type(self).__name__}({', '.join(self._repr_fields() + desc)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            type(self) is type(other)
            and self.spec == other.spec
            and self.num_targets == other.num_targets
            and self.description == other.description
            and np.array_equal(self.counts, other.counts)
            and self.embedding_stats == other.embedding_stats
        )

    __hash__ = None  # type: ignore[assignment]

    # -- scoring -----------------------------------------------------------------------------------------------

    @property
    def default_column(self) -> str:
        return column_name(self.spec.neuron_type)

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
        """Score of every row (float32; NaN for null signatures), in the rows' order.

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
            raise WrongTypeError(
                f"score needs a datasets.Dataset or an (n, L, K) array, got {type(data).__name__}; for a "
                "streaming dataset use ds.map(profile.scorer_for(ds), batched=True), for a DatasetDict score each split"
            )
        else:
            sigs = np.asarray(data)
            shape = (self.spec.num_layers, self.spec.top_k)
            if sigs.ndim != 3 or sigs.shape[1:] != shape:
                raise InvalidArgumentError(f"signatures have shape {sigs.shape}, the profile expects (n, {shape[0]}, "
                                           f"{shape[1]})")
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

    def arrow_columns(self, column: str | None = None) -> list[str]:
        """The columns :meth:`score_arrow` reads (the signature column; a fused profile adds the embedding)."""
        return [column or self.default_column]

    def column_specs(self, column: str | None = None) -> dict[str, Any]:
        """``{column: spec}`` of the columns the profile reads, for checks of files outside `datasets` (Ray)."""
        return {column or self.default_column: self.spec}

    def score_arrow(self, table: Any, column: str | None = None) -> np.ndarray:
        """Scores (float32, NaN for null rows) of a ``pyarrow.Table`` holding :meth:`arrow_columns`, whose specs the
        caller has checked (the Ray selection's workers score parquet row groups with it)."""
        blocks = list(signature_blocks(table.column(column or self.default_column), self.spec))
        if not blocks:
            return np.zeros(0, np.float32)
        table_, norm = self.scoring_table()
        return score_blocks(blocks, table_, norm, num_threads=1)

    def scorer_for(self, ds: Any, column: str | None = None, *, out_column: str | None = None) -> SimilarityScorer:
        """:meth:`scorer` after checking that ``ds[column]`` was computed with the profile's spec."""
        return self.scorer(column, out_column=out_column, dataset=ds)

    def filter(self, min_similarity: float, column: str | None = None, *, dataset: Any = None,
               check_spec: bool = True) -> SimilarityFilter:
        """A ``ds.filter(fn, batched=True)`` callable keeping rows with a score >= ``min_similarity``.

        Null signatures never pass. The spec is checked as in :meth:`scorer`.
        """
        return SimilarityFilter(self.scorer(column, dataset=dataset, check_spec=check_spec), min_similarity)

    # -- persistence -------------------------------------------------------------------------------------------

    def _tensors(self) -> dict[str, np.ndarray]:
        """The arrays :meth:`save` writes (a contrastive profile adds the background's counts; a profile that keeps
        its rows, their embeddings and signatures)."""
        out = {"counts": np.ascontiguousarray(self.counts)}
        if self.embedding_stats is not None:
            out["row_embeddings"] = self.embedding_stats.embeddings
            out["row_signatures"] = self.embedding_stats.signatures
        return out

    def _meta(self) -> dict[str, Any]:
        """The JSON fields :meth:`save` writes besides format, hash and fingerprint."""
        meta: dict[str, Any] = {"spec": self.spec.to_dict(), "num_targets": self.num_targets,
                                "description": self.description, "skipped_null": self.skipped_null}
        if self.sample_info is not None:
            meta["sample"] = dict(self.sample_info)
        if self.embedding_stats is not None:
            meta["embedding"] = {"spec": self.embedding_stats.spec.to_dict(), "column": self.embedding_stats.column}
        return meta

    def _file_version(self) -> int:
        """The ``format_version`` this profile is saved with: its kind's, or 3 when it keeps its rows' embeddings."""
        return EMBEDDING_FORMAT_VERSION if self.embedding_stats is not None else self._format_version

    def save(self, folder: str | Path) -> Path | str:
        """Write ``profile.safetensors`` (counts) and ``profile.json`` (spec, hash) into ``folder``, atomically.

        An existing profile folder is replaced; a folder holding anything else is refused. ``folder`` may be an
        fsspec URL (returned as given): the counts are written first, ``profile.json`` last. Read it back with
        :meth:`NAGProfile.load <nag_datasets.scoring.target_profile.NAGProfile.load>`, whatever its kind.

        >>> import numpy as np
        >>> from nag_datasets.scoring.target_profile import NAGProfile
        >>> from nag_datasets.signatures.spec import SignatureSpec
        >>> spec = SignatureSpec(model_fingerprint="f", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=1,
        ...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=4)
        >>> profile = NAGProfile(np.array([[1, 0, 1, 0]]), 2, spec)
        >>> NAGProfile.load(profile.save("memory://doc-profile/p")).fingerprint() == profile.fingerprint()
        True
        """
        return write_profile_files(folder, self._tensors(), {**self._meta(), "fingerprint": self.fingerprint()},
                                   version=self._file_version())
