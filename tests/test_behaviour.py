"""Scores and selections on the demo data are bit-identical to the values recorded before the layout change."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # featurizes the demo data with the bundled model (in record_behaviour.py)

DATA = Path(__file__).parent / "data"


def test_demo_behaviour_matches_recording() -> None:
    recorded = json.loads((DATA / "behaviour.json").read_text(encoding="utf-8"))
    measured = runpy.run_path(str(DATA / "record_behaviour.py"))["measure"]()
    assert measured["spec_fingerprint"] == recorded["spec_fingerprint"]
    assert measured["signatures_sha256"] == recorded["signatures_sha256"]
    assert measured["scores"] == recorded["scores"]
    assert measured["scores_float32_sha256"] == recorded["scores_float32_sha256"]
    assert measured["selected_ids"] == recorded["selected_ids"]
