"""Run the target-retrieval evaluation and store it under ``benchmarks/results/evaluate/``.

    python benchmarks/evaluate_retrieval.py --config full [--threads 1]
    python benchmarks/evaluate_retrieval.py --render-only --discussion benchmarks/evaluate_discussion.md

The run writes ``results.json`` (every number, the configuration, its parameters hash, the git commit and the
machine), ``report.md`` and ``plots/``. Featurized documents are cached (``$NAG_DATASETS_CACHE``), so a rerun or
an interrupted run only computes what is missing. ``--render-only`` rebuilds the report from ``results.json``,
adding the hand-written discussion from ``--discussion`` if given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import RESULTS_DIR, machine_info
from nag_research.evaluate.harness import CONFIGS, run_evaluation
from nag_research.evaluate.report import write_report

OUT = RESULTS_DIR / "evaluate"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="full")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--discussion", type=Path, default=None, help="markdown paragraph added to the report")
    parser.add_argument("--render-only", action="store_true", help="rebuild report.md and plots from results.json")
    args = parser.parse_args(argv)
    discussion = args.discussion.read_text().strip() if args.discussion else None
    if args.render_only:
        results = json.loads((args.out / "results.json").read_text())
        if discussion:
            results["discussion"] = discussion
            (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        write_report(results, args.out)
        print(f"rewrote {args.out / 'report.md'}")
        return 0
    extra = {"machine": machine_info(), "torch_threads_requested": args.threads}
    if discussion:
        extra["discussion"] = discussion
    run_evaluation(args.config, args.out, cache_dir=args.cache_dir, torch_threads=args.threads, extra=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
