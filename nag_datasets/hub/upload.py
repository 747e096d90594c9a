"""Uploading an export folder to the Hub: token resolution, private repos, data first and card last."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import NAGError
from ..storage.location import require_local
from ..storage.remote import hub_errors, scrub_token
from .export import export_for_hub
from .templates import CARD_FILE, DATA_DIR

__all__ = ["HubPublishError", "push_to_hub"]

logger = logging.getLogger(__name__)


class HubPublishError(NAGError, RuntimeError):
    """Uploading to the Hub failed (offline, not logged in, refused); ``local_folder`` holds the finished export."""

    def __init__(self, message: str, local_folder: Path | None = None) -> None:
        super().__init__(message)
        self.local_folder = local_folder


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.is_offline_mode() or flag.upper() in ("1", "ON", "YES", "TRUE")


def _resolve_token(token: str | None, folder: Path) -> str:
    """The token to use (argument, else huggingface_hub's usual sources); a clear error when there is none."""
    if _hub_offline():
        raise HubPublishError(f"the Hub is offline (HF_HUB_OFFLINE is set); nothing was uploaded. The local export is "
                              f"complete at {folder}: unset HF_HUB_OFFLINE and upload it again.", folder)
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise HubPublishError(f"not logged in to the Hub (no token argument, HF_TOKEN or saved login); nothing was "
                              f"uploaded. The local export is complete at {folder}: run `hf auth login` and upload "
                              "it again.", folder)
    return token


def _upload(folder: Path, repo_id: str, *, token: str, private: bool, what: str, data_patterns: list[str]) -> str:
    """Create the repo if needed, upload everything but the card, then the card (so nothing rewrites its body)."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, token=token, private=private, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", token=token,
                          ignore_patterns=[CARD_FILE], delete_patterns=data_patterns,
                          commit_message=f"Upload {what} (nag-datasets {__version__})")
        api.upload_file(path_or_fileobj=str(folder / CARD_FILE), path_in_repo=CARD_FILE, repo_id=repo_id,
                        repo_type="dataset", token=token, commit_message="Upload the card")
    except hub_errors() as e:
        message = scrub_token(f"{type(e).__name__}: {e}", token)
        raise HubPublishError(f"uploading {what} to {repo_id} failed ({message}). The local export is complete at "
                              f"{folder}.", folder) from None
    return str(getattr(url, "url", url))


def push_to_hub(
    selected: Any,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    **export_kwargs: Any,
) -> str:
    """Export ``selected`` (see :func:`export_for_hub`), then upload it as the dataset repo ``repo_id``; returns its URL.

    The data, recipe and figure are uploaded first and ``README.md`` last, in separate commits. New repos are private
    unless ``private=False`` (an existing repo keeps its visibility). ``token`` defaults to huggingface_hub's usual
    sources (``HF_TOKEN``, the saved login) and is never printed or written. Without ``folder`` the export goes to a
    temporary folder, removed after a successful upload. Offline, unauthenticated or refused uploads raise
    :class:`HubPublishError` after the export, naming the local folder.
    """
    own = folder is None
    target = Path(tempfile.mkdtemp(prefix="nag-export-")) / "export" if own else require_local(folder, "push's --folder")
    export_kwargs.setdefault("repo_id", repo_id)
    export_for_hub(selected, target, **export_kwargs)
    token = _resolve_token(token, target)
    url = _upload(target, repo_id, token=token, private=private, what="the NAG selection",
                  data_patterns=[f"{DATA_DIR}/*"])
    logger.info("uploaded %s to %s (private=%s)", target, repo_id, private)
    if own:
        shutil.rmtree(target.parent, ignore_errors=True)
    return url
