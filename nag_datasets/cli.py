"""The ``nag-datasets`` command line: a thin layer over the library (no logic of its own).

    nag-datasets featurize POOL OUT [--model M] [--neuron-types fwd_up] [--top-k 20] [--num-proc N]
    nag-datasets profile TARGET_FEATURIZED PROFILE_DIR [--column nag_fwd_up] [--description "..."]
    nag-datasets select POOL_FEATURIZED OUT --profile PROFILE_DIR --fraction 0.2 [--token-column num_tokens]
    nag-datasets demo

Datasets are ``save_to_disk`` folders, parquet files or folders, or ``.jsonl`` files (see :mod:`nag_datasets.io`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _layers(value: str) -> Any:
    if value in ("all", ""):
        return None
    if value == "last":
        return "last"
    return [int(v) for v in _csv(value)]


def cmd_featurize(args: argparse.Namespace) -> int:
    from .featurizer import NAGFeaturizer
    from .io import check_output, load_any, save_any

    if not args.streaming:  # a streaming output folder is resumed by rerunning the same command
        check_output(args.output, overwrite=args.overwrite)
    featurizer = NAGFeaturizer(args.model, neuron_types=_csv(args.neuron_types), top_k=args.top_k,
                               max_length=args.max_length, layers=_layers(args.layers), text_column=args.text_column,
                               batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                               on_invalid=args.on_invalid, num_workers=args.num_proc)
    ds = None if args.streaming else load_any(args.input)
    if args.streaming:
        from .distributed import featurize_streaming

        summary = featurize_streaming(args.input, args.output, featurizer, shard_rows=args.shard_rows or 10_000,
                                      overwrite=args.overwrite)
        print(json.dumps(summary, indent=1))
        return 0
    if args.sharded or args.shard_rows or int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        from .distributed import featurize_sharded

        summary = featurize_sharded(ds, args.output, featurizer, shard_rows=args.shard_rows,
                                    overwrite=args.overwrite, keep_shards=args.keep_shards,
                                    wait_timeout=args.wait_timeout, num_proc=args.num_proc)
        print(json.dumps(summary, indent=1))
        return 0
    out, report = featurizer.apply(ds, return_report=True, num_proc=args.num_proc, fresh=args.fresh)
    save_any(out, args.output, overwrite=args.overwrite)
    print(json.dumps({"output": args.output, "report": report.__dict__}, indent=1))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from .io import load_any
    from .profile import NAGProfile

    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace the profile saved there")
    ds = load_any(args.input)
    profile = NAGProfile.from_dataset(ds, column=args.column, description=args.description or str(args.input))
    profile.save(args.output)
    print(json.dumps({"output": args.output, "targets": profile.num_targets, "fingerprint": profile.fingerprint(),
                      "skipped_null": profile.skipped_null}, indent=1))
    return 0


def _ensure_tokens(ds: Any, token_column: str, tokenizer_name: str | None, text_column: str) -> Any:
    if token_column in ds.column_names:
        return ds
    from transformers import AutoTokenizer

    from .models import converted_bundled_dir
    from .select import count_tokens

    source = tokenizer_name or str(converted_bundled_dir()[0])
    print(f"counting full-document tokens with {source} into column {token_column!r}", file=sys.stderr)
    return count_tokens(ds, AutoTokenizer.from_pretrained(source), column=text_column, out_column=token_column)


def cmd_select(args: argparse.Namespace) -> int:
    from ._io import atomic_write_text
    from .io import check_output, load_any, save_any
    from .profile import NAGProfile
    from .select import select_top_fraction

    if not 0.0 <= args.fraction <= 1.0:
        raise ValueError(f"--fraction must be within [0, 1], got {args.fraction}")
    check_output(args.output, overwrite=args.overwrite)
    profile = NAGProfile.load(args.profile)
    ds = _ensure_tokens(load_any(args.input), args.token_column, args.tokenizer, args.text_column)
    selected, report = select_top_fraction(ds, args.fraction, token_column=args.token_column, profile=profile,
                                           column=args.column, method=args.method, seed=args.seed,
                                           return_report=True)
    save_any(selected, args.output, overwrite=args.overwrite)
    if args.report:
        atomic_write_text(args.report, json.dumps(report.to_dict(), indent=1))
    print(json.dumps(report.to_dict(), indent=1))
    return 0


def _shares(values: Sequence[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: counts[k] / total for k in sorted(counts)}


def cmd_demo(args: argparse.Namespace) -> int:
    """Featurize the shipped demo target and pool on the bundled model, select, and explain the choice."""
    import numpy as np

    from .demo_data import load_demo
    from .featurizer import NAGFeaturizer
    from .profile import NAGProfile
    from .select import count_tokens, select_top_fraction

    print("NAG demo: target = GSM8K word problems; pool = held-out GSM8K, HumanEval and MMLU.")
    print("(The sources differ in format, so this shows the mechanics, not evidence of selection quality.)\n")
    featurizer = NAGFeaturizer(top_k=args.top_k)
    target = featurizer.apply(load_demo("target"))
    pool, report = featurizer.apply(load_demo("pool"), return_report=True)
    tokenizer = featurizer._ensure_loaded()["tokenizer"]
    pool = count_tokens(pool, tokenizer, column="text", out_column="num_tokens")
    profile = NAGProfile.from_dataset(target, column="nag_fwd_up", description="demo: GSM8K target split")
    spec = profile.spec
    print(f"model {spec.model_name} ({spec.model_fingerprint[:24]}...), neuron type {spec.neuron_type}, "
          f"K={spec.top_k}, {len(spec.layers)} layers, max_length={spec.max_length}")
    print(f"target: {profile.num_targets} documents; pool: {report.rows} documents, "
          f"{report.featurized_rows} featurized, {report.null_rows} null\n")
    scores = profile.score(pool)
    by_source: dict[str, list[float]] = {}
    for s, src in zip(scores.tolist(), pool["source"]):
        by_source.setdefault(src, []).append(s)
    print("mean similarity to the target by source:")
    for src, vals in sorted(by_source.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"  {src:10s} {np.mean(vals):.4f}  (n={len(vals)})")
    pool_share = _shares(list(pool["source"]))
    selections = []
    for fraction in args.fractions:
        selected, rep = select_top_fraction(pool, fraction, token_column="num_tokens", profile=profile,
                                            return_report=True)
        selections.append(selected)
        shares = _shares(list(selected["source"]))
        print(f"\nr_f={fraction:.2f}: kept {rep.documents_selected} documents, {rep.tokens_selected} of "
              f"{rep.pool_tokens} tokens ({rep.achieved_fraction:.3f}); score threshold {rep.threshold:.4f}")
        print("  source share, selected vs pool: " + ", ".join(
            f"{k} {shares.get(k, 0.0):.2f} vs {v:.2f}" for k, v in pool_share.items()))
    top = selections[0]
    print("\ntop documents:")
    top_scores = profile.score(top)
    for i in range(min(3, len(top))):
        text = " ".join(top[i]["text"].split())
        print(f"  [{top_scores[i]:.4f}] ({top[i]['source']}) {text[:110]}...")
    if args.output:
        from .io import save_any

        save_any(top, args.output, overwrite=True)
        print(f"\nwrote the r_f={args.fractions[0]} selection to {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nag-datasets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    f = sub.add_parser("featurize", help="attach NAG signature columns to a text dataset")
    f.add_argument("input")
    f.add_argument("output")
    f.add_argument("--model", default=None, help="local folder or Hub id (default: bundled SmolLM2-135M)")
    f.add_argument("--neuron-types", default="fwd_up")
    f.add_argument("--top-k", type=int, default=20)
    f.add_argument("--max-length", type=int, default=120)
    f.add_argument("--layers", default="all", help="'all', 'last' or comma-separated indices")
    f.add_argument("--text-column", default="text")
    f.add_argument("--batch-size", type=int, default=16)
    f.add_argument("--dtype", default=None)
    f.add_argument("--device", default=None)
    f.add_argument("--num-proc", type=int, default=None)
    f.add_argument("--on-invalid", choices=("error", "null"), default="error")
    f.add_argument("--overwrite", action="store_true")
    f.add_argument("--fresh", action="store_true", help="own datasets cache per --num-proc (not a cached shard count)")
    f.add_argument("--sharded", action="store_true",
                   help="resumable shards under OUT.shards/, one slice per launcher rank; automatic when WORLD_SIZE>1")
    f.add_argument("--shard-rows", type=int, default=None,
                   help="rows per resumable shard (implies --sharded unless --streaming; streaming default 10000)")
    f.add_argument("--streaming", action="store_true",
                   help="stream the input and write OUT/part-NNNNNN.parquet shards incrementally (resumable)")
    f.add_argument("--keep-shards", action="store_true", help="keep OUT.shards/ after assembling OUT")
    f.add_argument("--wait-timeout", type=float, default=None, help="seconds rank 0 waits for the other ranks")
    f.set_defaults(func=cmd_featurize)

    p = sub.add_parser("profile", help="build a target profile from featurized target documents")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--column", default="nag_fwd_up")
    p.add_argument("--description", default="")
    p.add_argument("--overwrite", action="store_true", help="replace a profile saved in OUTPUT before")
    p.set_defaults(func=cmd_profile)

    s = sub.add_parser("select", help="keep the pool documents most similar to a target, within a token budget")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("--profile", required=True)
    s.add_argument("--fraction", type=float, required=True)
    s.add_argument("--token-column", default="num_tokens")
    s.add_argument("--tokenizer", default=None, help="tokenizer for counting tokens when the column is missing")
    s.add_argument("--text-column", default="text")
    s.add_argument("--column", default=None)
    s.add_argument("--method", choices=("exact", "sampled"), default="exact")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--report", default=None, help="also write the selection report as JSON here")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_select)

    d = sub.add_parser("demo", help="run the whole method on the bundled model and shipped real data")
    d.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.05])
    d.add_argument("--top-k", type=int, default=20)
    d.add_argument("--output", default=None)
    d.set_defaults(func=cmd_demo)

    from . import hub
    from .evaluate import cli as evaluate_cli

    hub.register_cli(sub)
    evaluate_cli.register_cli(sub)
    return parser


#: Set to 1 to get the traceback of an error instead of its one-line message.
TRACEBACK_ENV = "NAG_DATASETS_TRACEBACK"


def _our_errors() -> tuple[type[BaseException], ...]:
    """What the library raises for bad input or a refused output (all reported as one line by :func:`main`)."""
    from ._io import FolderLockedError
    from .errors import NAGError
    from .hub import HubPublishError
    from .models import ModelLoadError

    # NAGError is the package's root; ValueError also covers SpecError, InvalidTextError and argument checks,
    # KeyError a missing column, TypeError a column of the wrong kind, OSError a missing or refused path.
    return (NAGError, FolderLockedError, HubPublishError, ModelLoadError, ValueError, KeyError, TypeError, OSError)


def _one_line(e: BaseException) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(text).split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every error of ours (bad argument, input, spec, profile, column, model, an existing or locked
    output) is one line on stderr and exit status 1, no traceback (``NAG_DATASETS_TRACEBACK=1`` shows it)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _our_errors() as e:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
