"""Card templates shipped with the package (``hub_cards/``), the file names of an export, and markdown helpers.

>>> size_category(999), size_category(1000)
('n<1K', '1K<n<10K')
>>> template_path("selected_subset.md").name
'selected_subset.md'
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError
from ..scoring.profile_files import HUB_CARD_FILE

__all__ = ["CARD_FILE", "size_category", "template_path"]


SUBSET_TEMPLATE = "selected_subset.md"


PROFILE_TEMPLATE = "target_profile.md"


RECIPE_FILE = "nag_recipe.json"


FIGURE_FILE = "score_distribution.png"


CARD_FILE = HUB_CARD_FILE


DATA_DIR = "data"


EXPORT_FORMAT = "nag_datasets.hub_export"


EXPORT_FORMAT_VERSION = 1


DEFAULT_MAX_SHARD_ROWS = 100_000


#: Shards are cut to at most this many bytes of Arrow data, as ``Dataset.push_to_hub`` cuts them.
DEFAULT_MAX_SHARD_SIZE = "500MB"


DEFAULT_TAGS = ("nag", "nag-datasets", "data-selection")


_MAX_SOURCES = 30


#: Settings of a card that are not in the data: stored in ``nag_recipe.json`` so ``regenerate_card`` can reuse them.
CARD_SETTINGS = ("license", "source_datasets", "pretty_name", "source_column", "token_column", "task_categories",
                 "tags", "repo_id", "language")


# The Hub's size buckets, by upper bound (exclusive).
_SIZE_BUCKETS = (
    (10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)


def template_path(name: str) -> Path:
    """Path of a card template shipped in the package (``nag_datasets.hub_cards``: the top-level ``hub_cards/``
    folder, mapped into the package by ``setup.py``), editable install or wheel alike."""
    resource = importlib.resources.files("nag_datasets.hub_cards").joinpath(name)
    if not resource.is_file():
        raise InputNotFoundError(f"card template {name!r} is not installed with nag_datasets (looked for {resource})")
    return Path(str(resource))


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` bucket for ``num_rows`` examples."""
    for bound, label in _SIZE_BUCKETS:
        if num_rows < bound:
            return label
    return "n>1T"


def _cell(value: Any) -> str:
    """A value safe inside a markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _int(n: int | None) -> str:
    return "unknown" if n is None else f"{int(n):,}"


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.4g} ({100 * x:.2f}%)"


def _layers_text(layers: Sequence[int]) -> str:
    layers = list(layers)
    if layers == list(range(layers[0], layers[0] + len(layers))):
        return f"{layers[0]}-{layers[-1]} ({len(layers)} layers)" if len(layers) > 1 else f"{layers[0]} (1 layer)"
    return ", ".join(map(str, layers)) + f" ({len(layers)} layers)"


def _spec_rows(spec: dict[str, Any]) -> list[tuple[str, str]]:
    def fmt(value: Any) -> str:
        return _cell(value) if value not in ("", None) else "(not recorded)"

    return [
        ("model", fmt(spec.get("model_name"))),
        ("model weights fingerprint", f"`{fmt(spec['model_fingerprint'])}`"),
        ("tokenizer fingerprint", f"`{fmt(spec['tokenizer_fingerprint'])}`"),
        ("neuron type", f"`{fmt(spec['neuron_type'])}`"),
        ("K (top_k)", str(spec["top_k"])),
        ("layers", _layers_text(spec["layers"])),
        ("max_length (tokens)", str(spec["max_length"])),
        ("add_special_tokens", str(spec["add_special_tokens"])),
        ("neurons per layer", str(spec["neurons_per_layer"])),
        ("impact definition version", fmt(spec.get("impact_version"))),
        ("dtype (recorded)", fmt(spec.get("dtype"))),
        ("attention implementation (recorded)", fmt(spec.get("attn_implementation"))),
        ("library version (recorded)", fmt(spec.get("library_version"))),
    ]


def _render(template: str, card_data: Any, context: dict[str, Any]) -> str:
    from huggingface_hub import DatasetCard

    return str(DatasetCard.from_template(card_data, template_path=str(template_path(template)), **context))


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]
