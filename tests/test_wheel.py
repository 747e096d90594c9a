"""The built wheel holds the library with its templates and data, and nothing else (no research code: no analyses,
no evaluation harness or command)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_only_the_library(tmp_path):
    src = tmp_path / "src"
    # benchmarks/ (with the research package) is copied on purpose: the packaging must leave it out by itself.
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "results",
        "notebooks"))
    assert (src / "benchmarks" / "nag_research" / "__init__.py").is_file()
    wheels = tmp_path / "wheels"
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, env=env, cwd=tmp_path)
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"nag_datasets", next(t for t in tops if t.endswith(".dist-info"))}
    assert not [n for n in names if "nag_research" in n or "/evaluate/" in n or "/experiments/" in n
                or n.endswith("corpora.py")]
    # The analyses and the evaluation command are research code: benchmarks/nag_research, never the wheel.
    assert not [n for n in names if n.startswith("nag_datasets/analysis/") or "evaluate" in n.rsplit("/", 1)[-1]]
    assert not (REPO / "nag_datasets" / "hub_cards").exists()  # the templates have one home: the top-level hub_cards/
    for needed in ("nag_datasets/hub_cards/selected_subset.md", "nag_datasets/hub_cards/target_profile.md",
                   "nag_datasets/hub_cards/distilled_scorer.md", "nag_datasets/distill/scorer.py",
                   "nag_datasets/data/demo_sample.jsonl", "nag_datasets/py.typed", "nag_datasets/cli/__main__.py",
                   "nag_datasets/featurize/featurizer.py", "nag_datasets/scoring/kernel.py"):
        assert needed in names, needed
