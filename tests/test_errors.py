"""One error root: every exception class of the package is a NAGError, every ``raise`` raises one, and the CLI prints
one line for each (and a traceback for anything else: a bug)."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import nag_datasets
from nag_datasets.errors import NAGError

pytestmark = pytest.mark.fast

PACKAGE = Path(nag_datasets.__file__).resolve().parent
#: Internal control-flow signals: raised and caught inside one module, never seen by a user, so no errors.
CONTROL_FLOW = {"nag_datasets.featurize.impact._StopForward"}


def _package_modules() -> list[str]:
    names = [nag_datasets.__name__]
    for info in pkgutil.walk_packages(nag_datasets.__path__, prefix=f"{nag_datasets.__name__}."):
        if not info.name.endswith(".__main__"):  # running it is the command line itself
            names.append(info.name)
    return names


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for name in _package_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == name and issubclass(obj, BaseException):
                found.append(obj)
    return found


def test_every_exception_class_of_the_package_is_a_nag_error() -> None:
    classes = _exception_classes()
    assert len(classes) >= 12
    names = {f"{c.__module__}.{c.__qualname__}": c for c in classes}
    assert sorted(n for n, c in names.items() if not issubclass(c, NAGError)) == sorted(CONTROL_FLOW)
    assert not any(issubclass(names[n], NAGError) for n in CONTROL_FLOW)


# -- every raise raises a NAGError ---------------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> dict[str, tuple[str, str]]:
    """``{local name: (module, attribute)}`` for every ``from X import Y`` in the file (top level or in functions)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                names[alias.asname or alias.name] = (source, alias.name)
    return names


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing(node: ast.AST, parents: dict[ast.AST, ast.AST], kinds: tuple[type, ...]) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, kinds):
            return node
    return None


def _caught_names(function: ast.AST | None) -> set[str]:
    """Names bound by ``except ... as name`` in ``function``: raising one re-raises a caught exception."""
    if function is None:
        return set()
    return {h.name for h in ast.walk(function) if isinstance(h, ast.ExceptHandler) and h.name}


def _nag_error_parameters(function: ast.AST | None) -> set[str]:
    """Parameters annotated as a NAGError class (``error: type[NAGError]``): the caller chooses which one."""
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return set()
    args = function.args.args + function.args.kwonlyargs + function.args.posonlyargs
    return {a.arg for a in args if a.annotation is not None and "NAGError" in ast.unparse(a.annotation)}


def _is_abstract_stub(function: ast.AST | None, parents: dict[ast.AST, ast.AST]) -> bool:
    """A method whose body is (a docstring and) only ``raise NotImplementedError``."""
    if not isinstance(function, ast.FunctionDef) or not isinstance(parents.get(function), ast.ClassDef):
        return False
    body = [b for b in function.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Raise)


def _resolve(source: str, attr: str) -> object:
    """What ``from source import attr`` gives: a submodule, or an attribute of the module."""
    try:
        return importlib.import_module(f"{source}.{attr}")
    except ImportError:
        return getattr(importlib.import_module(source), attr)


