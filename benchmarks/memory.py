"""Peak memory of featurization and selection as the pool grows.

Each measurement runs in a fresh child process and reports its peak resident set (VmHWM) and private memory
(RssAnon) at the end: featurizing on-disk pools of growing size with the bundled model (``datasets.map`` writes
batches to its cache file, so memory should stay flat), and exact selection over growing synthetic score arrays.

Usage: ``python benchmarks/memory.py [--docs 128,512,2048] [--max-length 32] [--select 1000000,4000000]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_info, save_results

_CHILD_FEATURIZE = r"""
import json, re, sys, tempfile
from datasets import Dataset, load_from_disk
from nag_datasets.demo_data import load_demo
from nag_datasets.featurize.featurizer import NAGFeaturizer

n, max_length, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
texts = list(load_demo()["text"])
Dataset.from_dict({"text": [texts[i % len(texts)] + f" ({i})" for i in range(n)]}).save_to_disk(folder + "/pool")
pool = load_from_disk(folder + "/pool")
out = NAGFeaturizer(max_length=max_length).apply(pool)
status = open("/proc/self/status").read()
kib = lambda key: int(re.search(key + r":\s+(\d+)", status).group(1))
print(json.dumps({"rows": len(out), "VmHWM_MiB": kib("VmHWM") / 1024, "RssAnon_MiB": kib("RssAnon") / 1024}))
"""

_CHILD_SELECT = r"""
import json, re, sys
import numpy as np
from nag_datasets.selection.budgeted import select_indices

n = int(sys.argv[1])
rng = np.random.default_rng(0)
scores = rng.random(n, dtype=np.float32)
tokens = rng.integers(1, 500, n, dtype=np.int32)
select_indices(scores[:1000], tokens[:1000], 0.2)
status = lambda: open("/proc/self/status").read()
kib = lambda key: int(re.search(key + r":\s+(\d+)", status()).group(1))
open("/proc/self/clear_refs", "w").write("5")
before = kib("VmRSS")
idx, rep = select_indices(scores, tokens, 0.2)
print(json.dumps({"rows": n, "selected": len(idx), "peak_extra_bytes_per_doc": (kib("VmHWM") - before) * 1024 / n,
                  "inputs_bytes_per_doc": 8}))
"""


def _run(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", default="128,512,2048")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--select", default="1000000,4000000,10000000")
    args = parser.parse_args()
    results: dict = {"featurize": [], "select": [], "max_length": args.max_length}
    for n in [int(x) for x in args.docs.split(",")]:
        with tempfile.TemporaryDirectory() as folder:
            r = _run(_CHILD_FEATURIZE, str(n), str(args.max_length), folder)
        results["featurize"].append(r)
        print(f"featurize {n:>8} docs: peak RSS {r['VmHWM_MiB']:.0f} MiB, private at end {r['RssAnon_MiB']:.0f} MiB")
    for n in [int(x) for x in args.select.split(",")]:
        r = _run(_CHILD_SELECT, str(n))
        results["select"].append(r)
        print(f"select   {n:>8} docs: peak {r['peak_extra_bytes_per_doc']:.1f} B/doc beyond the 8 B/doc of inputs")
    save_results("memory", {"machine": machine_info(), **results})


if __name__ == "__main__":
    main()
