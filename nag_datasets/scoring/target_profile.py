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

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidArgumentError, WrongTypeError
from ..signatures.columns import get_spec
from ..signatures.spec import SignatureSpec, SpecError
from ..signatures.spec_column import dataset_spec
from .contrastive import ContrastiveProfile
from .counting import CountAccumulator, count_rows
from .fusion import DEFAULT_NAG_WEIGHT, SIGNALS, FusedProfile
from .map_callables import ScoreReport
from .profile_base import Profile
from .profile_files import ProfileError, profile_location, profile_paths, read_profile_files

if TYPE_CHECKING:
    from .embedding_stats import EmbeddingStats

__all__ = ["NAGProfile", "ProfileError", "ScoreReport"]

#: Default size of a background sample (the whole pool when it is smaller); see the contrastive profile.
DEFAULT_BACKGROUND_SAMPLE = 10_000

#: The tensors a saved profile holds, by (kind, keeps its rows' embeddings).
_TENSORS = {
    ("frequency", False): {"counts"},
    ("frequency", True): {"counts", "row_embeddings", "row_signatures"},
    ("contrastive", False): {"counts", "background_counts"},
    ("fused", False): {"counts", "background_counts", "embedding_mu_b", "embedding_coef"},
}


def _embedding_column(ds: Any, embedding: str | bool | None) -> str | None:
    """The embedding column ``from_dataset`` reads: the default one when present (``embedding=True``), a named one
    (refused when missing), or none (``embedding=False``/None)."""
    from ..signatures.embedding_column import EMBEDDING_COLUMN, require_embedding_column

    if embedding is None or embedding is False:
        return None
    columns = list(ds.features or {}) if getattr(ds, "features", None) is not None else list(ds.column_names or [])
    if embedding is True:
        return EMBEDDING_COLUMN if EMBEDDING_COLUMN in columns else None
    if not isinstance(embedding, str):
        raise WrongTypeError(f"embedding must be a column name, True (the default column when present) or False, got "
                             f"{type(embedding).__name__}")
    require_embedding_column(columns, embedding, "from_dataset(embedding=...)")
    return embedding


def _merged_rows(profiles: Sequence[Profile]) -> EmbeddingStats | None:
    """The rows of merged profiles, when all keep theirs with one embedding spec (else None, with a warning when only
    some have them)."""
    kept = [p.embedding_stats for p in profiles if p.embedding_stats is not None]
    if not kept:
        return None
    if len(kept) < len(profiles) or any(r.spec != kept[0].spec or r.column != kept[0].column for r in kept):
        warnings.warn("merge: not every profile keeps its rows' embeddings with one embedding spec, so the merged "
                      "profile keeps none (it scores with the NAG signal only)", UserWarning, stacklevel=3)
        return None
    from .embedding_stats import EmbeddingStats

    return EmbeddingStats(kept[0].spec, np.concatenate([r.embeddings for r in kept]),
                          np.concatenate([r.signatures for r in kept]), kept[0].column)


