"""Benchmark: what the embedding signal costs at scoring time, against the contrastive NAG profile alone.

Featurizes 64 real demo documents once (bundled model, ``fwd_down``, last 10 layers, ``embedding="last"``,
32 tokens), builds the contrastive profiles of the GSM8K demo targets against the pool (``signal="nag"``,
``"embedding"`` and ``"hybrid"``), then tiles the featurized pool to ``--n`` rows in an on-disk dataset (memory-mapped,
as a real pool is) and times ``profile.score`` for each signal, interleaved, ``--repeats`` times. Rows are copies, so
the figures are about throughput, not ranking. Writes ``benchmarks/results/hybrid_score.json``.

Usage: ``PYTHONPATH=benchmarks python benchmarks/hybrid_score_bench.py [--n 1000000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from nag_research.provenance import machine_info, save_results


def build(n: int, folder: Path) -> tuple[dict[str, Any], Any]:
    """The three profiles and the memory-mapped ``n``-row pool."""
    from datasets import concatenate_datasets, load_from_disk

    from nag_datasets import NAGFeaturizer, NAGProfile
    from nag_datasets.demo_data import load_demo

    featurizer = NAGFeaturizer(neuron_types=("fwd_down",), layers="last10", embedding="last", max_length=32)
    pool = featurizer.apply(load_demo("pool").select(range(64)))
    target = featurizer.apply(load_demo("target"))
    background = NAGProfile.from_dataset(pool, column="nag_fwd_down", sample=10_000, seed=0)
    base = NAGProfile.from_dataset(target, column="nag_fwd_down")
    profiles = {signal: base.contrast(background, signal=signal) for signal in ("nag", "embedding", "hybrid")}
    keep = ["nag_fwd_down", "nag_embedding", "nag_spec"]
    unit = pool.select_columns(keep)
    reps = -(-n // len(unit))
    big = concatenate_datasets([unit] * reps).select(range(n)).flatten_indices()
    big.save_to_disk(str(folder / "pool"))
    return profiles, load_from_disk(str(folder / "pool"))


def run(n: int, repeats: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="nag_hybrid_bench_"))
    try:
        t0 = time.perf_counter()
        profiles, pool = build(n, folder)
        build_s = time.perf_counter() - t0
        for p in profiles.values():  # warm-up: kernel compilation, page cache
            p.score(pool)
        times: dict[str, list[float]] = {s: [] for s in profiles}
        for r in range(repeats):
            order = list(profiles) if r % 2 == 0 else list(profiles)[::-1]
            for signal in order:
                t = time.perf_counter()
                profiles[signal].score(pool)
                times[signal].append(time.perf_counter() - t)
        rows = [{"signal": s, "median_s": statistics.median(ts), "times_s": ts,
                 "docs_per_s": n / statistics.median(ts)} for s, ts in times.items()]
        base = statistics.median(times["nag"])
        for row in rows:
            row["vs_nag"] = row["median_s"] / base
            print(f"{row['signal']:<10} {row['docs_per_s'] / 1e6:6.2f} M docs/s  median {row['median_s']:.3f} s  "
                  f"{row['vs_nag']:.2f}x the NAG signal's time")
        return {"benchmark": "hybrid_score", "params": {"n": n, "repeats": repeats, "hidden": 576,
                                                        "signature": "fwd_down, last 10 layers, K=20"},
                "build_s": build_s, "results": rows, "machine": machine_info(),
                "notes": "profile.score on a memory-mapped save_to_disk pool of n rows (64 featurized demo rows "
                         "tiled); signals timed interleaved, order flipped every repeat; median of repeats."}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    payload = run(args.n, args.repeats)
    if not args.no_save:
        print("saved", save_results("hybrid_score", payload))


if __name__ == "__main__":
    main()
