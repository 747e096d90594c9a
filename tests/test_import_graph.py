"""The package's import graph (every import, also those inside functions and the names an ``__init__`` exports
lazily): no cycles, layers only import downwards, and no module is named like a standard-library module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

PACKAGE = Path(__file__).resolve().parents[1] / "nag_datasets"
ROOT = "nag_datasets"

# One line per folder (or top-level module), lowest first. A module belongs to the line of its longest matching
# prefix; it may import modules of its own line (acyclically) and of lower lines, never of higher ones. The package
# itself (``nag_datasets/__init__.py``) is the face on top: it only hands on the names of every layer.
LAYERS: list[tuple[str, ...]] = [
    ("nag_datasets.errors", "nag_datasets.lazy", "nag_datasets.ordering", "nag_datasets.compiled"),
    ("nag_datasets.storage",),
    ("nag_datasets.signatures",),
    ("nag_datasets.demo_data",),
    ("nag_datasets.featurize",),
    ("nag_datasets.scoring",),
    ("nag_datasets.selection",),
    ("nag_datasets.hub",),
    ("nag_datasets.pipelines",),
    ("nag_datasets.distill",),
    ("nag_datasets.cli",),
    (ROOT,),
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
        elif is_package and _assigns(node, "_EXPORTS") and isinstance(node.value, ast.Dict):
            # Lazy exports (nag_datasets.lazy): {name: submodule}, imported on first use.
            candidates = [f"{name}.{v.value}" for v in node.value.values if isinstance(v, ast.Constant)]
        elif isinstance(node, ast.Call) and _is_import_module(node):
            candidates = [node.args[0].value]
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


def _assigns(node: ast.AST, target: str) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == target for t in node.targets)


def _is_import_module(node: ast.Call) -> bool:
    """``importlib.import_module("a.b")`` with a constant, absolute name."""
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "import_module" and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith("."))


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def layer_of(name: str) -> int:
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            inside = name == prefix or (prefix != ROOT and name.startswith(prefix + "."))
            if inside and len(prefix) > best_len:
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
    # contrast() is a plain call: the target profile imports the contrastive one, never the other way round.
    assert "nag_datasets.scoring.contrastive" in edges["nag_datasets.scoring.target_profile"]
    assert "nag_datasets.scoring.target_profile" not in edges["nag_datasets.scoring.contrastive"]
    # Lazy exports are edges too: the face hands on every layer's names.
    assert "nag_datasets.featurize.featurizer" in edges[ROOT]
    assert "nag_datasets.signatures.spec" in edges["nag_datasets.signatures"]


def test_lazy_imports_are_seen(tmp_path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import importlib\n    return importlib.import_module('nag_datasets.cli.app')\n")
    assert imports_of("nag_datasets.scoring.m", module, set(modules())) == {"nag_datasets.cli.app"}


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


#: The most lines a module of the package may have (issue 25): a module past it holds more than one concept.
MAX_MODULE_LINES = 450


def test_no_module_is_over_the_line_limit() -> None:
    long = sorted(f"{path.relative_to(PACKAGE.parent)}: {n} lines"
                  for path in PACKAGE.rglob("*.py")
                  if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES)
    assert long == []
