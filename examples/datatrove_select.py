"""Token-budget NAG selection in a datatrove pipeline, offline, on the shipped demo data.

    pip install 'nag-datasets[datatrove]'
    python examples/datatrove_select.py --work /tmp/nag_datatrove --fraction 0.2

What it does:

0. writes the demo pool as two JSON lines shards (datatrove gives each task its own files) and builds the shipped
   default profile, the hybrid: 0.3 z(contrastive NAG) + 0.7 z(embedding model), the demo targets' ``att_o``
   neurons and last-layer embeddings against the pool's (the pool is its own background; featurized here
   in-process with ``embedding="last"``, which the check in step 4 reuses);
1. stage 1, 2 tasks: read, score with the profile (model loaded once per task), record ``(score, tokens)``;
2. stage 2, 1 task: the exact global cut at ``fraction`` of the pool's tokens, with the library's budget code;
3. stage 3, 2 tasks: read again, keep the chosen documents, write them with datatrove's ``JsonlWriter``;
4. checks that the written selection equals ``select_top_fraction`` on the same rows (same documents, same
   best-first order, same totals) and prints a summary; exit status 1 if it does not.

Rerunning the same command resumes: tasks finished earlier (datatrove's completion markers under
``WORK/<run>/logs``) are skipped. A run's folder is named after its settings (documents,
``--fraction``, ``--tasks``), so other settings start afresh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any


def write_shards(pool: Any, folder: Path, shards: int) -> None:
    """The pool rows as ``shards`` contiguous JSON lines files (file order = row order)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        part = pool.shard(num_shards=shards, index=i, contiguous=True)
        lines = [json.dumps({k: row[k] for k in ("id", "text", "source")}) for row in part]
        (folder / f"pool-{i:05d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_profile(targets: Any, pool: Any, featurizer: Any) -> tuple[Any, Any]:
    """(hybrid profile, featurized pool with full token counts), both in this process."""
    from nag_datasets import NAGProfile, count_tokens

    target = featurizer.apply(targets)
    pool = count_tokens(featurizer.apply(pool), featurizer.tokenizer, column="text")
    background = NAGProfile.from_dataset(pool, column="nag_att_o", description="demo pool (background)")
    profile = NAGProfile.from_dataset(target, column="nag_att_o", description="demo GSM8K targets")
    return profile.contrast(background), pool  # signal="hybrid": both sides carry nag_embedding


def run_pipeline(run: Path, profile: Any, featurizer: Any, fraction: float, tasks: int) -> None:
    """The three datatrove stages; each executor skips the tasks its completion markers say are done."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from nag_datasets.pipelines import NAGBudgetCut, NAGBudgetFilter, NAGBudgetScores, NAGDocumentScorer

    inputs, budget = str(run / "input"), str(run / "budget")
    LocalPipelineExecutor(
        [
            JsonlReader(inputs),
            NAGDocumentScorer(profile=profile, featurizer=featurizer, batch_size=64),
            NAGBudgetScores(budget),
        ],
        tasks=tasks,
        logging_dir=str(run / "logs" / "1-score"),
    ).run()
    LocalPipelineExecutor(
        [NAGBudgetCut(budget, fraction, profile=profile)], tasks=1, logging_dir=str(run / "logs" / "2-cut")
    ).run()
    LocalPipelineExecutor(
        [JsonlReader(inputs), NAGBudgetFilter(budget), JsonlWriter(str(run / "selected"), compression=None)],
        tasks=tasks,
        logging_dir=str(run / "logs" / "3-filter"),
    ).run()


def read_selection(folder: Path) -> list[dict[str, Any]]:
    """The written documents, best first (by the ``nag_selection_rank`` stage 3 recorded)."""
    docs = [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]
    return sorted(docs, key=lambda d: d["metadata"]["nag_selection_rank"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="working folder (inputs, stage outputs, logs, selection)")
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the pool's tokens to keep")
    parser.add_argument("--pool-docs", type=int, default=214, help="N demo pool documents, evenly spaced (all: 214)")
    parser.add_argument("--target-docs", type=int, default=40, help="first N demo target documents (all: 40)")
    parser.add_argument("--tasks", type=int, default=2, help="datatrove tasks for stages 1 and 3")
    parser.add_argument("--max-length", type=int, default=120, help="tokens featurized per document (default 120)")
    args = parser.parse_args(argv)

    from nag_datasets import NAGFeaturizer, select_top_fraction
    from nag_datasets.demo_data import load_demo

    pool_rows, targets = load_demo("pool"), load_demo("target")
    # Evenly spaced rows keep the mix of sources (the pool file is grouped by source).
    pool_rows = pool_rows.select(
        sorted(
            {
                round(i * (len(pool_rows) - 1) / max(args.pool_docs - 1, 1))
                for i in range(min(args.pool_docs, len(pool_rows)))
            }
        )
    )
    targets = targets.select(range(min(args.target_docs, len(targets))))
    # The run's folder is named after what decides its outputs, so a rerun resumes and other settings start afresh.
    settings = json.dumps([list(pool_rows["id"]), list(targets["id"]), args.tasks, args.fraction,
                           args.max_length]).encode()
    run = Path(args.work) / f"run-{hashlib.sha256(settings).hexdigest()[:12]}"
    write_shards(pool_rows, run / "input", args.tasks)

    # Configuration only: each datatrove task loads its own model, once, on its first batch (one torch thread).
    featurizer = NAGFeaturizer(neuron_types=("att_o",), max_length=args.max_length, torch_threads=1,
                               embedding="last")
    profile, pool = build_profile(targets, pool_rows, featurizer)
    run_pipeline(run, profile, featurizer, args.fraction, args.tasks)

    report = json.loads((run / "budget" / "selection.json").read_text())
    selected = read_selection(run / "selected")
    expected, expected_report = select_top_fraction(
        pool, args.fraction, token_column="num_tokens", profile=profile, return_report=True
    )
    same = (
        [d["id"] for d in selected] == list(expected["id"])
        and [d["metadata"]["nag_score"] for d in selected] == [float(s) for s in profile.score(expected)]
        and all(
            report[k] == getattr(expected_report, k)
            for k in ("documents_selected", "tokens_selected", "pool_documents", "pool_tokens", "threshold")
        )
    )
    summary = {
        "pool_documents": report["pool_documents"],
        "pool_tokens": report["pool_tokens"],
        "documents_selected": report["documents_selected"],
        "tokens_selected": report["tokens_selected"],
        "achieved_fraction": round(report["achieved_fraction"], 4),
        "threshold": report["threshold"],
        "selected_by_source": {
            s: sum(d["metadata"]["source"] == s for d in selected)
            for s in sorted({d["metadata"]["source"] for d in selected})
        },
        "selection_folder": str(run / "selected"),
        "equals_select_top_fraction": same,
    }
    print(json.dumps(summary, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
