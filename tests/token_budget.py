"""Model-forward token accounting for the test session (the CI budget).

Every test process, and every Python process a test starts (CLI subprocesses, ``num_proc`` workers, ``torchrun``
ranks, notebook kernels), counts the tokens that enter a model's input embedding, through global ``torch.nn``
forward pre-hooks. Subprocesses get the hooks from a ``.pth`` file that the session installs in the environment's
``site-packages`` (it does nothing unless :data:`DIR_ENV` is set); each process appends one line per forward pass
to a shared file, so forked workers that never run ``atexit`` are counted too.

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

import json
import os
import site
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

DIR_ENV = "NAG_TEST_TOKEN_DIR"
NODE_ENV = "NAG_TEST_NODEID"
BUDGET = 150_000
#: Parameters of the bundled SmolLM2-135M-Instruct: one of its forward tokens costs 1.
REFERENCE_PARAMS = 134_515_008
TRAIN_COST = 3
LOG_NAME = "tokens.tsv"
PTH_NAME = "nag_test_tokens.pth"


def _record(line: str) -> None:
    folder = os.environ.get(DIR_ENV)
    if not folder:
        return
    fd = os.open(os.path.join(folder, LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one short write with O_APPEND: lines of several processes never interleave
    finally:
        os.close(fd)


_params: dict[int, int] = {}
_current: list[Any] = [0, None]  # parameters and vocabulary size of the transformers model entered last


def _embedding_hook(module: Any, args: tuple[Any, ...]) -> None:
    import torch

    if hasattr(module, "base_model_prefix") and hasattr(module, "config"):  # a transformers model (outer or inner)
        n = _params.get(id(module))
        if n is None:
            n = _params[id(module)] = sum(p.numel() for p in module.parameters())
        _current[0], _current[1] = n, getattr(module.config, "vocab_size", None)
        return
    if not isinstance(module, torch.nn.Embedding) or not args or not torch.is_tensor(args[0]):
        return
    if args[0].dtype not in (torch.int64, torch.int32) or _current[1] not in (None, module.num_embeddings):
        return  # not token ids, or a position embedding (GPT-2's wpe) of the model
    mode = "train" if module.training and torch.is_grad_enabled() else "forward"
    params = _current[0] or module.num_embeddings * module.embedding_dim
    key = f"{params}:{module.num_embeddings}x{module.embedding_dim}"
    node = os.environ.get(NODE_ENV, "(outside a test)").replace("\t", " ")
    _record(f"{node}\t{key}\t{mode}\t{args[0].numel()}\n")


_installed = False


def install_hook() -> None:
    """Count from now on in this process (torch must be importable; imports it)."""
    global _installed
    if _installed:
        return
    import torch

    torch.nn.modules.module.register_module_forward_pre_hook(_embedding_hook)
    _installed = True


class _AfterTorchImport:
    """A meta-path finder that installs the hook right after ``torch`` is imported (processes that never import
    torch pay nothing)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_hook(module: Any) -> None:
            exec_module(module)
            install_hook()

        spec.loader.exec_module = exec_then_hook  # type: ignore[method-assign]
        return spec


def activate_in_subprocess() -> None:
    """What the ``.pth`` line runs at every interpreter start: nothing unless a session asked for counting."""
    if not os.environ.get(DIR_ENV):
        return
    if "torch" in sys.modules:
        install_hook()
    else:
        sys.meta_path.insert(0, _AfterTorchImport())


def install_pth() -> Path | None:
    """Make every Python process of this environment load the hook (a no-op line without :data:`DIR_ENV`)."""
    here = Path(__file__).resolve().parent
    # One line (a .pth runs lines that start with "import"); inert without the variable or once the folder is gone.
    line = (f"import os, sys; os.environ.get({DIR_ENV!r}) and os.path.isdir({str(here)!r}) and "
            f"(sys.path.append({str(here)!r}) or __import__('token_budget').activate_in_subprocess())\n")
    for folder in [*site.getsitepackages(), site.getusersitepackages()]:
        target = Path(folder) / PTH_NAME
        try:
            if not target.is_file() or target.read_text() != line:
                target.write_text(line)
            return target
        except OSError:
            continue
    return None


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
