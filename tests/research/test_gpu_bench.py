"""`benchmarks/gpu.py` stays runnable: a CPU smoke run of tiny models, and a run with datasets & co. blocked."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"
QUICK = ["--quick", "--device", "cpu", "--iters", "1", "--repeats", "1"]


@pytest.mark.fast
def test_gpu_benchmark_quick_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("nag_gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.main([*QUICK, "--out", str(tmp_path / "gpu.json")])
    assert json.loads((tmp_path / "gpu.json").read_text()) == data
    assert [m["model"] for m in data["models"]] == ["tiny-llama", "tiny-qwen3"]
    for m in data["models"]:
        assert m["attn_implementation"] == "sdpa" and m["non_embedding_params"] > 0
        row = m["batches"][0]
        assert row["tokens_per_batch"] == 4 * 120
        assert row["plain"]["tokens_per_s"] > 0 and row["recorder"]["tokens_per_s"] > 0
        assert row["recorder"]["projected_device_hours_150B_tokens"] > 0
    if not torch.cuda.is_available():
        assert "CUDA is not available" in data["note"]
    # The full-size shapes are the ones the brief names.
    assert module.SHAPES["qwen3-1.7b"][1]["head_dim"] == 128
    assert module.SHAPES["smollm2-135m"][1]["intermediate_size"] == 1536


@pytest.mark.slow
def test_gpu_benchmark_runs_without_datasets_gguf_pyarrow_numba(tmp_path):
    """A GPU machine has torch and transformers only: the script must not need anything else."""
    out = tmp_path / "gpu.json"
    code = (
        "import sys, runpy\n"
        "for m in ('datasets', 'gguf', 'pyarrow', 'numba'): sys.modules[m] = None  # import raises ImportError\n"
        f"sys.argv = ['gpu.py', *{QUICK!r}, '--out', {str(out)!r}, '--models', 'tiny-llama']\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(out.read_text())["not_wanted_modules_imported"] == []
