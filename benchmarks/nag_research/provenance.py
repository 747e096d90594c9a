"""Provenance, once: the repository's git commit, the machine, and atomic JSON results of benchmark runs.

>>> info = machine_info()
>>> sorted(k for k in ("platform", "cpu_count", "python", "git_commit", "date") if k in info)
['cpu_count', 'date', 'git_commit', 'platform', 'python']
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from nag_datasets.storage.atomic import atomic_write_text

BENCH_DIR = Path(__file__).resolve().parents[1]
RESULTS_DIR = BENCH_DIR / "results"
REPO_ROOT = BENCH_DIR.parent

_LIBRARIES = ("torch", "transformers", "datasets", "numpy", "numba", "nag_datasets")


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - absent or broken: report None
        return None
    return str(getattr(mod, "__version__", "unknown"))


def git_commit(repo: Path = REPO_ROOT, *, unknown: str = "unknown") -> str:
    """``git rev-parse HEAD`` of the repository, suffixed ``+dirty`` when tracked files differ; ``unknown`` without git.

    Untracked files (caches, results being written) do not make a checkout dirty.
    """
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return unknown
    try:
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, load, Python and library versions, git commit and date (UTC, ISO 8601)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "git_commit": git_commit(unknown="uncommitted"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    for lib in _LIBRARIES:
        info[f"{lib}_version"] = _version(lib)
    torch_mod = importlib.import_module("torch") if info.get("torch_version") else None
    if torch_mod is not None:
        info["torch_threads"] = torch_mod.get_num_threads()
        info["cuda"] = torch_mod.cuda.get_device_name(0) if torch_mod.cuda.is_available() else None
    return info


def save_results(name: str, payload: dict[str, Any], results_dir: Path | None = None) -> Path:
    """Write ``payload`` (plus ``machine`` info unless present) to ``results/<name>.json`` atomically."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"bad results name {name!r}")
    folder = Path(results_dir) if results_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    data = dict(payload)
    data.setdefault("machine", machine_info())
    target = folder / f"{name}.json"
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return target
