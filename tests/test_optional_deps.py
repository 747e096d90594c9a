"""The core imports without the optional extras (gguf, ray, datatrove, ...) and without loading matplotlib (a core
dependency, imported only to draw); using an extra's feature names its install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.fast

BLOCKED = ("matplotlib", "gguf", "ray", "sklearn", "datatrove", "fasttext")
CORE = ("nag_datasets.errors", "nag_datasets.storage", "nag_datasets.signatures", "nag_datasets.featurize",
        "nag_datasets.scoring", "nag_datasets.selection", "nag_datasets.hub",
        "nag_datasets.cli", "nag_datasets.pipelines", "nag_datasets.distill")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    shim = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in BLOCKED)
    return subprocess.run([sys.executable, "-c", shim + textwrap.dedent(code)], capture_output=True, text=True,
                          check=False, timeout=600)


def test_core_modules_import_without_the_extras():
    code = f"""
        import importlib, pkgutil
        names = []
        for top in {CORE!r}:
            module = importlib.import_module(top)
            names.append(top)
            for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=top + "."):
                if not info.name.endswith("__main__"):
                    importlib.import_module(info.name)
                    names.append(info.name)
        import nag_datasets
        for name in nag_datasets.__all__:
            getattr(nag_datasets, name)
        for blocked in {BLOCKED!r}:
            assert sys.modules[blocked] is None, blocked
        print(len(names))
    """
    run = _run(code)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[-1]) >= 30


def test_missing_extras_raise_an_install_hint():
    code = """
        from nag_datasets.featurize.models import _require_gguf
        from nag_datasets.pipelines import NAGBudgetCut, NAGDocumentScorer, NAGScoreFilter
        from nag_datasets.pipelines._datatrove import require_datatrove
        from nag_datasets.distill.models import _require_fasttext, _require_sklearn
        for check, extra in ((_require_gguf, "gguf"), (require_datatrove, "datatrove"),
                             (lambda: NAGBudgetCut("out", 0.2), "datatrove"), (lambda: NAGScoreFilter(0.5), "datatrove"),
                             (lambda: NAGDocumentScorer(object()), "datatrove"), (_require_fasttext, "distill"),
                             (_require_sklearn, "distill")):
            try:
                check()
            except ImportError as e:
                assert f"nag-datasets[{extra}]" in str(e), e
            else:
                raise AssertionError(f"{check} did not raise")
        print("ok")
    """
    run = _run(code)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]


def test_matplotlib_is_a_core_dependency_and_plots_an_empty_alias():
    """A plain ``pip install nag-datasets`` can export (the card's figure needs matplotlib); the old ``[plots]`` extra
    still installs (empty), so older install commands keep working."""
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    core = [line.split(">")[0].split("=")[0].strip() for line in cfg["options"]["install_requires"].split("\n")]
    assert "matplotlib" in core
    assert cfg["options.extras_require"]["plots"].strip() == ""
