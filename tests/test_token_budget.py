"""The test session's model-token accounting (tests/token_budget.py): what it counts, in which processes, at what cost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import token_budget

pytestmark = pytest.mark.fast

BUNDLED = f"{token_budget.REFERENCE_PARAMS}:49152x576"


def test_costs_scale_with_parameters_and_training():
    rows = [("tests/a.py::t1", BUNDLED, "forward", 100), ("tests/a.py::t2", BUNDLED, "train", 10),
            ("tests/b.py::t", f"{token_budget.REFERENCE_PARAMS // 10}:4000x64", "train", 1000)]
    summary = token_budget.summarize(rows)
    assert summary["modules"]["tests/a.py"] == {"forward": 100, "train": 10, "cost": 100 + 10 * token_budget.TRAIN_COST}
    assert summary["modules"]["tests/b.py"]["cost"] == round(1000 / 10 * token_budget.TRAIN_COST)
    assert summary["total_cost"] == 130 + 300
    assert summary["within_budget"] is True
    over = token_budget.summarize([("tests/c.py::t", BUNDLED, "forward", token_budget.BUDGET + 1)])
    assert over["within_budget"] is False
    assert list(summary["costliest_tests"]) == ["tests/b.py::t", "tests/a.py::t1", "tests/a.py::t2"]


def test_a_subprocess_is_counted_against_the_running_test(tmp_path):
    """A child Python process (here a tiny transformers model) appends its forward passes to the session's log."""
    code = (
        "import torch, transformers as tf\n"
        "cfg = tf.LlamaConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,"
        " num_key_value_heads=1, vocab_size=64)\n"
        "model = tf.LlamaForCausalLM(cfg).eval()\n"
        "with torch.no_grad():\n"
        "    model(input_ids=torch.ones(3, 5, dtype=torch.long))\n"
        "torch.nn.Embedding(7, 2)(torch.ones(4, dtype=torch.long))\n"  # outside a transformers model's vocabulary
    )
    env = {**os.environ, token_budget.DIR_ENV: str(tmp_path), token_budget.NODE_ENV: "tests/x.py::child"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = token_budget.read_log(tmp_path)
    params = rows[0][1].split(":")[0]
    assert rows == [("tests/x.py::child", f"{params}:64x16", "forward", 15)]
    assert int(params) > 64 * 16  # the whole model's parameters, not the embedding's
