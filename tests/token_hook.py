"""The counting half of the test session's token accounting (see ``token_budget.py`` beside it).

Self-contained on purpose: ``token_budget.install`` copies this file into the environment's ``site-packages`` as
``nag_test_token_hook.py``, so every Python process of the environment (CLI subprocesses, ``num_proc`` workers,
``torchrun`` ranks, notebook kernels) can load it whatever checkout started the session. Inert unless
:data:`DIR_ENV` is set.
"""

from __future__ import annotations

import os
import sys
from typing import Any

DIR_ENV = "NAG_TEST_TOKEN_DIR"
NODE_ENV = "NAG_TEST_NODEID"
LOG_NAME = "tokens.tsv"


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
    """A meta-path finder that installs the hook right after ``torch`` is executed (processes that never import
    torch pay nothing).

    It stays in place until then: libraries probe ``importlib.util.find_spec("torch")`` long before importing it,
    and each probe gets a spec of its own, so every spec handed out carries the hooking loader.
    """

    def __init__(self) -> None:
        self._busy = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch" or self._busy:
            return None
        import importlib.machinery

        self._busy = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_hook(module: Any) -> None:
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
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
