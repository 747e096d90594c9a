"""Scale benchmark: featurization across processes, and scoring/selection memory on large on-disk pools.

1. Featurization with the bundled SmolLM2-135M on CPU (fp32, fwd_up, all layers, K=20, max_length 120) of
   ``--featurize-docs`` demo documents: documents/s and tokens/s of ``featurizer.apply`` with ``num_proc`` 1 and 2
   (the model is loaded in the parent first; with 2 workers each worker's own model load is part of the time).
2. For each size in ``--sizes`` (default 1M and 10M): a pool of random (30 x 20) uint16 signatures plus a token
   column is written chunk by chunk to one Arrow file (2.0 bytes per index: 1.2 kB per document, 12 GB for 10M)
   and opened memory-mapped (``Dataset.from_file``). A fresh child process then times ``NAGProfile.score`` and
   ``select_top_fraction`` (exact and sampled, r_f = 0.2) while a thread samples ``RssAnon`` (private memory) from
   ``/proc/self/status`` every 2 ms: the pool's pages are file-backed (``RssFile``: shared, evictable) and are
   not counted. A size is skipped, with a message in the results, when free disk is short.

Writes ``benchmarks/results/scale.json``. Usage:
``python benchmarks/scale.py [--sizes 1000000 10000000] [--featurize-docs 64] [--skip-featurize]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from nag_research.provenance import RESULTS_DIR, machine_info, save_results
from typing_extensions import Self

L, K, N = 30, 20, 1536
FRACTION = 0.2
TARGETS = 200
CHUNK = 100_000
BYTES_PER_DOC = L * K * 2 + 8


def _spec() -> Any:
    from nag_datasets.signatures.spec import SignatureSpec

    return SignatureSpec(model_fingerprint="bench", tokenizer_fingerprint="bench", neuron_type="fwd_up", top_k=K,
                         layers=tuple(range(L)), max_length=120, add_special_tokens=False, neurons_per_layer=N)


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class _PeakSampler:
    """Samples RssAnon in a thread; ``peak`` is the largest value seen (KiB) since start."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kib("RssAnon"))
            time.sleep(self.interval)

    def __enter__(self) -> Self:
        self.peak = _status_kib("RssAnon")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib("RssAnon"))


# -- pool ------------------------------------------------------------------------------------------------------


def build(n: int, path: str) -> None:
    """Write ``n`` random signatures and token counts to the Arrow stream file ``path``, chunk by chunk."""
    import pyarrow as pa
    from datasets import Features, Value

    from nag_datasets.signatures.columns import signature_feature

    features = Features({"nag_fwd_up": signature_feature(_spec()), "num_tokens": Value("int64")})
    schema = features.arrow_schema
    rng = np.random.default_rng(0)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for lo in range(0, n, CHUNK):
            m = min(CHUNK, n - lo)
            sigs = rng.integers(0, N, size=m * L * K, dtype=np.uint16)
            layers = pa.FixedSizeListArray.from_arrays(pa.array(sigs), K)
            column = pa.FixedSizeListArray.from_arrays(layers, L)
            tokens = pa.array(rng.integers(20, 2000, size=m, dtype=np.int64))
            writer.write_table(pa.table({"nag_fwd_up": column, "num_tokens": tokens}).cast(schema))


def measure(path: str) -> dict[str, Any]:
    """Run in a fresh child: time scoring and selection and sample their private memory."""
    import datasets
    from datasets import Dataset

    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.selection.budgeted import select_top_fraction

    datasets.disable_progress_bars()
    ds = Dataset.from_file(path)
    n = len(ds)
    rng = np.random.default_rng(1)
    targets = np.argsort(rng.random((TARGETS, L, N)), axis=2)[:, :, :K]
    profile = NAGProfile.from_signatures(targets, _spec(), description="random targets")
    del targets
    profile.score(np.zeros((4, L, K), np.uint16))  # compile or load the cached kernel
    out: dict[str, Any] = {"n": n, "baseline_rss_anon_MiB": round(_status_kib("RssAnon") / 1024, 1),
                           "profile_counts_MiB": round(profile.counts.nbytes / 2**20, 3)}

    def run(name: str, fn: Any, repeats: int = 2) -> Any:
        seconds, peaks, result = [], [], None
        for _ in range(repeats):
            result = None
            base = _status_kib("RssAnon")
            with _PeakSampler() as sampler:
                t0 = time.perf_counter()
                result = fn()
                seconds.append(time.perf_counter() - t0)
            peaks.append(sampler.peak - base)
        out[name] = {"seconds": [round(s, 3) for s in seconds], "best_docs_per_s": round(n / min(seconds)),
                     "peak_rss_anon_over_baseline_MiB": round(max(peaks) / 1024, 1),
                     "peak_private_bytes_per_doc": round(max(peaks) * 1024 / n, 2)}
        return result

    run("score", lambda: profile.score(ds))
    exact = run("select_top_fraction_exact",
                lambda: select_top_fraction(ds, FRACTION, token_column="num_tokens", profile=profile,
                                            return_report=True))
    out["select_top_fraction_exact"]["achieved_fraction"] = exact[1].achieved_fraction
    del exact
    sampled = run("select_top_fraction_sampled",
                  lambda: select_top_fraction(ds, FRACTION, token_column="num_tokens", profile=profile,
                                              method="sampled", return_report=True))
    out["select_top_fraction_sampled"]["achieved_fraction"] = sampled[1].achieved_fraction
    out["final_rss_file_MiB"] = round(_status_kib("RssFile") / 1024, 1)
    return out


