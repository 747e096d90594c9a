"""Record the library's behaviour on the shipped demo data, so a refactor can prove it changed nothing.

Run from the repository root (bundled model installed, offline):

    python tests/data/record_behaviour.py            # rewrites tests/data/behaviour.json

``tests/test_behaviour.py`` recomputes the same values and compares them with the recorded file: the signatures'
sha256, the profile's float32 scores (bit for bit) and the rows a selection keeps, in order.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

RECORD = Path(__file__).with_name("behaviour.json")
TARGET_ROWS = 16
POOL_ROWS = 48
MAX_LENGTH = 32  # small, for the CI token budget (recorded in the spec fingerprint)
FRACTION = 0.25


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def measure() -> dict[str, Any]:
    """Featurize a fixed slice of the demo data on the bundled model, profile, score and select."""
    from nag_datasets import NAGFeaturizer, NAGProfile, count_tokens, select_top_fraction
    from nag_datasets.demo_data import load_demo

    featurizer = NAGFeaturizer(max_length=MAX_LENGTH)
    target = featurizer.apply(load_demo("target").select(range(TARGET_ROWS)))
    pool = featurizer.apply(load_demo("pool").select(range(POOL_ROWS)))
    tokenizer = featurizer._ensure_loaded()["tokenizer"]
    pool = count_tokens(pool, tokenizer, column="text", out_column="num_tokens")
    profile = NAGProfile.from_dataset(target, column="nag_fwd_up")
    scores = np.asarray(profile.score(pool), dtype=np.float32)
    signatures = {
        "target": _sha256(np.asarray(target["nag_fwd_up"], dtype=np.uint16)),
        "pool": _sha256(np.asarray(pool["nag_fwd_up"], dtype=np.uint16)),
    }
    selected = {}
    for method in ("exact", "sampled"):
        kept = select_top_fraction(pool, FRACTION, token_column="num_tokens", profile=profile, method=method)
        selected[method] = list(kept["id"])
    return {
        "target_rows": TARGET_ROWS,
        "pool_rows": POOL_ROWS,
        "fraction": FRACTION,
        "max_length": MAX_LENGTH,
        "spec_fingerprint": profile.spec.fingerprint,
        "signatures_sha256": signatures,
        "scores_float32_sha256": _sha256(scores),
        "scores": [float(s) for s in scores],
        "selected_ids": selected,
    }


if __name__ == "__main__":
    RECORD.write_text(json.dumps(measure(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RECORD}")
