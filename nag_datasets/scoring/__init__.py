"""Scoring: target profiles and the compiled kernel that scores signatures against them.

``kernel`` (the hot loop, with a numpy reference), ``counting`` (exact neuron counts, seeded background samples),
``sampling`` (seeded bottom-k keys), ``weighting`` (the contrastive weightings, a small method family),
``profile_files`` (a saved profile's two files), ``map_callables`` (``map``/``filter`` callables),
``profile_base`` (:class:`Profile`: what every kind shares), ``contrastive`` (:class:`ContrastiveProfile`),
``embedding_stats`` (the rows a profile keeps with their embeddings), ``embedding_model`` (the embedding signal: a
linear score on centred embeddings, learned or centred), ``fusion`` (:class:`FusedProfile`: the embedding and hybrid
signals), ``fused_scorer`` (its ``map``/``filter`` callable), ``target_profile`` (:class:`NAGProfile`: the paper's
profile; ``contrast``; loading of every kind).

>>> from nag_datasets.scoring import NAGProfile, Profile
>>> issubclass(NAGProfile, Profile)
True
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "Profile": "profile_base",
    "NAGProfile": "target_profile",
    "ContrastiveProfile": "contrastive",
    "FusedProfile": "fusion",
    "ProfileError": "profile_files",
    "Weighting": "weighting",
    "WeightingError": "weighting",
    "WEIGHTINGS": "weighting",
    "get_weighting": "weighting",
    "SignatureIndexError": "kernel",
    "score_signatures": "kernel",
}
__all__ = [
    "WEIGHTINGS",
    "ContrastiveProfile",
    "FusedProfile",
    "NAGProfile",
    "Profile",
    "ProfileError",
    "SignatureIndexError",
    "Weighting",
    "WeightingError",
    "get_weighting",
    "score_signatures",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
