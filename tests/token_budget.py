"""Model-forward token accounting for the test session (the CI budget).

Every test process, and every Python process a test starts (CLI subprocesses, ``num_proc`` workers, ``torchrun``
ranks, notebook kernels), counts the tokens that enter a model's input embedding, through global ``torch.nn``
forward pre-hooks (``token_hook.py``). Subprocesses get the hooks from a copy of that module and a ``.pth`` line that
the session installs in the environment's ``site-packages`` (inert unless :data:`DIR_ENV` is set); each process
appends one line per forward pass to a shared file, so forked workers that never run ``atexit`` are counted too.

Each line names the model the tokens went through (the ``transformers`` model last entered: its parameter count
and embedding shape). Tokens are reported per model, and the budget is in *bundled-forward tokens*: a token through
a model of P parameters costs ``P / REFERENCE_PARAMS`` (compute grows with the parameters), times
:data:`TRAIN_COST` when it was seen in training mode (forward and backward). The bundled SmolLM2-135M's forward
token costs 1; the pretraining experiment's 5M-parameter model in training costs about 0.12 a token.

Sizing: CI's slowest machine forwards the bundled model at about 100 tokens/s (about 10x slower than a fast one);
``.ci/run`` must finish within about 60 minutes with its set-up and the tests' other work, so the budget is
:data:`BUDGET` bundled-forward tokens (25 minutes of forward passes there).
"""

from __future__ import annotations

import importlib
import json
import os
import site
from collections import defaultdict
from pathlib import Path
from typing import Any

import token_hook
from token_hook import DIR_ENV, LOG_NAME, NODE_ENV  # noqa: F401  (the session's names)

HOOK_MODULE = "nag_test_token_hook"
BUDGET = 150_000
#: Parameters of the bundled SmolLM2-135M-Instruct: one of its forward tokens costs 1.
REFERENCE_PARAMS = 134_515_008
TRAIN_COST = 3
PTH_NAME = "nag_test_tokens.pth"


def install() -> None:
    """Count in this process from now on, and in every Python process of this environment started with
    :data:`DIR_ENV` set: the hook module is copied into ``site-packages`` with a one-line ``.pth`` that loads it."""
    source = Path(__file__).with_name("token_hook.py").read_text()
    line = f"import os; os.environ.get({DIR_ENV!r}) and __import__({HOOK_MODULE!r}).activate_in_subprocess()\n"
    for folder in [*site.getsitepackages(), site.getusersitepackages()]:
        try:
            target = Path(folder)
            for name, text in ((f"{HOOK_MODULE}.py", source), (PTH_NAME, line)):
                if not (target / name).is_file() or (target / name).read_text() != text:
                    tmp = target / f".{name}.{os.getpid()}.tmp"
                    tmp.write_text(text)
                    os.replace(tmp, target / name)
            importlib.invalidate_caches()
            importlib.import_module(HOOK_MODULE).install_hook()  # the one module every process uses
            return
        except (OSError, ImportError):
            continue
    token_hook.install_hook()  # site-packages not writable: count this process only


def read_log(folder: Path) -> list[tuple[str, str, str, int]]:
    path = folder / LOG_NAME
    if not path.is_file():
        return []
    rows = []
    for raw in path.read_text().splitlines():
        node, key, mode, n = raw.split("\t")
        rows.append((node, key, mode, int(n)))
    return rows


def token_cost(key: str, mode: str, n: int) -> float:
    """Bundled-forward tokens that ``n`` tokens through model ``key`` (``"params:VxD"``) in ``mode`` cost."""
    params = int(key.split(":", 1)[0])
    return n * params / REFERENCE_PARAMS * (TRAIN_COST if mode == "train" else 1)


def summarize(rows: list[tuple[str, str, str, int]]) -> dict[str, Any]:
    """Per test module: tokens forwarded and trained (any model) and their cost in bundled-forward tokens."""
    modules: dict[str, dict[str, float]] = defaultdict(lambda: {"forward": 0, "train": 0, "cost": 0.0})
    models: dict[str, dict[str, int]] = defaultdict(lambda: {"forward": 0, "train": 0})
    tests: dict[str, float] = defaultdict(float)
    for node, key, mode, n in rows:
        tests[node] += token_cost(key, mode, n)
        m = modules[node.split("::", 1)[0]]
        m[mode] += n
        m["cost"] += token_cost(key, mode, n)
        models[key][mode] += n
    for m in modules.values():
        m["cost"] = round(m["cost"])
    total = int(sum(m["cost"] for m in modules.values()))
    return {
        "budget": BUDGET,
        "total_cost": total,
        "within_budget": total <= BUDGET,
        "unit": "bundled-forward tokens (tokens x model parameters / REFERENCE_PARAMS, x TRAIN_COST in training)",
        "reference_params": REFERENCE_PARAMS,
        "train_cost_factor": TRAIN_COST,
        "tokens_by_model": dict(sorted(models.items())),
        "modules": dict(sorted(modules.items(), key=lambda kv: -kv[1]["cost"])),
        "costliest_tests": {k: round(v) for k, v in sorted(tests.items(), key=lambda kv: -kv[1])[:40] if v >= 1},
    }


def write_report(summary: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    os.replace(tmp, path)


def format_report(summary: dict[str, Any]) -> list[str]:
    lines = [f"{'test module':<58} {'forwarded':>10} {'trained':>10} {'cost':>9}"]
    for module, m in summary["modules"].items():
        lines.append(f"{module:<58} {m['forward']:>10,} {m['train']:>10,} {m['cost']:>9,}")
    by_cost = sorted(summary["tokens_by_model"].items(),
                     key=lambda kv: -sum(token_cost(kv[0], mode, n) for mode, n in kv[1].items()))
    for key, m in by_cost[:4]:
        params, shape = key.split(":")
        lines.append(f"model of {int(params):,} parameters (embedding {shape}): {m['forward']:,} tokens forwarded, "
                     f"{m['train']:,} trained")
    verdict = "within" if summary["within_budget"] else "OVER"
    lines.append(f"cost {summary['total_cost']:,} bundled-forward tokens: {verdict} the budget of "
                 f"{summary['budget']:,} (a token costs parameters / {summary['reference_params']:,}, "
                 f"x{summary['train_cost_factor']} in training)")
    return lines
