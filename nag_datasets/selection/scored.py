"""A scored pool: every row kept, plus its float32 score against a profile, so others can cut at their own r_f.

The score column is named as selection names it (``nag_similarity`` for the paper's profile, ``nag_contrast_score``
for a contrastive one) and its feature records how the scores were computed (profile fingerprint and summary,
signature spec), so ``select_top_fraction(scored, r_f, token_column=..., score_column=...)`` on the published
pool writes a recipe that names the profile. Rows without a signature get a null score (outside the pool).

>>> import numpy as np
>>> from datasets import Dataset
>>> from nag_datasets.signatures.columns import attach_spec
>>> from nag_datasets.scoring.target_profile import NAGProfile
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
...                      layers=(0, 1), max_length=8, add_special_tokens=False, neurons_per_layer=4)
>>> profile = NAGProfile.from_signatures(np.array([[[0, 1], [2, 3]]]), spec)
>>> pool = attach_spec(Dataset.from_dict({"nag_fwd_up": [[[0, 1], [2, 3]], [[3, 1], [0, 3]]]}), spec, "nag_fwd_up")
>>> score_pool(pool, profile)["nag_similarity"][:]
[1.0, 0.5]
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..scoring.profile_base import Profile
from ..signatures.arrow import add_row_column
from .budgeted import _profile_fields
from .recipe import score_feature

__all__ = ["SCORED_KIND", "score_pool"]

#: The ``kind`` recorded in a score column written by :func:`score_pool`.
SCORED_KIND = "nag_profile_score"


def score_pool(ds: Any, profile: Profile, column: str | None = None, *, out_column: str | None = None) -> Any:
    """``ds`` with every row kept and ``out_column`` (default ``profile.score_column``) = ``profile.score(ds)``.

    The values are the float32 scores of :meth:`Profile.score <nag_datasets.scoring.profile_base.Profile.score>` bit for
    bit (null where it gives NaN); the signature ``column`` (default ``nag_<neuron_type>``) is checked against the
    profile's spec first. The column's feature records the profile (see
    :func:`nag_datasets.selection.recipe.get_score_info`).
    """
    from ..signatures.spec_column import require_dataset

    require_dataset(ds, "score_pool")
    column = profile.check_column(ds, column)
    out_column = out_column or profile.score_column
    if out_column == column:
        raise InvalidArgumentError(f"out_column {out_column!r} would replace the signature column it is computed from")
    scores = profile.score(ds, column)
    info = {"kind": SCORED_KIND, "higher_is_better": True, **_profile_fields(profile, ds, column)}
    key = f"{ds._fingerprint}\0{profile.fingerprint}\0{column}\0{out_column}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    missing = np.isnan(scores)
    return add_row_column(
        ds,
        out_column,
        np.where(missing, np.float32(0), scores),
        score_feature(info, "float32"),
        fingerprint,
        null_mask=missing,
    )
