"""Benchmark of scoring and selection on a memory-mapped pool of synthetic signatures.

Builds ``--n`` random (30 x 20, uint16, 1536 neurons) signatures into an on-disk dataset (in a child process, so
the build does not count in this process's memory), then times in one run: ``NAGProfile.score`` (zero-copy
Arrow), a plain numpy dense-weight gather on the same arrays, and ``select_top_fraction`` exact vs sampled.
Writes ``benchmarks/results/select.json``; the temporary dataset is deleted afterwards.

Usage: ``python benchmarks/select_bench.py [--n 1000000] [--repeats 3]``

The count and the contrastive (float32 weight) profile are timed alternately in the same run; both reach the
kernel as 16-bit tables, so they run the same compiled loop.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from nag_research.provenance import RESULTS_DIR, machine_info, save_results

L, K, N = 30, 20, 1536
FRACTION = 0.2


def _spec() -> Any:
    from nag_datasets.signatures.spec import SignatureSpec

    return SignatureSpec(model_fingerprint="bench", tokenizer_fingerprint="bench", neuron_type="fwd_up", top_k=K,
                         layers=tuple(range(L)), max_length=120, add_special_tokens=False, neurons_per_layer=N)


def build(n: int, path: str) -> None:
    """Write the synthetic pool to ``path`` (run in a child process)."""
    import datasets
    import pyarrow as pa
    from datasets import Dataset, Features, Value
    from datasets.table import InMemoryTable

    from nag_datasets.signatures.columns import signature_feature

    datasets.disable_progress_bars()
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, N, size=(n, L, K), dtype=np.uint16)
    tokens = rng.integers(20, 2000, size=n, dtype=np.int64)
    layers = pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel()), K)
    column = pa.FixedSizeListArray.from_arrays(layers, L)
    features = Features({"nag_fwd_up": signature_feature(_spec()), "num_tokens": Value("int64")})
    table = pa.table({"nag_fwd_up": column, "num_tokens": pa.array(tokens)}).cast(features.arrow_schema)
    Dataset(InMemoryTable(table)).save_to_disk(path, max_shard_size="4GB")


def _proc_status() -> dict[str, float]:
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key + "_MiB"] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def _timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def run(n: int, repeats: int) -> dict[str, Any]:
    import datasets

    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.selection.budgeted import select_indices, select_top_fraction
    from nag_datasets.signatures.arrow import signature_blocks, table_column

    datasets.disable_progress_bars()
    tmp_root = RESULTS_DIR / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    tmp = tempfile.mkdtemp(dir=tmp_root, prefix="select-")
    try:
        path = os.path.join(tmp, "pool")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", path, "--n", str(n)], check=True)
        build_s = time.perf_counter() - t0
        ds = datasets.load_from_disk(path)
        disk_bytes = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
        column_bytes = table_column(ds, "nag_fwd_up").nbytes

        spec = _spec()
        rng = np.random.default_rng(1)
        targets = np.argsort(rng.random((200, L, N)), axis=2)[:, :, :K]
        profile = NAGProfile.from_signatures(targets, spec, description="200 random targets")

        t0 = time.perf_counter()
        profile.score(targets[:10].astype(np.uint16))  # compile or load the cached kernel
        warmup_s = time.perf_counter() - t0

        # A contrastive profile (float32 weights) against a background of 2,000 random pool-like signatures,
        # timed in the same run and interleaved with the count kernel so that machine load hits both alike.
        background = NAGProfile.from_signatures(np.argsort(rng.random((2000, L, N)), axis=2)[:, :, :K], spec)
        contrastive = profile.contrast(background, "log_odds", alpha=0.25)
        contrastive.score(targets[:10].astype(np.uint16))
        score_times, contrast_times = [], []
        for r in range(repeats):
            # Alternate which goes first, so that neither always meets a cold page cache or a warm CPU.
            if r % 2:
                c, contrast_scores = _timed(lambda: contrastive.score(ds), 1)
                t, scores = _timed(lambda: profile.score(ds), 1)
            else:
                t, scores = _timed(lambda: profile.score(ds), 1)
                c, contrast_scores = _timed(lambda: contrastive.score(ds), 1)
            score_times += t
            contrast_times += c
        contrast_null = int(np.isnan(contrast_scores).sum())

        tokens = np.asarray(ds.data.column("num_tokens").to_numpy())
        exact_sel_times, (exact_idx, exact_rep) = _timed(lambda: select_indices(scores, tokens, FRACTION), repeats)
        sampled_sel_times, (_, sampled_rep) = _timed(
            lambda: select_indices(scores, tokens, FRACTION, method="sampled"), repeats
        )
        exact_full_times, _ = _timed(
            lambda: select_top_fraction(ds, FRACTION, token_column="num_tokens", profile=profile), repeats
        )
        sampled_full_times, _ = _timed(
            lambda: select_top_fraction(ds, FRACTION, token_column="num_tokens", profile=profile, method="sampled"),
            repeats,
        )
        memory = _proc_status()  # before the numpy baseline, whose temporaries are not ours
        memory["ru_maxrss_MiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

        weights = profile.weights
        layer_idx = np.arange(L)[None, :, None]

        def dense_gather() -> np.ndarray:
            # The obvious numpy version on the same zero-copy blocks; chunked so the (n, L, K) float64 gather
            # (4.8 GB for a million rows) never exists at once.
            parts = []
            for sigs, _ in signature_blocks(table_column(ds, "nag_fwd_up"), spec):
                for lo in range(0, len(sigs), 50_000):
                    parts.append(weights[layer_idx, sigs[lo : lo + 50_000]].sum((1, 2)) / (L * K))
            return np.concatenate(parts)

        numpy_times, dense = _timed(dense_gather, max(1, repeats - 1))
        max_abs_diff = float(np.max(np.abs(dense - scores.astype(np.float64))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(times: list[float]) -> float:
        return n / min(times)

    return {
        "n": n,
        "shape": [L, K],
        "neurons_per_layer": N,
        "fraction": FRACTION,
        "repeats": repeats,
        "load_avg_at_start": load_at_start,
        "build_seconds": round(build_s, 2),
        "kernel_warmup_seconds": round(warmup_s, 3),
        "score": {"seconds": score_times, "best_docs_per_s": rate(score_times),
                  "median_docs_per_s": n / statistics.median(score_times)},
        "score_contrastive_float32": {"seconds": contrast_times, "best_docs_per_s": rate(contrast_times),
                                      "median_docs_per_s": n / statistics.median(contrast_times),
                                      "null_scores": contrast_null,
                                      "vs_count_kernel_best": min(score_times) / min(contrast_times),
                                      "vs_count_kernel_median": statistics.median(score_times)
                                      / statistics.median(contrast_times),
                                      "kernel_table": {"dtype": str(contrastive.scoring_table()[0].table.dtype),
                                                       "divisor": contrastive.scoring_table()[0].divisor,
                                                       "count_table_dtype": str(profile.counts.dtype)}},
        "numpy_dense_gather": {"seconds": numpy_times, "best_docs_per_s": rate(numpy_times),
                               "max_abs_diff_vs_score": max_abs_diff},
        "select_exact_after_scoring": {"seconds": exact_sel_times, "achieved_fraction": exact_rep.achieved_fraction,
                                       "documents": exact_rep.documents_selected},
        "select_sampled_after_scoring": {"seconds": sampled_sel_times,
                                         "achieved_fraction": sampled_rep.achieved_fraction,
                                         "documents": sampled_rep.documents_selected},
        "select_top_fraction_exact": {"seconds": exact_full_times, "best_docs_per_s": rate(exact_full_times)},
        "select_top_fraction_sampled": {"seconds": sampled_full_times, "best_docs_per_s": rate(sampled_full_times)},
        "memory": memory,
        "memory_note": "after scoring and selecting, before the numpy baseline; RSS includes the memory-mapped "
                       "pool pages read while scoring (RssFile: shared, evictable)",
        "signature_column_bytes_per_index": column_bytes / (n * L * K),
        "dataset_disk_bytes_per_index": disk_bytes / (n * L * K),
        "dataset_disk_bytes": disk_bytes,
        "selected_rows_exact": len(exact_idx),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.n, args.build)
        return
    result = run(args.n, args.repeats)
    result["machine"] = machine_info()  # after measuring: it may import torch, which would inflate peak RSS
    target = save_results("select", result)
    rows = [
        ("NAGProfile.score (zero-copy, numba)", f"{result['score']['best_docs_per_s'] / 1e6:.2f} M docs/s",
         f"best of {min(result['score']['seconds']):.3f} s"),
        ("contrastive score (float32 weights)",
         f"{result['score_contrastive_float32']['best_docs_per_s'] / 1e6:.2f} M docs/s",
         (f"{result['score_contrastive_float32']['vs_count_kernel_best']:.2f}x (best) / "
          f"{result['score_contrastive_float32']['vs_count_kernel_median']:.2f}x (median) the count kernel, same run")),
        ("numpy dense gather (same arrays)", f"{result['numpy_dense_gather']['best_docs_per_s'] / 1e6:.3f} M docs/s",
         f"max |diff| {result['numpy_dense_gather']['max_abs_diff_vs_score']:.1e}"),
        ("select exact, after scoring", f"{min(result['select_exact_after_scoring']['seconds']):.3f} s",
         f"achieved {result['select_exact_after_scoring']['achieved_fraction']:.4f}"),
        ("select sampled, after scoring", f"{min(result['select_sampled_after_scoring']['seconds']):.3f} s",
         f"achieved {result['select_sampled_after_scoring']['achieved_fraction']:.4f}"),
        ("select_top_fraction exact (all)", f"{min(result['select_top_fraction_exact']['seconds']):.3f} s",
         f"{result['select_top_fraction_exact']['best_docs_per_s'] / 1e6:.2f} M docs/s"),
        ("select_top_fraction sampled (all)", f"{min(result['select_top_fraction_sampled']['seconds']):.3f} s",
         f"{result['select_top_fraction_sampled']['best_docs_per_s'] / 1e6:.2f} M docs/s"),
        ("peak RSS", f"{result['memory'].get('ru_maxrss_MiB')} MiB",
         f"anon {result['memory'].get('RssAnon_MiB')} / file {result['memory'].get('RssFile_MiB')} MiB at end"),
        ("signature column bytes / index", f"{result['signature_column_bytes_per_index']:.4f}",
         f"whole dataset on disk {result['dataset_disk_bytes_per_index']:.4f}"),
    ]
    print(f"n = {args.n:,} signatures of {L} x {K} (N = {N}), fraction {FRACTION}")
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>18}  {note}")
    print(f"results: {target}")


if __name__ == "__main__":
    main()
