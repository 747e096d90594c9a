"""A saved profile's two files: ``profile.safetensors`` (count tables) and ``profile.json`` (spec, counts, the
counts' sha256, fingerprint), written data first and description last, read back with every check.

Locally the folder is built beside its target and renamed into place under a lock; on an fsspec URL the counts are
written first and ``profile.json`` (the completion marker) last. Reading refuses a missing, truncated, changed or
unknown-format file with :class:`ProfileError`; what the tables mean is the profile kinds' business
(:mod:`.profile_base`, :mod:`.target_profile`, :mod:`.contrastive`).

>>> import numpy as np
>>> url = write_profile_files("memory://doc-profile-files/p", {"counts": np.array([[1, 0]])},
...                           {"spec": {}, "num_targets": 1},
...                           version=1)
>>> meta, tensors = read_profile_files(url)
>>> meta["num_targets"], tensors["counts"].tolist()
(1, [[1, 0]])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import NAGError
from ..storage import location
from ..storage.atomic import check_complete, read_versioned_json, remote_dir, replacing_dir

__all__ = [
    "CONTRASTIVE_FORMAT_VERSION",
    "COUNTS_FILE",
    "EMBEDDING_FORMAT_VERSION",
    "HUB_CARD_FILE",
    "META_FILE",
    "PROFILE_FORMAT",
    "PROFILE_FORMAT_VERSION",
    "ProfileError",
    "profile_location",
    "profile_paths",
    "read_profile_files",
    "write_profile_files",
]

HUB_CARD_FILE = "README.md"  # the card a Hub repo shows (nag_datasets.hub.templates.CARD_FILE)
PROFILE_FORMAT = "nag_datasets.profile"  # a stored format id: kept when the module moved
PROFILE_FORMAT_VERSION = 1
#: Contrastive profiles are written as format version 2 (two count tables and a weighting), so that a library that
#: only knows version 1 refuses them by version instead of misreading them.
CONTRASTIVE_FORMAT_VERSION = 2
#: Profiles that keep their rows' embeddings, and fused (embedding or hybrid signal) profiles, are written as format
#: version 3 (more tensors: row embeddings and signatures; the embedding model's vectors), for the same reason.
EMBEDDING_FORMAT_VERSION = 3
COUNTS_FILE = "profile.safetensors"
META_FILE = "profile.json"


class ProfileError(NAGError, ValueError):
    """A profile is inconsistent, or its files are missing, corrupt or were changed."""


def _ours(name: str) -> bool:
    return name in (COUNTS_FILE, META_FILE)


def write_profile_files(folder: str | Path, tensors: dict[str, np.ndarray], meta: dict[str, Any], *,
                        version: int) -> Path | str:
    """Write ``tensors`` and ``meta`` (plus format, ``version``, the tensors' sha256 and the library version) into
    ``folder``, replacing an earlier profile there; a folder holding anything else is refused. Returns the folder
    (a URL as given)."""
    from safetensors.numpy import save

    payload = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata={"format": PROFILE_FORMAT})
    full = {"format": PROFILE_FORMAT, "format_version": version, **meta,
            "counts_sha256": hashlib.sha256(payload).hexdigest(), "library_version": __version__}
    meta_text = json.dumps(full, indent=2, sort_keys=True) + "\n"
    if location.is_remote(folder):
        url = str(folder)
        try:
            with remote_dir(url, marker=META_FILE, overwrite=True, ours=_ours, what="profile"):
                location.write_bytes(location.join(url, COUNTS_FILE), payload)
                location.write_text(location.join(url, META_FILE), meta_text)
        except FileExistsError as e:
            raise ProfileError(str(e)) from None
        return url
    folder = location.local_path(folder)
    with replacing_dir(folder, overwrite=True, marker=META_FILE, ours=_ours, what="profile",
                       refusal=ProfileError) as tmp:
        (tmp / COUNTS_FILE).write_bytes(payload)
        (tmp / META_FILE).write_text(meta_text)
    return folder


def profile_paths(folder: str | Path) -> tuple[str | Path, str | Path]:
    """``(profile.json, profile.safetensors)`` of a profile folder: URLs for a remote folder, paths otherwise."""
    if location.is_remote(folder):
        return location.join(str(folder), META_FILE), location.join(str(folder), COUNTS_FILE)
    folder = location.local_path(folder)
    return folder / META_FILE, folder / COUNTS_FILE


def read_profile_files(folder: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, tensors)`` of a folder written by :func:`write_profile_files`, after checking that both files exist,
    the format and version are known, the required fields are there and the tensors match their recorded sha256."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    if location.is_remote(folder):
        try:
            check_complete(folder)
        except OSError as e:
            raise ProfileError(str(e)) from None
    meta_path, counts_path = profile_paths(folder)
    read = location.read_bytes if isinstance(meta_path, str) else Path.read_bytes
    for p in (meta_path, counts_path):
        if not (location.isfile(p) if isinstance(p, str) else p.is_file()):
            raise ProfileError(f"not a saved profile: {p} is missing")
    meta = read_versioned_json(meta_path, fmt=PROFILE_FORMAT, version=(1, CONTRASTIVE_FORMAT_VERSION, EMBEDDING_FORMAT_VERSION),
                               error=ProfileError, what="profile description")
    missing = [k for k in ("spec", "num_targets", "counts_sha256") if k not in meta]
    if missing:
        raise ProfileError(f"{meta_path} lacks {', '.join(missing)}")
    payload = read(counts_path)
    digest = hashlib.sha256(payload).hexdigest()
    if digest != meta["counts_sha256"]:
        raise ProfileError(
            f"{counts_path} does not match the sha256 recorded in {meta_path} ({digest[:12]}... vs "
            f"{str(meta['counts_sha256'])[:12]}...): the file was changed, truncated or belongs to another profile"
        )
    try:
        tensors = load(payload)
    except (SafetensorError, ValueError, TypeError) as e:
        raise ProfileError(f"{counts_path} is not a readable safetensors file: {e}") from None
    return meta, tensors


def profile_location(folder_or_repo: str | Path, revision: str | None = None, *, repo_type: str = "dataset",
                     token: str | None = None) -> Path | str:
    """Where a profile's files are: a URL or local folder as given, or else the local snapshot of a Hub repo (only
    the profile's files and its card are downloaded)."""
    if location.is_remote(folder_or_repo):
        return str(folder_or_repo)
    path = location.local_path(folder_or_repo)
    if path.is_dir():
        return path
    if path.exists() or str(folder_or_repo).startswith((".", "/", "~")):
        raise ProfileError(f"{folder_or_repo} is not a profile folder")
    from huggingface_hub import snapshot_download

    from ..storage.remote import hub_errors, scrub_token

    try:
        return Path(snapshot_download(str(folder_or_repo), repo_type=repo_type, revision=revision, token=token,
                                      allow_patterns=[COUNTS_FILE, META_FILE, HUB_CARD_FILE]))
    except hub_errors() as e:  # offline without a cached copy, unknown repo, no access
        message = scrub_token(f"{type(e).__name__}: {e}", token or "")
        raise ProfileError(f"{folder_or_repo!r} is not a local folder and the Hub {repo_type} repo could not be "
                           f"fetched ({message})") from None

