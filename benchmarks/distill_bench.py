"""Distilled NAG scorers (issue 16): agreement with exact NAG, retrieval mean AP on the harness, documents/s.

Run from a checkout (features are cached under ``benchmarks/results/distill/features``, gitignored)::

    PYTHONPATH=.:benchmarks python benchmarks/distill_bench.py --stage features   # featurize the training pools
    PYTHONPATH=.:benchmarks python benchmarks/distill_bench.py                    # everything, JSON + printout

See `nag_research.evaluate.distill` for the protocol. Results: ``benchmarks/results/distill/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "distill"
FEATURES = OUT / "features"
POOL_SIZE = {"mmlu_domains": 2048, "gcide_fields": 1024}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def harness_tasks() -> list[tuple[Any, Any, Any]]:
    """The full harness config's tasks with their (cached) features."""
    from nag_research.evaluate.harness import CONFIGS, _task_features

    config = CONFIGS["full"]
    build = _task_features(config, None, None, log)
    return [(tcfg, *build(tcfg)) for tcfg in config.tasks]


def training_features(task: Any, n: int) -> tuple[list[str], list[str], Any]:
    from nag_research.evaluate.distill import training_pool
    from nag_research.evaluate.features import featurize_texts
    from nag_research.evaluate.harness import CONFIGS
    from transformers import AutoTokenizer

    from nag_datasets.featurize.models import converted_bundled_dir

    config = CONFIGS["full"]
    tokenizer = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))
    texts, labels = training_pool(task, tokenizer, config.max_length, n)
    log(f"[{task.name}] training pool: {len(texts)} documents; featurizing")
    feats = featurize_texts(texts, neuron_types=("fwd_up", "att_o"), top_k=config.top_k,
                            max_length=config.max_length, batch_size=config.batch_size, cache_dir=FEATURES,
                            progress=log)
    return texts, labels, feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=("features", "all"), default="all")
    args = parser.parse_args()
    tasks = harness_tasks()
    pools = {}
    for _tcfg, task, _feats in tasks:
        pools[task.name] = training_features(task, POOL_SIZE[task.name])
    if args.stage == "features":
        return
    from nag_research.evaluate.distill import run_study

    results = run_study(tasks, pools, log=log)
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average": os.getloadavg()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    log(f"wrote {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
