"""Writes the profile files of tests/data/old_profiles with the library as it stood before embeddings (format
versions 1 and 2), plus the scores they gave, so that later code is tested against files it did not write.

Run once, from the repository root, at commit 6ba8a86 (the last one before format version 3):

    PYTHONPATH=$PWD:$PWD/tests python tests/data/old_profiles/record_old_profiles.py

Rerunning it with later code would overwrite the evidence; it refuses when the files exist.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import make_spec, random_signatures

from nag_datasets.scoring.target_profile import NAGProfile

HERE = Path(__file__).resolve().parent


def main() -> int:
    if (HERE / "expected.json").exists():
        print("old profile fixtures exist already; delete them first to record again", file=sys.stderr)
        return 1
    spec = make_spec()
    target = NAGProfile.from_signatures(random_signatures(5, spec, seed=1), spec, description="five targets")
    background = NAGProfile.from_signatures(random_signatures(40, spec, seed=2), spec, description="background")
    contrastive = target.contrast(background)
    pool = random_signatures(12, spec, seed=3)
    target.save(HERE / "v1_frequency")
    contrastive.save(HERE / "v2_contrastive")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE,
                            check=True).stdout.strip()
    np.save(HERE / "pool_signatures.npy", pool)
    expected = {
        "commit": commit,
        "v1_frequency": {"fingerprint": target.fingerprint(), "scores": target.score(pool).tolist()},
        "v2_contrastive": {"fingerprint": contrastive.fingerprint(), "scores": contrastive.score(pool).tolist()},
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