def pool_case(n: int, workdir: Path) -> dict[str, Any]:
    need = n * BYTES_PER_DOC
    free = shutil.disk_usage(workdir).free
    if free < need * 1.3 + 2 * 2**30:
        msg = f"skipped: needs {need / 2**30:.1f} GiB on disk, {free / 2**30:.1f} GiB free at {workdir}"
        print(f"  n={n:,}: {msg}")
        return {"n": n, "skipped": msg}
    tmp = Path(tempfile.mkdtemp(dir=workdir, prefix="scale-"))
    try:
        path = str(tmp / "pool.arrow")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", path, "--n", str(n)], check=True)
        build_s = time.perf_counter() - t0
        disk = os.path.getsize(path)
        child = subprocess.run([sys.executable, __file__, "--measure", path], check=True, capture_output=True,
                               text=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result.update(build_seconds=round(build_s, 1), disk_bytes=disk, disk_bytes_per_doc=disk / n)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- featurization ---------------------------------------------------------------------------------------------


def featurize_case(docs: int, workdir: Path) -> dict[str, Any]:
    import datasets

    from nag_datasets.demo_data import load_demo
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    datasets.disable_progress_bars()
    pool = load_demo("pool").shuffle(seed=0).select(range(docs))
    tmp = Path(tempfile.mkdtemp(dir=workdir, prefix="scale-feat-"))
    try:
        pool.save_to_disk(str(tmp / "pool"))
        ds = datasets.load_from_disk(str(tmp / "pool"))
        out: dict[str, Any] = {"docs": docs}
        for num_proc in (1, 2):
            featurizer = NAGFeaturizer(num_workers=num_proc)
            featurizer.output_features(ds.features)  # loads the model in this process
            t0 = time.perf_counter()
            res, report = featurizer.apply(ds, num_proc=num_proc if num_proc > 1 else None, fresh=True,
                                           load_from_cache_file=False, return_report=True)
            seconds = time.perf_counter() - t0
            out[f"num_proc_{num_proc}"] = {"seconds": round(seconds, 2), "docs_per_s": round(docs / seconds, 2),
                                           "tokens_per_s": round(report.tokens / seconds, 1),
                                           "tokens": report.tokens, "cache_files": len(res.cache_files)}
            del res
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--featurize-docs", type=int, default=64)
    parser.add_argument("--skip-featurize", action="store_true")
    parser.add_argument("--workdir", default=str(RESULTS_DIR / "tmp"))
    parser.add_argument("--build", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.n, args.build)
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
                              "signature_shape": [L, K], "neurons_per_layer": N, "fraction": FRACTION,
                              "profile_targets": TARGETS}
    if not args.skip_featurize:
        print(f"featurizing {args.featurize_docs} demo documents with num_proc 1 and 2 ...")
        result["featurize"] = feat = featurize_case(args.featurize_docs, workdir)
        for k in ("num_proc_1", "num_proc_2"):
            print(f"  {k}: {feat[k]['docs_per_s']} docs/s, {feat[k]['tokens_per_s']} tokens/s ({feat[k]['seconds']} s)")
    result["pools"] = []
    for n in args.sizes:
        print(f"pool of {n:,} on-disk signatures ...")
        case = pool_case(n, workdir)
        result["pools"].append(case)
        if "skipped" not in case:
            for k in ("score", "select_top_fraction_exact", "select_top_fraction_sampled"):
                c = case[k]
                print(f"  {k}: {c['best_docs_per_s'] / 1e6:.2f} M docs/s, peak private +"
                      f"{c['peak_rss_anon_over_baseline_MiB']} MiB ({c['peak_private_bytes_per_doc']} B/doc)")
    result["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"] = machine_info()
    print(f"wrote {save_results('scale', result)}")


if __name__ == "__main__":
    main()
