"""Publishing selections and profiles on the Hugging Face Hub.

``templates`` (card templates from ``hub_cards/``, file names), ``figure`` (score histogram and its PNG), ``configs``
(several configs per folder or repo, laid out as ``Dataset.push_to_hub`` does), ``card`` (the dataset card of an
export) and ``reproduce`` (its how-to-reproduce code), ``export`` (:func:`export_for_hub`, :func:`regenerate_card`),
``upload`` (:func:`push_to_hub`: revision, pull requests, large folders), ``profile_card`` (profile cards,
:func:`push_profile`, :func:`load_profile`).
"""

from __future__ import annotations

from .export import export_for_hub, regenerate_card
from .profile_card import load_profile, profile_card, push_profile
from .templates import size_category, template_path
from .upload import HubPublishError, push_to_hub

__all__ = [
    "HubPublishError",
    "export_for_hub",
    "load_profile",
    "profile_card",
    "push_profile",
    "push_to_hub",
    "regenerate_card",
    "size_category",
    "template_path",
]
