"""lm-evaluation-harness (``lm-eval[hf]==0.4.13``), offline, on local task YAMLs shipped in ``tasks/``.

The YAMLs mirror lm-eval's own ``arc_challenge``, ``arc_easy``, ``hellaswag``, ``openbookqa`` and ``piqa`` tasks
(0-shot, ``acc`` and ``acc_norm``) but read arrow files written by :func:`write_eval_arrows` instead of the Hub;
:func:`task_folder` renders them with the arrow folder filled in. :func:`evaluate_model` runs ``simple_evaluate`` on a
model folder and returns, per task, lm-eval's own metrics plus the summed (and mean) log-likelihood of the gold
continuation, read from lm-eval's logged samples.

>>> sorted(TASKS)
['arc_challenge', 'arc_easy', 'hellaswag', 'openbookqa', 'piqa']
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nag_datasets.errors import NAGError

TASK_DIR = Path(__file__).resolve().parent / "tasks"
TASKS = {name: f"nag_{name}" for name in ("arc_challenge", "arc_easy", "hellaswag", "openbookqa", "piqa")}
LM_EVAL_VERSION = "0.4.13"


class LmEvalMissingError(NAGError, ImportError):
    """lm-eval is not installed."""


def write_eval_arrows(evals: dict[str, list[dict[str, Any]]], folder: Path) -> dict[str, Path]:
    """Each evaluation set's rows as ``<folder>/<name>.arrow`` (arrow IPC stream, as HF datasets writes)."""
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, rows in evals.items():
        table = pa.Table.from_pylist([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        path = folder / f"{name}.arrow"
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
        out[name] = path
    return out


def task_folder(data_dir: Path, folder: Path) -> Path:
    """The shipped YAMLs with ``__DATA__`` replaced by ``data_dir`` (absolute), and the HellaSwag helper, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in TASK_DIR.iterdir():
        if path.suffix == ".yaml":
            text = path.read_text(encoding="utf-8").replace("__DATA__", str(Path(data_dir).resolve()))
            (folder / path.name).write_text(text, encoding="utf-8")
        elif path.suffix == ".py":
            shutil.copyfile(path, folder / path.name)
    return folder


def gold_loglik(samples: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """Sum over samples of the log-likelihood lm-eval gave the gold choice (``resps[target][0][0]``), and the count."""
    total = 0.0
    for s in samples:
        total += float(s["resps"][int(s["target"])][0][0])
    return total, len(samples)


def evaluate_model(model_dir: str | Path, tasks: Sequence[str], task_dir: Path, *, batch_size: int = 32,
                   device: str = "cpu", limit: int | None = None, num_fewshot: int = 0) -> dict[str, Any]:
    """lm-eval on ``model_dir`` (a transformers folder with its tokenizer), offline. ``tasks`` are keys of TASKS.

    Returns ``{task: {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n", "gold_loglik_sum",
    "gold_loglik_mean", "lm_eval": <lm-eval's own results entry>}}``.
    """
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise LmEvalMissingError(f"needs `pip install 'lm-eval[hf]=={LM_EVAL_VERSION}'` ({e})") from None
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; choose from {sorted(TASKS)}")
    lm = HFLM(pretrained=str(model_dir), dtype="float32", device=device, batch_size=batch_size)
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    results = lm_eval.simple_evaluate(model=lm, tasks=[TASKS[t] for t in tasks], task_manager=manager,
                                      num_fewshot=num_fewshot, limit=limit, log_samples=True,
                                      bootstrap_iters=0, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                      fewshot_random_seed=0)
    out: dict[str, Any] = {}
    for t in tasks:
        entry = results["results"][TASKS[t]]
        total, n = gold_loglik(results["samples"][TASKS[t]])
        out[t] = {"acc": entry["acc,none"], "acc_stderr": entry.get("acc_stderr,none"),
                  "acc_norm": entry["acc_norm,none"], "acc_norm_stderr": entry.get("acc_norm_stderr,none"),
                  "n": n, "gold_loglik_sum": total, "gold_loglik_mean": total / max(n, 1),
                  "num_fewshot": num_fewshot,
                  "lm_eval": {k: v for k, v in entry.items() if isinstance(v, (int, float, str)) or v is None}}
    return out
