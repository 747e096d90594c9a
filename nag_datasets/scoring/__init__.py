"""Scoring: target profiles and the compiled kernel that scores signatures against them.

``kernel`` (the hot loop, with a numpy reference), ``_arrow`` (zero-copy reading of signature columns),
``target_profile`` (:class:`~nag_datasets.scoring.target_profile.NAGProfile`: the paper's profile, background
sampling), ``contrastive`` (:class:`~nag_datasets.scoring.contrastive.ContrastiveProfile`), ``weighting`` (the
contrastive weightings, a small method family), ``sampling`` (seeded bottom-k samples that do not depend on
batching).
"""

from . import contrastive as _contrastive  # noqa: F401  (registers the contrastive profile kind for load/contrast)
