"""Publishing selections and profiles on the Hugging Face Hub: export folders, dataset cards, uploads."""

from __future__ import annotations

from .export import (
    HubPublishError,
    export_for_hub,
    load_profile,
    profile_card,
    push_profile,
    push_to_hub,
    regenerate_card,
    register_cli,
    size_category,
    template_path,
)

__all__ = [
    "HubPublishError",
    "export_for_hub",
    "load_profile",
    "profile_card",
    "push_profile",
    "push_to_hub",
    "regenerate_card",
    "register_cli",
    "size_category",
    "template_path",
]