def _raise_problems() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = _parents(tree)
        imported = _imported_names(tree, module, path.name == "__init__.py")
        loaded = importlib.import_module(module) if not module.endswith("__main__") else None
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue  # a bare `raise` re-raises what an except clause caught
            function = _enclosing(node, parents, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if isinstance(target, ast.Name) and target.id in (
                    _nag_error_parameters(function) if isinstance(node.exc, ast.Call) else _caught_names(function)):
                continue  # `raise err` of a caught exception, or `raise error(...)` of a NAGError class passed in
            text = ast.unparse(target)
            head, *rest = text.split(".")
            if head in imported:
                obj = _resolve(*imported[head])
            elif loaded is not None and head in vars(loaded):
                obj = vars(loaded)[head]
            else:
                obj = getattr(builtins, head, None)
            for part in rest:
                obj = getattr(obj, part, None)
            qualified = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', text)}"
            if obj is NotImplementedError and _is_abstract_stub(function, parents):
                continue
            if qualified in CONTROL_FLOW:
                continue
            if not (isinstance(obj, type) and issubclass(obj, NAGError)):
                problems.append(f"{where}: raise {text}")
    return problems


def test_every_raise_raises_a_nag_error() -> None:
    assert _raise_problems() == []


def test_the_raise_check_catches_builtins() -> None:
    """The check itself: a module raising a bare built-in is reported, a NAGError one and a re-raise are not."""
    import sys

    probe = PACKAGE / "_probe_raises.py"
    probe.write_text("from .errors import InvalidArgumentError\n\n\n"
                     "def f(x):\n    if x:\n        raise ValueError('no')\n"
                     "    try:\n        return 1 / x\n    except ZeroDivisionError as e:\n        raise e\n\n\n"
                     "def g():\n    raise InvalidArgumentError('ok')\n")
    try:
        assert _raise_problems() == ["nag_datasets/_probe_raises.py:6: raise ValueError"]
    finally:
        probe.unlink()
        sys.modules.pop("nag_datasets._probe_raises", None)


@pytest.mark.parametrize(("name", "builtin"), [
    ("nag_datasets.errors:InvalidArgumentError", ValueError),
    ("nag_datasets.errors:WrongTypeError", TypeError),
    ("nag_datasets.errors:MissingColumnError", KeyError),
    ("nag_datasets.errors:OutputExistsError", FileExistsError),
    ("nag_datasets.errors:InputNotFoundError", FileNotFoundError),
    ("nag_datasets.errors:MissingDependencyError", ImportError),
    ("nag_datasets.signatures.spec:SpecError", ValueError),
    ("nag_datasets.signatures.spec:SpecMismatchError", ValueError),
    ("nag_datasets.scoring.profile_files:ProfileError", ValueError),
    ("nag_datasets.scoring.weighting:WeightingError", ValueError),
    ("nag_datasets.selection.recipe:RecipeError", ValueError),
    ("nag_datasets.scoring.kernel:SignatureIndexError", ValueError),
    ("nag_datasets.featurize.sites:UnsupportedArchitectureError", ValueError),
    ("nag_datasets.featurize.featurizer:InvalidTextError", ValueError),
    ("nag_datasets.storage.atomic:FolderLockedError", RuntimeError),
    ("nag_datasets.storage.atomic:IncompleteOutputError", FileNotFoundError),
    ("nag_datasets.storage.atomic:UnfinishedWriteError", RuntimeError),
    ("nag_datasets.signatures.formats:OutputIsFolderError", IsADirectoryError),
    ("nag_datasets.featurize.featurizer:WorkerSetupError", RuntimeError),
    ("nag_datasets.featurize.impact:HookError", RuntimeError),
    ("nag_datasets.featurize.ranks:RanksTimeoutError", TimeoutError),
    ("nag_datasets.selection.ray_select:RaySelectionError", RuntimeError),
    ("nag_datasets.lazy:UnknownExportError", AttributeError),
    ("nag_datasets.featurize.models:ModelLoadError", RuntimeError),
    ("nag_datasets.featurize.ranks:ShardError", RuntimeError),
    ("nag_datasets.hub:HubPublishError", RuntimeError),
    ("nag_datasets.demo_data:SourceNotInstalledError", ImportError),
    ("nag_datasets.pipelines.budget_files:BudgetStageError", RuntimeError),
    ("nag_datasets.pipelines.datatrove_steps:MissingScoreError", ValueError),
    ("nag_datasets.pipelines._datatrove:DatatroveMissingError", ImportError),
    ("nag_datasets.distill.labels:DistillError", ValueError),
])
def test_errors_keep_their_builtin_parent(name: str, builtin: type[BaseException]) -> None:
    module, attr = name.split(":")
    cls = getattr(importlib.import_module(module), attr)
    assert issubclass(cls, NAGError) and issubclass(cls, builtin)


def test_cli_prints_one_line_for_a_spec_mismatch(tmp_path, capsys) -> None:
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.cli.app import main
    from nag_datasets.scoring.target_profile import NAGProfile

    pool_spec, target_spec = make_spec(), make_spec(top_k=3)
    make_signature_dataset(random_signatures(20, pool_spec), pool_spec, {"num_tokens": list(range(1, 21))},
                           path=tmp_path / "pool")
    NAGProfile.from_signatures(random_signatures(3, target_spec, seed=1), target_spec).save(tmp_path / "profile")
    capsys.readouterr()
    code = main(["select", str(tmp_path / "pool"), str(tmp_path / "out"), "--profile", str(tmp_path / "profile"),
                 "--fraction", "0.5"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "top_k" in err
    assert not (tmp_path / "out").exists()


def test_cli_lets_a_bug_show_its_traceback(monkeypatch, capsys) -> None:
    """Only NAGError is a user's error; anything else (here a KeyError of a bug) propagates with its traceback."""
    from nag_datasets.cli import app, cmd_demo

    def buggy(args):
        return {}["missing"]

    monkeypatch.setattr(cmd_demo, "cmd_demo", buggy)
    with pytest.raises(KeyError, match="missing"):
        app.main(["demo"])
    assert "error:" not in capsys.readouterr().err
