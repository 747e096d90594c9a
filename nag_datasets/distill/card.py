"""The distilled scorer's card (``hub_cards/distilled_scorer.md``) and its upload to the Hub.

The card is rendered from ``distilled.json`` alone, so ``write_card(folder)`` can regenerate it at any time.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..hub.card_data import _Fields
from ..hub.templates import CARD_FILE, DEFAULT_TAGS, _cell, _render
from ..hub.upload import _resolve_token, _upload
from ..storage.atomic import atomic_write_text
from .scorer import META_FILE, WORDS, DistilledScorer

__all__ = ["DISTILLED_TEMPLATE", "DistilledCardContext", "push_scorer", "write_card"]

DISTILLED_TEMPLATE = "distilled_scorer.md"

_MODEL_TEXT = {"fasttext": "fastText classifier (word uni- and bigrams)",
               "linear": "linear model on hashed word uni- and bigrams (scikit-learn)"}


def _model_text(meta: dict[str, Any]) -> str:
    """One line naming the model and its features, from the saved parameters."""
    params = meta.get("params") or {}
    if meta["model"] == "linear" and int(params.get("char_max", 0)) > 0:
        return (f"linear model (scikit-learn) on hashed word uni- and bigrams and byte {params['char_min']}-"
                f"{params['char_max']}-grams")
    return _MODEL_TEXT.get(meta["model"], meta["model"])


@dataclasses.dataclass
class DistilledCardContext(_Fields):
    """The values ``hub_cards/distilled_scorer.md`` shows, all from a folder's ``distilled.json``."""

    title: str
    model: str
    model_text: str
    params: dict[str, Any]
    files: list[str]
    fingerprint: str
    seed: int | None
    tokenizer: str
    source: dict[str, Any]
    sample: dict[str, Any]
    rule_text: str
    agreement: dict[str, Any]
    agreement_rows: list[tuple[str, str]]

    @classmethod
    def from_meta(cls, meta: dict[str, Any], *, title: str | None = None) -> DistilledCardContext:
        agreement = meta.get("agreement") or {}
        tok = meta.get("tokenizer") or {}
        tokenizer = (f"tokenizer `{tok['name']}`" + (f" (`{tok['fingerprint']}`)" if tok.get("fingerprint") else "")
                     if tok.get("name") else f"{WORDS} (no tokenizer recorded)")
        source = {k: _cell(v) if isinstance(v, str) else v for k, v in (meta.get("source") or {}).items()}
        return cls(title=title or "Distilled NAG scorer", model=meta["model"],
                   model_text=_model_text(meta), params=meta["params"],
                   files=sorted(meta["files"]), fingerprint=meta["fingerprint"], seed=meta.get("seed"),
                   tokenizer=tokenizer, source=source, sample=meta.get("sample", {}),
                   rule_text=meta.get("rule_text", ""), agreement=agreement,
                   agreement_rows=[(k, f"{v:.3f}") for k, v in agreement.items() if k != "rows"])


def write_card(folder: str | os.PathLike[str], *, title: str | None = None, license: str = "unknown") -> Path:
    """(Re)write ``README.md`` in a scorer folder from its ``distilled.json``; returns the card's path."""
    from huggingface_hub import DatasetCardData

    folder = Path(folder)
    meta = DistilledScorer(folder).meta
    source = meta.get("source") or {}
    card_data = DatasetCardData(
        license=license, pretty_name=title, tags=[*DEFAULT_TAGS, "nag-distilled-scorer", meta["model"]],
        viewer=False,
        nag_distilled={"fingerprint": meta["fingerprint"], "model": meta["model"],
                       "profile_fingerprint": source.get("profile_fingerprint"),
                       "agreement": meta.get("agreement")},
    )
    path = folder / CARD_FILE
    context = DistilledCardContext.from_meta(meta, title=title).to_dict()
    atomic_write_text(path, _render(DISTILLED_TEMPLATE, card_data, context))
    return path


def push_scorer(folder: str | os.PathLike[str], repo_id: str, *, private: bool = True, token: str | None = None,
                title: str | None = None, license: str = "unknown") -> str:
    """Upload a scorer folder (checked first, card regenerated) as the dataset repo ``repo_id``; model files and
    ``distilled.json`` first, the card last, private by default. Raises ``HubPublishError`` (naming the folder)
    when offline, not logged in or refused. Returns the repo URL."""
    folder = Path(folder)
    scorer = DistilledScorer.load(folder)
    write_card(folder, title=title, license=license)
    token = _resolve_token(token, folder)
    return _upload(folder, repo_id, token=token, private=private, what="the distilled NAG scorer",
                   data_patterns=[*scorer.meta["files"], META_FILE])
