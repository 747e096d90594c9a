"""The package's import graph (every import, also those inside functions): no cycles, layers only import downwards,
and no module is named like a standard-library module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

PACKAGE = Path(__file__).resolve().parents[1] / "nag_datasets"
ROOT = "nag_datasets"

# Lowest first. A module belongs to the layer of its longest matching prefix; it may import modules of its own
# layer (acyclically) and of lower layers, never of higher ones.
LAYERS: list[tuple[str, ...]] = [
    ("nag_datasets", "nag_datasets.errors", "nag_datasets.ordering", "nag_datasets.lazy"),
    ("nag_datasets.signatures.spec",),
    ("nag_datasets.signatures.columns", "nag_datasets.storage.atomic", "nag_datasets.storage.cache", "nag_datasets.storage.remote",
     "nag_datasets.storage.location"),
    ("nag_datasets.signatures.formats", "nag_datasets.demo_data"),
    ("nag_datasets.featurize",),
    ("nag_datasets.scoring",),
    ("nag_datasets.selection",),
    ("nag_datasets.featurize.sharded", "nag_datasets.featurize.streaming", "nag_datasets.featurize.ranks", "nag_datasets.hub",
     "nag_datasets.analysis", "nag_datasets.pipelines"),
    ("nag_datasets.distill",),
    ("nag_datasets.cli",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, is_package: bool, level: int, target: str | None) -> str:
    base = name.split(".") if is_package else name.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules that ``name`` imports anywhere in its body (top level or inside functions)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module) if node.level else (node.module or "")
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            # The longest known module the name lies in (``a.b.func`` -> ``a.b``).
            parts = candidate.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            target = ".".join(parts)
            # A module's own ancestor packages are always imported before it: not an edge of the graph.
            if parts and parts[0] == ROOT and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{name} is in no layer; add it to LAYERS"
    return best


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_graph_sees_the_package() -> None:
    edges = graph()
    assert "nag_datasets.scoring.target_profile" in edges
    assert "nag_datasets.scoring.profile_files" in edges["nag_datasets.scoring.target_profile"]
    assert "nag_datasets.storage.atomic" in edges["nag_datasets.scoring.profile_files"]


def test_no_import_cycles() -> None:
    assert find_cycle(graph()) is None


def test_layers_import_only_downwards() -> None:
    upward = sorted(
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, targets in graph().items()
        for b in targets
        if layer_of(b) > layer_of(a)
    )
    assert upward == []


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_module_shadows_a_stdlib_module() -> None:
    shadowing = sorted(name for name in modules() if name.rsplit(".", 1)[-1] in sys.stdlib_module_names)
    assert shadowing == []