class NAGProfile(Profile):
    """The paper's profile: neuron counts of a target set for one signature spec, weighted by their frequency; see
    the module docstring. Scoring and saving are :class:`~nag_datasets.scoring.profile_base.Profile`'s."""

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
        embedding: str | bool | None = True,
    ) -> NAGProfile:
        """Profile of the rows of ``ds[column]`` (null rows are skipped and counted in ``skipped_null``).

        ``ds`` is a `datasets.Dataset` (read zero-copy from Arrow) or an ``IterableDataset`` (one streamed pass in
        batches of ``batch_size``; memory bounded by the batch and the sample). With ``sample=n`` the profile is
        of a uniform random sample of ``n`` rows with a signature (all of them when there are fewer), drawn with
        ``seed`` in a way that does not depend on batching: a streamed pool and the same pool in memory give the
        same profile. That is how a contrastive profile's background is made (see :meth:`contrast`).

        When ``ds`` has an embedding column (``nag_embedding``, from ``NAGFeaturizer(..., embedding="last")``) the
        profile also keeps its rows' embeddings and signatures (the sample's rows with ``sample=n``), from which
        :meth:`contrast` fits the embedding and hybrid signals; ``embedding="name"`` names another embedding column,
        ``embedding=False`` ignores it. The embedding must come from the same model, tokenizer and text cut as the
        signatures (refused otherwise, naming the fields); a row with a signature but no embedding is refused.
        """
        from datasets import Dataset, DatasetDict, IterableDatasetDict

        if isinstance(ds, (DatasetDict, IterableDatasetDict)):
            raise WrongTypeError(f"from_dataset needs one split, got a {type(ds).__name__} with splits {list(ds)}: "
                                 "pass e.g. ds['train']")
        if sample is not None and int(sample) < 1:
            raise ProfileError(f"sample must be >= 1, got {sample}")
        # A Dataset's spec may also come from its nag_spec column (plain map); a stream needs typed features.
        spec = dataset_spec(ds, column) if isinstance(ds, Dataset) else get_spec(ds, column)
        emb_column = _embedding_column(ds, embedding)
        if emb_column is None:
            acc, sample_info = count_rows(ds, column, spec, sample=sample, seed=seed, batch_size=batch_size)
            return cls._from_accumulator(acc, description, sample_info=sample_info)
        from ..signatures.embedding_column import dataset_embedding_spec, embedding_spec_from_feature
        from .embedding_stats import count_rows_with_embeddings

        emb_spec = (dataset_embedding_spec(ds, emb_column) if isinstance(ds, Dataset)
                    else embedding_spec_from_feature(ds.features[emb_column]))
        if emb_spec is None:
            raise SpecError(f"the streamed column {emb_column!r} carries no embedding spec: stream files written by "
                            "this library (their schema keeps it), or pass embedding=False")
        emb_spec.check_pairs_with(spec, what=f"embedding column {emb_column!r}", against=f"signature column {column!r}")
        acc, sample_info, rows = count_rows_with_embeddings(ds, column, spec, emb_column, emb_spec, sample=sample,
                                                            seed=seed, batch_size=batch_size)
        return cls._from_accumulator(acc, description, sample_info=sample_info, embedding_stats=rows)

    @classmethod
    def _from_accumulator(cls, acc: CountAccumulator, description: str, *,
                          sample_info: dict[str, Any] | None = None,
                          embedding_stats: EmbeddingStats | None = None) -> NAGProfile:
        return cls(acc.counts(), acc.num_targets, acc.spec, description, skipped_null=acc.skipped_null,
                   sample_info=sample_info, embedding_stats=embedding_stats)

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
            embedding_stats=_merged_rows(profiles),
        )

    # -- the table ----------------------------------------------------------------------------------------------

    @property
    def weights(self) -> np.ndarray:
        """``w[l, k]``: share of targets whose layer-``l`` NAG contains neuron ``k`` (float64; rows sum to K)."""
        return self.counts.astype(np.float64) / self.num_targets

    def scoring_table(self) -> tuple[np.ndarray, int]:
        """``(counts, num_targets)``: the kernel sums the counts exactly and divides once."""
        return self.counts, self.num_targets

    def _repr_fields(self) -> list[str]:
        return [*super()._repr_fields(), f"neurons_per_layer={self.spec.neurons_per_layer}",
                f"num_targets={self.num_targets}"]

    def contrast(self, background: NAGProfile, weighting: Any = "shrinkage", *, signal: str | None = None,
                 nag_weight: float = DEFAULT_NAG_WEIGHT, embedding_model: str = "learned", **params: Any) -> Profile:
        """A contrastive profile: this (target) profile against ``background``, scoring with ``signal``:

        - ``"nag"``: the contrastive NAG profile (:class:`nag_datasets.scoring.contrastive.ContrastiveProfile`,
          below);
        - ``"embedding"``: the embedding signal alone (:mod:`nag_datasets.scoring.embedding_model`;
          ``embedding_model="learned"``, the default: a cross-validated logistic regression of the target rows against
          the background rows on centred unit embeddings, its log-odds; ``"centred"``: the cosine of the centred
          embedding with the direction from the background mean to the targets' mean);
        - ``"hybrid"``: ``nag_weight * z(NAG) + (1 - nag_weight) * z(embedding)``, z-scored against the background
          rows' own scores (:class:`nag_datasets.scoring.fusion.FusedProfile`);
        - None (default): the shipped default, ``"hybrid"``, when both profiles keep their rows' embeddings (made from
          data featurized with ``embedding="last"``); otherwise ``"nag"``, with a ``UserWarning`` saying how to get the
          hybrid.

        The NAG component is this contrastive profile:

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
        if signal is not None and signal not in SIGNALS:
            raise InvalidArgumentError(f"signal must be one of {SIGNALS} or None (the default), got {signal!r}")
        if weighting == "frequency":
            if params:
                raise ProfileError(f"the frequency weighting takes no parameters, got {sorted(params)}")
            if signal not in (None, "nag"):
                raise ProfileError(f"the frequency weighting is the paper's profile, a NAG signal: signal={signal!r} "
                                   "needs a contrastive weighting")
            return self
        if signal is None:
            both = self.embedding_stats is not None and getattr(background, "embedding_stats", None) is not None
            if not both:
                lacking = [name for name, p in (("target", self), ("background", background))
                           if getattr(p, "embedding_stats", None) is None]
                which = "the target and the background profiles keep" if len(lacking) == 2 else (
                    f"the {lacking[0]} profile keeps")
                warnings.warn(
                    f"contrast(): {which} no embeddings, so this profile scores with the NAG signal "
                    "alone, not the shipped default (signal='hybrid': 0.2 z(NAG) + 0.8 z(embedding model)). To get the "
                    "hybrid, featurize target and pool with NAGFeaturizer(..., embedding='last') (command line: "
                    "featurize --embedding last) and build both profiles from that data; pass signal='nag' to choose "
                    "the NAG signal without this warning.", UserWarning, stacklevel=2)
            signal = "hybrid" if both else "nag"
        if signal == "nag":
            return ContrastiveProfile(self, background, weighting, **params)
        return FusedProfile.fit(self, background, signal=signal, weighting=weighting, nag_weight=nag_weight,
                                embedding_model=embedding_model, **params)

    @classmethod
    def load(cls, folder: str | Path) -> Profile:
        """Read a profile written by :meth:`~nag_datasets.scoring.profile_base.Profile.save`, of the kind its files
        record (a contrastive one comes back as a :class:`ContrastiveProfile`); any missing, corrupt or altered file
        raises :class:`ProfileError`. The one place that knows every kind of saved profile."""
        meta, tensors = read_profile_files(folder)
        meta_path, counts_path = profile_paths(folder)
        try:
            spec = SignatureSpec.from_dict(meta["spec"])
        except SpecError as e:
            raise ProfileError(f"{meta_path}: {e}") from None
        kind = meta.get("kind", "frequency")
        expected = _TENSORS.get((kind, "embedding" in meta and kind == "frequency"), {"counts"})
        if kind not in ("frequency", "contrastive", "fused"):
            raise ProfileError(f"{meta_path} has an unknown profile kind {kind!r}")
        if set(tensors) != expected:
            raise ProfileError(f"{counts_path} must hold exactly the tensors {sorted(expected)}, found "
                               f"{sorted(tensors)}")
        try:
            rows = None
            if kind == "frequency" and "embedding" in meta:
                from ..signatures.embedding_spec import EmbeddingSpec
                from .embedding_stats import EmbeddingStats

                rows = EmbeddingStats(EmbeddingSpec.from_dict(meta["embedding"]["spec"]), tensors["row_embeddings"],
                                      tensors["row_signatures"], meta["embedding"].get("column", "nag_embedding"))
            profile: Profile = NAGProfile(tensors["counts"], meta["num_targets"], spec, meta.get("description", ""),
                                          skipped_null=meta.get("skipped_null", 0), sample_info=meta.get("sample"),
                                          embedding_stats=rows)
            if kind in ("contrastive", "fused"):
                bg = meta["background"]
                background = NAGProfile(tensors["background_counts"], bg["num_documents"], spec,
                                        bg.get("description", ""), skipped_null=bg.get("skipped_null", 0),
                                        sample_info=bg.get("sample"))
                profile = ContrastiveProfile.from_saved(profile, background, meta)
            if kind == "fused":
                profile = FusedProfile.from_saved(profile, meta, tensors)  # type: ignore[arg-type]
        except ProfileError as e:
            raise ProfileError(f"{folder}: {e}") from None
        except SpecError as e:
            raise ProfileError(f"{meta_path}: {e}") from None
        except (TypeError, ValueError, KeyError) as e:
            raise ProfileError(f"{meta_path} holds a malformed value: {e}") from None
        # The counts are covered by their sha256; the spec, num_targets and weighting by the stored fingerprint.
        stored = meta.get("fingerprint")
        if stored is not None and stored != profile.fingerprint():
            raise ProfileError(
                f"{meta_path} was changed after saving: its spec, num_targets, weighting or embedding model give "
                f"fingerprint "
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
    ) -> Profile:
        """A profile of any kind from a local folder (:meth:`load`) or else a Hub repo (downloaded, cached, then
        loaded).

        Cards for profiles are written by :func:`nag_datasets.hub.profile_card`; only the profile's files (and its
        card) are downloaded.
        """
        return cls.load(profile_location(folder_or_repo, revision, repo_type=repo_type, token=token))


