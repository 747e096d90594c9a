"""What a card says, as dataclasses: the YAML blocks our cards add to ``huggingface_hub``'s ``DatasetCardData``
(``nag_selection``, ``nag_scored``, ``nag_profile``) and the values each card template shows.

Each class holds exactly the fields its template or YAML block uses, so a template variable that nothing sets (or a
value nothing shows) is a type error, not a blank in a published card. ``to_dict`` gives what the renderer takes.

>>> block = ScoredCardData(score_column="nag_contrast_score", score_kind="contrastive", profile_fingerprint="ab12",
...                        config_name="scored")
>>> block.to_dict()["score_column"]
'nag_contrast_score'
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..selection.recipe import SelectionRecipe
from ..signatures.spec import SignatureSpec

__all__ = ["ProfileCardContext", "ProfileCardData", "ScoredCardData", "SelectionCardData", "SubsetCardContext"]


class _Fields:
    """``to_dict``: the fields in declaration order, values as they are (not deep-copied as ``asdict`` would)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclasses.dataclass
class SelectionCardData(_Fields):
    """The ``nag_selection`` YAML block of a selection's card: how the rows were chosen, machine-readable."""

    kind: str
    fraction: float
    method: str
    top_k: int | None
    neuron_type: str | None
    model_name: str | None
    model_fingerprint: str | None
    spec_fingerprint: str | None
    profile_fingerprints: list[str | None]
    shares: list[float] | None
    quality_weight: float | None

    @classmethod
    def from_recipe(cls, recipe: SelectionRecipe) -> SelectionCardData:
        spec = recipe.spec
        return cls(
            kind=recipe.kind,
            fraction=recipe.fraction,
            method=recipe.method,
            top_k=spec["top_k"] if spec else None,
            neuron_type=spec["neuron_type"] if spec else None,
            model_name=(spec.get("model_name") or None) if spec else None,
            model_fingerprint=spec["model_fingerprint"] if spec else None,
            spec_fingerprint=SignatureSpec.from_dict(spec).fingerprint() if spec else None,
            profile_fingerprints=[p.get("fingerprint") for p in recipe.profiles],
            shares=recipe.shares,
            quality_weight=recipe.quality.get("weight") if recipe.quality else None,
        )


@dataclasses.dataclass
class ScoredCardData(_Fields):
    """The ``nag_scored`` YAML block of a scored pool's card: which column holds which profile's scores."""

    score_column: str
    score_kind: str | None
    profile_fingerprint: str | None
    config_name: str

    @classmethod
    def from_meta(cls, scored: dict[str, Any], config_name: str) -> ScoredCardData:
        return cls(score_column=scored["column"], score_kind=scored.get("score_kind"),
                   profile_fingerprint=(scored.get("profile") or {}).get("fingerprint"), config_name=config_name)


#: What a profile card's YAML takes from the profile's summary when it is there.
_SUMMARY_KEYS = ("score_kind", "weighting", "background", "signal", "nag_weight", "embedding")


@dataclasses.dataclass
class ProfileCardData(_Fields):
    """The ``nag_profile`` YAML block of a profile's card. ``score_kind``, ``weighting``, ``background``, ``signal``,
    ``nag_weight`` and ``embedding`` come from the profile's summary and are left out of the YAML when the summary
    lacks them."""

    fingerprint: str
    spec_fingerprint: str
    num_targets: int
    neuron_type: str
    top_k: int
    model_name: str | None
    model_fingerprint: str
    score_kind: str | None = None
    weighting: dict[str, Any] | None = None
    background: dict[str, Any] | None = None
    signal: str | None = None
    nag_weight: float | None = None
    embedding: dict[str, Any] | None = None

    @classmethod
    def from_profile(cls, profile: Any) -> ProfileCardData:
        spec = profile.spec
        summary = profile.summary()
        return cls(fingerprint=profile.fingerprint(), spec_fingerprint=spec.fingerprint(),
                   num_targets=profile.num_targets, neuron_type=spec.neuron_type, top_k=spec.top_k,
                   model_name=spec.model_name or None, model_fingerprint=spec.model_fingerprint,
                   **{k: summary[k] for k in _SUMMARY_KEYS if k in summary})

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in _SUMMARY_KEYS:
            if out[key] is None:
                del out[key]
        return out


@dataclasses.dataclass
class SubsetCardContext(_Fields):
    """The values ``hub_cards/selected_subset.md`` shows for one config of an export (a selection, a scored pool or
    rows without a recipe). The recipe's fields are None without a recipe."""

    title: str
    config_name: str
    data_dir: str
    recipe_path: str
    configs: list[dict[str, str]] | None
    license: str
    source_datasets: Any
    export_version: str
    recipe: SelectionRecipe | None
    documents: str
    tokens_text: str | None
    pool_text: str | None
    achieved_text: str | None
    excluded_text: str | None
    num_shards: int
    warnings: list[str]
    sources: list[dict[str, str]] | None
    sources_have_tokens: bool
    token_column: str
    source_column: str | None
    signature_columns: list[str]
    figure: str
    score_text: str
    repo_hint: str
    library_code: str
    cli_code: str
    #: A scored pool's column, kind and profile (None for a selection).
    scored: dict[str, Any] | None = None
    spec_rows: list[dict[str, str]] = dataclasses.field(default_factory=list)
    spec_fingerprint: str = ""
    rule_text: str | None = None
    kind_text: str | None = None
    fraction: str | None = None
    method_text: str | None = None
    quality: dict[str, Any] | None = None
    score_column: str | None = None
    higher_is_better: bool | None = None
    dedup: bool | None = None
    created: str | None = None
    recipe_version: str | None = None
    targets: list[dict[str, str]] = dataclasses.field(default_factory=list)
    contrasts: list[dict[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ProfileCardContext(_Fields):
    """The values ``hub_cards/target_profile.md`` shows for a saved profile."""

    title: str
    description: str
    license: str
    source_datasets: list[str]
    num_targets: str
    skipped_null: int
    fingerprint: str
    spec_fingerprint: str
    spec_rows: list[dict[str, str]]
    top_k: int
    num_layers: int
    neurons_per_layer: int
    top_layer: int
    top_neurons: list[dict[str, str]]
    repo_hint: str
    contrastive: bool
    summary: dict[str, Any]
