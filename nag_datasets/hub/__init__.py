"""Publishing selections and profiles on the Hugging Face Hub.

``templates`` (card templates from ``hub_cards/``, file names), ``card_data`` (a card's YAML block and template
values), ``figure`` (score histogram and its PNG), ``configs`` (several configs per folder or repo, laid out as
``Dataset.push_to_hub`` does), ``card`` (the dataset card of an export) and ``reproduce`` (its how-to-reproduce
code), ``export`` (:func:`export_for_hub`, :func:`regenerate_card`), ``upload`` (:func:`push_to_hub`: revision,
pull requests, large folders), ``profiles`` (:func:`profile_card`, :func:`push_profile`). A published profile
loads with ``NAGProfile.from_pretrained``.

>>> from nag_datasets.hub import size_category
>>> size_category(5_000)
'1K<n<10K'
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "export_for_hub": "export",
    "regenerate_card": "export",
    "push_to_hub": "upload",
    "HubPublishError": "upload",
    "profile_card": "profiles",
    "push_profile": "profiles",
    "size_category": "templates",
    "template_path": "templates",
}
__all__ = ["HubPublishError", "export_for_hub", "profile_card", "push_profile", "push_to_hub", "regenerate_card",
           "size_category", "template_path"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
