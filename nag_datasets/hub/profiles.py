"""Target profiles on the Hub: a card beside the saved profile, and its upload (loading back is
``NAGProfile.from_pretrained``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..scoring.profile_base import Profile
from ..scoring.profile_files import COUNTS_FILE, META_FILE
from ..scoring.target_profile import NAGProfile, ProfileError
from ..storage.atomic import atomic_write_text
from ..storage.location import require_local
from .card_data import ProfileCardContext, ProfileCardData
from .templates import CARD_FILE, DEFAULT_TAGS, PROFILE_TEMPLATE, _as_list, _cell, _render, _spec_rows
from .upload import _resolve_token, _upload

__all__ = ["profile_card", "push_profile"]


def _top_neurons(profile: Profile, count: int = 10) -> tuple[int, list[dict[str, str]]]:
    """The last layer's neurons with the largest weights (shares of targets, or contrastive weights)."""
    layer = profile.spec.num_layers - 1
    row = profile.weights[layer]
    order = np.argsort(-row, kind="stable")[:count]
    fmt = "{:+.3f}" if profile.score_kind == "contrastive" else "{:.3f}"
    return profile.spec.layers[layer], [{"neuron": str(int(k)), "share": fmt.format(row[k])} for k in order
                                        if row[k] > 0]


def profile_card(
    profile: Profile,
    folder: str | os.PathLike[str],
    *,
    license: str = "unknown",
    source_datasets: str | Sequence[str] = (),
    pretty_name: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write a ``README.md`` card into the profile folder ``folder`` (saving ``profile`` there first if it is absent).

    A folder holding a different profile is refused. Returns the card's path.
    """
    from huggingface_hub import DatasetCardData

    folder = require_local(folder, "a profile card")
    if (folder / META_FILE).is_file():
        stored = NAGProfile.load(folder)
        if stored.fingerprint() != profile.fingerprint():
            raise ProfileError(f"{folder} holds profile {stored.fingerprint()}, not {profile.fingerprint()}: "
                               "write the card into the folder the profile was saved to")
    else:
        profile.save(folder)
    spec = profile.spec
    card_data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        source_datasets=_as_list(source_datasets) or None,
        tags=[*DEFAULT_TAGS, "nag-profile"],
        viewer=False,
        nag_profile=ProfileCardData.from_profile(profile).to_dict(),
    )
    top_layer, top = _top_neurons(profile)
    if getattr(profile, "signal", None) == "embedding":
        top = []  # the embedding signal does not score with the neuron weights
    context = ProfileCardContext(
        title=pretty_name or "NAG target profile",
        description=_cell(profile.description),
        license=license,
        source_datasets=_as_list(source_datasets),
        num_targets=f"{profile.num_targets:,}",
        skipped_null=profile.skipped_null,
        fingerprint=profile.fingerprint(),
        spec_fingerprint=spec.fingerprint(),
        spec_rows=_spec_rows(spec.to_dict()),
        top_k=spec.top_k,
        num_layers=spec.num_layers,
        neurons_per_layer=spec.neurons_per_layer,
        top_layer=top_layer,
        top_neurons=top,
        repo_hint=repo_id or "REPO_ID",
        contrastive=profile.score_kind == "contrastive",
        summary=profile.summary(),
    )
    path = folder / CARD_FILE
    atomic_write_text(path, _render(PROFILE_TEMPLATE, card_data, context.to_dict()))
    return path


def push_profile(
    profile: Profile,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    **card_kwargs: Any,
) -> str:
    """Save ``profile`` with its card (see :func:`profile_card`) and upload it as the dataset repo ``repo_id``.

    Same rules as :func:`push_to_hub`: local first, private by default, card last, :class:`HubPublishError` naming
    the local folder when the upload cannot happen. Returns the repo URL.
    """
    own = folder is None
    target = Path(tempfile.mkdtemp(prefix="nag-profile-")) / "profile" if own else Path(folder)
    card_kwargs.setdefault("repo_id", repo_id)
    profile_card(profile, target, **card_kwargs)
    token = _resolve_token(token, target)
    url = _upload(target, repo_id, token=token, private=private, what="the NAG profile",
                  data_patterns=[COUNTS_FILE, META_FILE])
    if own:
        shutil.rmtree(target.parent, ignore_errors=True)
    return url
