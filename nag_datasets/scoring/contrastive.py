"""The contrastive profile: weight each neuron by how much more often the targets' NAGs hold it than the pool's.

The paper's profile counts how often a neuron appears in the target NAGs, whatever its frequency elsewhere, so
neurons that almost every document activates dominate it. A contrastive profile compares the target counts with
a *background*, the plain profile of a uniform sample of the pool, through a :mod:`~nag_datasets.scoring.weighting`
(shrinkage toward the background by default). A document's score is the mean of the weights at its signature's
neurons:

    score(doc) = (1 / (L K)) * sum_{l, k} w[l, doc[l, k]]

It is not a Dice similarity: it can be negative, and only its order means anything. It is scored by the same
kernel and through the same entry points as the paper's profile (``score``, ``scorer``, ``filter``, selection,
quality mixing, Ray), with the float32 weights as the table. The weights are rounded to multiples of ``2**-s``, the
finest power of two at which their spread fits 16 bits (:func:`~nag_datasets.scoring.kernel.quantize_weights`;
``2**-12`` for a spread of 8 to 16, as in our pretraining run's tables), so that the kernel sums them exactly, as
16-bit integers, in the loop and at the speed of the paper's count table.

>>> import numpy as np
>>> from nag_datasets.scoring.target_profile import NAGProfile
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=4)
>>> target = NAGProfile.from_signatures(np.array([[[0, 1]], [[0, 2]]]), spec)          # neuron 0: everywhere
>>> background = NAGProfile.from_signatures(np.array([[[0, 3]], [[0, 3]], [[0, 1]]]), spec)
>>> profile = target.contrast(background, "log_odds", alpha=0.5)
>>> profile.weights.round(2)
array([[-0.05,  0.29,  1.39, -1.32]], dtype=float32)
>>> profile.score(np.array([[[0, 2]], [[0, 3]]]))                  # the target-specific neuron 2 wins
array([ 0.6687622, -0.6852722], dtype=float32)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..errors import WrongTypeError
from .kernel import KernelTable, prepare_table, quantize_weights
from .profile_base import Profile
from .profile_files import CONTRASTIVE_FORMAT_VERSION, ProfileError
from .weighting import Weighting, WeightingError, get_weighting

__all__ = ["CONTRAST_SCORE_COLUMN", "Contrasted", "ContrastiveProfile"]

#: The column a contrastive profile's scorer adds: named so that nobody reads it as a similarity.
CONTRAST_SCORE_COLUMN = "nag_contrast_score"


class Contrasted:
    """What every profile contrasted against a background refuses (mixed into :class:`ContrastiveProfile` and the
    fused profile): merging (merge the targets' plain profiles first) and contrasting again."""

    @classmethod
    def merge(cls, profiles: Any, *, description: str | None = None) -> Profile:
        """Refused: merge the targets' plain profiles (``NAGProfile.merge``), then contrast the merged one."""
        raise ProfileError("merge the targets' plain profiles, then contrast the merged profile with the background")

    def contrast(self, background: Profile, weighting: Any = "shrinkage", **params: Any) -> Profile:
        """Refused: this profile is contrasted already; contrast the plain target profile instead."""
        raise ProfileError("this profile is already contrastive; contrast the plain target profile instead")


class ContrastiveProfile(Contrasted, Profile):
    """A target profile weighted against a background profile (same spec); see the module docstring.

    Build it with :meth:`NAGProfile.contrast <nag_datasets.scoring.target_profile.NAGProfile.contrast>`: ``target`` and
    ``background`` are the plain profiles of the targets and of a pool sample. ``counts``/``num_targets`` are the
    target's, ``background`` is the background profile, ``weighting`` the
    :class:`~nag_datasets.scoring.weighting.Weighting`, and ``weights`` the float32 ``(L, N)`` table that scores
    documents (multiples of ``2**-s``, see the module docstring).
    """

    score_kind = "contrastive"
    score_column = CONTRAST_SCORE_COLUMN
    _format_version = CONTRASTIVE_FORMAT_VERSION

    def __init__(self, target: Profile, background: Profile, weighting: str | Weighting = "shrinkage",
                 **params: Any) -> None:
        if isinstance(target, ContrastiveProfile) or isinstance(background, ContrastiveProfile):
            raise ProfileError("contrast the plain (frequency) profiles of the target and of the background")
        for name, given in (("target", target), ("background", background)):
            if not isinstance(given, Profile):
                raise WrongTypeError(f"the {name} must be a profile (NAGProfile), got {type(given).__name__}")
        target.spec.check_compatible(background.spec, what="background profile", against="target profile")
        super().__init__(target.counts, target.num_targets, target.spec, target.description,
                         skipped_null=target.skipped_null, sample_info=target.sample_info)
        # The background's counts are what the weights use; rows it keeps for the embedding signal are not part of it.
        self.background = background.without_embeddings()
        self.weighting = get_weighting(weighting, **params)
        table = self.weighting.table(self.counts, self.num_targets, background.counts, background.num_targets)
        table = np.asarray(table, dtype=np.float64)
        if table.shape != self.counts.shape or not np.isfinite(table).all():
            bad = np.argwhere(~np.isfinite(table))
            where = f" (first at layer {bad[0][0]}, neuron {bad[0][1]})" if len(bad) else ""
            raise WeightingError(f"weighting {self.weighting.describe()} gave non-finite weights{where}")
        try:
            weights = np.ascontiguousarray(quantize_weights(table))
        except ValueError as e:
            raise WeightingError(f"weighting {self.weighting.describe()}: {e}") from None
        weights.flags.writeable = False
        self._weights = weights
        # The kernel's integer form, once: a float table would be converted again on every map batch.
        self._kernel_table = prepare_table(weights)

    # -- views -------------------------------------------------------------------------------------------------

    @property
    def weights(self) -> np.ndarray:
        """``w[l, k]``: the contrastive weight of neuron ``k`` of layer ``l`` (float32, any sign)."""
        return self._weights

    def scoring_table(self) -> tuple[KernelTable, int | None]:
        """``(KernelTable, None)``: the weights as the kernel sums them (see :func:`~.kernel.prepare_table`)."""
        return self._kernel_table, None

    def _compute_fingerprint(self) -> str:
        """Short hash of the target's and the background's counts and spec, and of the weighting's parameters."""
        h = hashlib.sha256(b"nag_datasets.contrastive/1\0")
        h.update(super()._compute_fingerprint().encode())
        h.update(b"\0" + self.background.fingerprint.encode())
        h.update(b"\0" + json.dumps(self.weighting.to_dict(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["signal"] = "nag"
        out["weighting"] = self.weighting.to_dict()
        out["background"] = {"fingerprint": self.background.fingerprint,
                             "num_documents": self.background.num_targets,
                             "description": self.background.description}
        if self.background.sample_info is not None:
            out["background"]["sample"] = dict(self.background.sample_info)
        return out

    def _repr_fields(self) -> list[str]:
        return [*super()._repr_fields(), f"num_targets={self.num_targets}",
                f"background_documents={self.background.num_targets}", f"weighting={self.weighting.describe()}"]

    def __eq__(self, other: object) -> bool:
        same = super().__eq__(other)
        if same is not True:
            return same
        assert isinstance(other, ContrastiveProfile)
        return self.background == other.background and self.weighting == other.weighting

    __hash__ = None  # type: ignore[assignment]

    # -- persistence -------------------------------------------------------------------------------------------

    def _tensors(self) -> dict[str, np.ndarray]:
        return {"counts": np.ascontiguousarray(self.counts),
                "background_counts": np.ascontiguousarray(self.background.counts)}

    def _meta(self) -> dict[str, Any]:
        meta = super()._meta()
        meta["kind"] = "contrastive"
        meta["weighting"] = self.weighting.to_dict()
        bg: dict[str, Any] = {"num_documents": self.background.num_targets,
                              "description": self.background.description,
                              "skipped_null": self.background.skipped_null,
                              "fingerprint": self.background.fingerprint}
        if self.background.sample_info is not None:
            bg["sample"] = dict(self.background.sample_info)
        meta["background"] = bg
        return meta

    @classmethod
    def from_saved(cls, target: Profile, background: Profile, meta: dict[str, Any]) -> ContrastiveProfile:
        """Rebuild a saved contrastive profile from its target and background profiles and its ``profile.json``
        (used by :meth:`NAGProfile.load <nag_datasets.scoring.target_profile.NAGProfile.load>`)."""
        stored = meta["background"].get("fingerprint")
        if stored is not None and stored != background.fingerprint:
            raise ProfileError(f"the background's counts or document count give fingerprint "
                               f"{background.fingerprint}, not the recorded {stored!r}")
        try:
            return cls(target, background, get_weighting(meta["weighting"]))
        except WeightingError as e:
            raise ProfileError(str(e)) from None
