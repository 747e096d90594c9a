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
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "distill"
FEATURES = OUT / "features"
POOL_SIZE = {"mmlu_domains": 10240, "gcide_fields": 4096}


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
    parser.add_argument("--stage", choices=("features", "speed", "pretrain-agreement", "all"), default="all",
                        help="speed: re-measure docs/s only, into results.json (the previous figure is kept under "
                             "'speed_runs'); pretrain-agreement: re-measure the pretraining pool's agreement only")
    parser.add_argument("--tasks", nargs="*", default=list(POOL_SIZE), help="tasks to study (default: both)")
    parser.add_argument("--speed-docs", type=int, default=64, help="documents timed for docs/s")
    parser.add_argument("--pool-size", nargs=2, type=int, metavar=("MMLU", "GCIDE"),
                        default=[POOL_SIZE["mmlu_domains"], POOL_SIZE["gcide_fields"]],
                        help="training-pool documents per task (a seeded, prefix-stable order: a larger pool contains "
                             "the smaller one)")
    parser.add_argument("--keep-speed", action="store_true",
                        help="keep the docs/s figures of the existing results.json instead of measuring again")
    args = parser.parse_args()
    sizes = dict(zip(POOL_SIZE, args.pool_size))
    tasks = harness_tasks()
    pools = {}
    for _tcfg, task, _feats in tasks:
        if task.name in args.tasks:
            pools[task.name] = training_features(task, sizes[task.name])
    if args.stage == "features":
        return
    from nag_research.evaluate.distill import MODELS, pretrain_agreement, run_study, speed, study_rule
    from nag_research.provenance import machine_info

    from nag_datasets.distill import train_model

    if args.stage == "pretrain-agreement":
        results = json.loads((OUT / "results.json").read_text())
        results["pretrain_arm_agreement"] = pretrain_agreement(HERE / "results" / "pretrain" / "full")
        (OUT / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
        log(f"wrote {OUT / 'results.json'} (pretraining-pool agreement)")
        return
    if args.stage == "speed":
        results = json.loads((OUT / "results.json").read_text())
        results.setdefault("speed_runs", []).append({**results["speed"], "machine": results["machine"]})
    else:
        results = run_study(tasks, pools, log=log)
        results["pretrain_arm_agreement"] = pretrain_agreement(HERE / "results" / "pretrain" / "full")
        log(f"pretraining arm agreement: {json.dumps(results['pretrain_arm_agreement'], default=float)[:400]}")
    if args.keep_speed:
        old = json.loads((OUT / "results.json").read_text())
        results["speed"], results["speed_runs"] = old["speed"], old.get("speed_runs", [])
        results["machine"] = machine_info()
        (OUT / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
        log(f"wrote {OUT / 'results.json'} (docs/s kept from the previous run)")
        return
    # Speed: the first MMLU harness pool documents, the featurizer against models trained on the MMLU training pool.
    _tcfg, task, _feats = next(t for t in tasks if t[1].name == "mmlu_domains")
    texts = [task.texts[i] for i in task.pool[: args.speed_docs]]
    train_texts = pools["mmlu_domains"][0] if "mmlu_domains" in pools else [task.texts[i] for i in task.pool]
    fake = np.random.default_rng(0).random(len(train_texts))  # speed does not depend on what was learned
    models = {k: train_model(train_texts, fake, rule=study_rule(k), model=k, seed=0)[0] for k in MODELS}
    torch_threads = int(os.environ.get("DISTILL_BENCH_TORCH_THREADS", "2"))
    results["speed"] = speed(texts, models, torch_threads=torch_threads)
    results["speed"]["torch_threads"] = torch_threads
    results["speed"]["machine"] = machine_info()
    log(f"speed: featurizer {results['speed']['featurizer_docs_per_s']:.1f} docs/s, distilled "
        f"{results['speed']['distilled_docs_per_s']}, ratio {results['speed']['ratio']}")
    if args.stage == "all":
        results["machine"] = machine_info()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    log(f"wrote {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
