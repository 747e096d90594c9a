"""GPU throughput of the featurizer core: ImpactRecorder vs the plain forward, MFU, projected H100-hours.

Runs on a machine with torch and transformers only (no datasets, gguf or network): models are random-init from
configs of the shapes that matter (speed does not depend on weight values), and
``nag_datasets.featurize.impact.ImpactRecorder`` is driven directly on synthetic batches of ``--tokens`` (120) valid tokens
each, in bf16 with SDPA attention:

* ``smollm2-135m``: LlamaConfig, hidden 576, intermediate 1536, 30 layers, 9 heads, 3 KV heads, vocab 49152, tied;
* ``qwen3-1.7b``: Qwen3Config, hidden 2048, intermediate 6144, 28 layers, 16 heads, 8 KV heads, head_dim 128,
  vocab 151936, tied (the paper's extraction model).

For each model and batch size it times (interleaved, best of ``--repeats`` rounds) the base model's plain forward
(no LM head, as the recorder) and ``recorder.signatures`` (fwd_up, all layers, K=20, indices copied to the host),
and reports tokens/s, the recorder/plain ratio, model FLOPs utilisation ``2 * non-embedding params * tokens / time /
peak`` (``--peak-tflops``, default 989 = H100 SXM dense bf16) and the projected device-hours for 150B tokens
(the paper: 192 H100-hours). Results go to ``--out`` (default ``benchmarks/results/gpu.json``).

Usage: ``python benchmarks/gpu.py`` on a GPU; ``python benchmarks/gpu.py --quick --device cpu`` is a smoke test
with tiny models (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the working tree, when the package is not installed (bare GPU machine)

import torch
import transformers

from nag_datasets.featurize.impact import ImpactRecorder, base_model

PAPER_TOKENS = 150e9
PAPER_H100_HOURS = 192
NOT_WANTED = ("datasets", "gguf", "pyarrow", "numba")

SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "smollm2-135m": ("LlamaConfig", {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                                     "tie_word_embeddings": True, "max_position_embeddings": 8192,
                                     "rope_theta": 100000.0}),
    "qwen3-1.7b": ("Qwen3Config", {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,
                                   "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                                   "vocab_size": 151936, "tie_word_embeddings": True,
                                   "max_position_embeddings": 40960, "rope_theta": 1000000.0}),
}
QUICK_SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny-llama": ("LlamaConfig", {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
                                   "tie_word_embeddings": True}),
    "tiny-qwen3": ("Qwen3Config", {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                   "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                                   "vocab_size": 1000, "tie_word_embeddings": True}),
}


def build_model(config_class: str, shape: dict[str, Any], device: str, dtype: torch.dtype) -> Any:
    """A random-init causal LM of ``shape``, built directly on ``device`` in ``dtype`` with SDPA attention."""
    from transformers import AutoModelForCausalLM

    config = getattr(transformers, config_class)(**shape)
    config._attn_implementation = "sdpa"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype).eval()


def non_embedding_params(model: Any) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and "lm_head" not in name)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_model(name: str, config_class: str, shape: dict[str, Any], *, device: str, dtype: torch.dtype,
               batch_sizes: list[int], tokens: int, iters: int, repeats: int, top_k: int,
               peak_flops: float | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    model = build_model(config_class, shape, device, dtype)
    build_s = time.perf_counter() - t0
    params = non_embedding_params(model)
    body = base_model(model)
    recorder = ImpactRecorder(model, ["fwd_up"])
    out: dict[str, Any] = {"model": name, "config": config_class, "shape": shape, "non_embedding_params": params,
                           "attn_implementation": str(getattr(model.config, "_attn_implementation", "")),
                           "dtype": str(dtype).replace("torch.", ""), "build_seconds": round(build_s, 1),
                           "batches": []}
    gen = torch.Generator(device="cpu").manual_seed(0)
    try:
        for bs in batch_sizes:
            ids = torch.randint(0, shape["vocab_size"], (bs, tokens), generator=gen).to(device)
            mask = torch.ones(bs, tokens, dtype=torch.long, device=device)

            def plain(ids: torch.Tensor = ids, mask: torch.Tensor = mask) -> None:
                with torch.inference_mode():
                    body(input_ids=ids, attention_mask=mask, use_cache=False)

            def record(ids: torch.Tensor = ids, mask: torch.Tensor = mask) -> None:
                recorder.signatures(ids, mask, top_k)["fwd_up"].cpu()

            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            for fn in (plain, record):  # warm-up: kernels, allocator, SDPA backend choice
                fn()
                fn()
            _sync(device)
            best = {"plain": float("inf"), "recorder": float("inf")}
            for r in range(repeats):
                order = [("plain", plain), ("recorder", record)]
                for label, fn in order if r % 2 == 0 else order[::-1]:
                    _sync(device)
                    t = time.perf_counter()
                    for _ in range(iters):
                        fn()
                    _sync(device)
                    best[label] = min(best[label], (time.perf_counter() - t) / iters)
            n_tok = bs * tokens
            row: dict[str, Any] = {"batch_size": bs, "tokens_per_batch": n_tok}
            for label in ("plain", "recorder"):
                tps = n_tok / best[label]
                row[label] = {"seconds_per_batch": best[label], "tokens_per_s": round(tps)}
                if peak_flops:
                    row[label]["mfu"] = round(2 * params * tps / peak_flops, 4)
                row[label]["projected_device_hours_150B_tokens"] = round(PAPER_TOKENS / tps / 3600, 1)
            row["recorder_over_plain"] = round(best["plain"] / best["recorder"], 3)
            if device.startswith("cuda"):
                row["peak_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            out["batches"].append(row)
            print(f"  {name} batch {bs:4d} x {tokens}: plain {row['plain']['tokens_per_s']:>10,} tok/s, recorder "
                  f"{row['recorder']['tokens_per_s']:>10,} tok/s ({row['recorder_over_plain']:.3f}x)"
                  + (f", MFU {row['recorder']['mfu']:.1%}" if peak_flops else "")
                  + f", 150B tokens: {row['recorder']['projected_device_hours_150B_tokens']:,} h", flush=True)
            del ids, mask
    finally:
        recorder.close()
        model = body = recorder = None  # free the weights before the next model is built
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    best_row = max(out["batches"], key=lambda r: r["recorder"]["tokens_per_s"])
    out["best"] = {"batch_size": best_row["batch_size"], **best_row["recorder"],
                   "recorder_over_plain": best_row["recorder_over_plain"]}
    return out


def _info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "torch": torch.__version__, "transformers": transformers.__version__,
                            "cuda_available": torch.cuda.is_available(), "device": device,
                            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                    gpu_memory_GiB=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    else:
        info["cpu_count"] = os.cpu_count()
    return info


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--models", default=None, help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--batch-sizes", default=None, help="default 64,256 (GPU), 4 (--quick)")
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--iters", type=int, default=None, help="batches per timed round (default 10; quick 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds, best kept (default 3; quick 2)")
    parser.add_argument("--dtype", default=None, help="bfloat16 (default on GPU) or float32 (default on CPU)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="peak dense bf16 TFLOP/s of the device for MFU (H100 SXM: 989; 0 = skip MFU)")
    parser.add_argument("--quick", action="store_true", help="tiny models and batches: a smoke test")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu.json"))
    args = parser.parse_args(argv)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    dtype = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float32": torch.float32,
             "fp32": torch.float32, "float16": torch.float16}[args.dtype or ("bfloat16" if cuda else "float32")]
    shapes = QUICK_SHAPES if args.quick else SHAPES
    names = args.models.split(",") if args.models else list(shapes)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("4" if args.quick else "64,256")).split(",")]
    iters = args.iters or (2 if args.quick else 10)
    repeats = args.repeats or (2 if args.quick else 3)
    peak = args.peak_tflops * 1e12 if args.peak_tflops and cuda else None
    note = None
    if not torch.cuda.is_available():
        note = ("CUDA is not available: no GPU on this machine. These are CPU figures of "
                + ("tiny smoke-test models" if args.quick else "the full-size shapes")
                + "; they say nothing about GPU throughput, MFU or the paper's 192 H100-hours.")
        print(f"NOTE: {note}")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    print(f"device {device}, dtype {str(dtype).replace('torch.', '')}, {args.tokens} tokens per document, "
          f"batch sizes {batch_sizes}")
    t0 = time.perf_counter()
    results = [time_model(n, *shapes[n], device=device, dtype=dtype, batch_sizes=batch_sizes, tokens=args.tokens,
                          iters=iters, repeats=repeats, top_k=args.top_k, peak_flops=peak) for n in names]
    data: dict[str, Any] = {
        "note": note, "machine": _info(device), "tokens_per_document": args.tokens, "top_k": args.top_k,
        "neuron_type": "fwd_up", "peak_tflops": args.peak_tflops if peak else None,
        "paper": {"tokens": PAPER_TOKENS, "h100_hours": PAPER_H100_HOURS, "extraction_model": "Qwen3-1.7B"},
        "models": results, "seconds": round(time.perf_counter() - t0, 1),
        "not_wanted_modules_imported": [m for m in NOT_WANTED if sys.modules.get(m) is not None],
    }
    for r in results:
        if r["model"] == "qwen3-1.7b" and cuda:
            hours = r["best"]["projected_device_hours_150B_tokens"]
            data["projection_vs_paper"] = {"device_hours": hours, "paper_h100_hours": PAPER_H100_HOURS,
                                           "device": data["machine"].get("gpu")}
            print(f"Qwen3-1.7B shape: {hours:,} {data['machine'].get('gpu')} hours for 150B tokens "
                  f"(paper: {PAPER_H100_HOURS} H100-hours)")
    _write(Path(args.out), data)
    print(f"wrote {args.out} in {data['seconds']} s")
    return data


if __name__ == "__main__":
    main()
