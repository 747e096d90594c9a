"""One error root: every exception class of the package is a NAGError; the CLI prints one line for each."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import nag_datasets
from nag_datasets.errors import NAGError

pytestmark = pytest.mark.fast


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
    assert [c.__qualname__ for c in classes if not issubclass(c, NAGError)] == []


@pytest.mark.parametrize(("name", "builtin"), [
    ("nag_datasets.signatures.spec:SpecError", ValueError),
    ("nag_datasets.signatures.spec:SpecMismatchError", ValueError),
    ("nag_datasets.scoring.target_profile:ProfileError", ValueError),
    ("nag_datasets.selection.recipe:RecipeError", ValueError),
    ("nag_datasets.scoring.kernel:SignatureIndexError", ValueError),
    ("nag_datasets.featurize.sites:UnsupportedArchitectureError", ValueError),
    ("nag_datasets.featurize.featurizer:InvalidTextError", ValueError),
    ("nag_datasets.storage.atomic:FolderLockedError", RuntimeError),
    ("nag_datasets.storage.atomic:IncompleteOutputError", FileNotFoundError),
    ("nag_datasets.featurize.models:ModelLoadError", RuntimeError),
    ("nag_datasets.featurize.sharded:ShardError", RuntimeError),
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
