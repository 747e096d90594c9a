"""Scoring: target profiles and the compiled kernel that scores signatures against them.

``kernel`` (the hot loop, with a numpy reference), ``_arrow`` (zero-copy reading of signature columns),
``target_profile`` (:class:`~nag_datasets.scoring.target_profile.NAGProfile`).
"""
