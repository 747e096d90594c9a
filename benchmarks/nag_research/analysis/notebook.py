"""What every analysis notebook prints first and last, so runs can be checked without re-running them.

The first cell defines the full and the small parameters and calls :func:`notebook_params`, which picks the
small ones when ``NAG_DATASETS_NOTEBOOK_SIZE=small`` and prints a header line with the size, the git commit and
the sha256 of the FULL parameters (so a committed notebook whose parameters changed without a re-run is caught).
The last cell prints a JSON summary of the findings after :data:`SUMMARY_MARKER`.

>>> params_sha256({"b": 1, "a": [1, 2]}) == params_sha256({"a": [1, 2], "b": 1})
True
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["HEADER_MARKER", "SIZE_ENV", "SUMMARY_MARKER", "git_commit", "notebook_params", "params_sha256",
           "print_summary", "read_marker", "run_notebook"]

SIZE_ENV = "NAG_DATASETS_NOTEBOOK_SIZE"
HEADER_MARKER = "NAG_NOTEBOOK_HEADER "
SUMMARY_MARKER = "NAG_NOTEBOOK_SUMMARY "


def params_sha256(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def git_commit() -> str:
    """HEAD of the repository holding this package, with ``+dirty`` when tracked files differ; or ``unknown``."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def notebook_params(full: dict[str, Any], small: dict[str, Any]) -> dict[str, Any]:
    """The parameters of this run (``small`` when ``$NAG_DATASETS_NOTEBOOK_SIZE`` is ``small``), header printed."""
    _quiet()
    size = os.environ.get(SIZE_ENV, "full") or "full"
    if size not in ("full", "small"):
        raise ValueError(f"{SIZE_ENV} must be 'full' or 'small', got {size!r}")
    params = dict(small if size == "small" else full)
    header = {"size": size, "commit": git_commit(), "full_params_sha256": params_sha256(full)}
    print(HEADER_MARKER + json.dumps(header, sort_keys=True))
    print("parameters:", json.dumps(params, sort_keys=True))
    return params


def _quiet() -> None:
    """No progress bars or library chatter in committed notebook outputs."""
    import warnings

    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def print_summary(summary: dict[str, Any]) -> None:
    print(SUMMARY_MARKER + json.dumps(summary, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_marker(notebook: Any, marker: str) -> dict[str, Any]:
    """The JSON printed after ``marker`` in an executed notebook's stream outputs (the last one wins)."""
    found = None
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                for line in "".join(output.get("text", "")).splitlines():
                    if line.startswith(marker):
                        found = json.loads(line[len(marker):])
    if found is None:
        raise KeyError(f"no line starting with {marker.strip()!r} in the notebook's outputs")
    return found


def run_notebook(path: str | Path, *, size: str = "full", out: str | Path | None = None,
                 timeout: int = 1800) -> Any:
    """Execute a notebook with nbclient in its own folder at ``size``; write it to ``out`` (default: in place).

    Regenerate a committed notebook: ``python -m nag_research.analysis.notebook notebooks/01_quickstart.ipynb``.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get(SIZE_ENV)
    os.environ[SIZE_ENV] = size
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
    finally:
        if previous is None:
            os.environ.pop(SIZE_ENV, None)
        else:
            os.environ[SIZE_ENV] = previous
    if out is not False:
        nbformat.write(nb, Path(out) if out is not None else path)
    return nb


def main(argv: list[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Execute analysis notebooks (in place by default).")
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--out-dir", type=Path, default=None, help="write executed copies here instead")
    args = parser.parse_args(argv)
    for nb_path in args.notebooks:
        start = time.time()
        out = args.out_dir / nb_path.name if args.out_dir else None
        run_notebook(nb_path, size=args.size, out=out)
        print(f"{nb_path}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
