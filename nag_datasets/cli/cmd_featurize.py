"""``nag-datasets featurize INPUT OUTPUT``: attach signature columns (in one process, ``--num-proc`` workers, launcher
ranks with resumable shards, or streaming parquet parts)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _layers(value: str) -> Any:
    if value in ("all", ""):
        return None
    if value.startswith("last"):
        return value  # "last" or "lastN", checked against the model by the featurizer
    return [int(v) for v in _csv(value)]


def cmd_featurize(args: argparse.Namespace) -> int:
    from ..featurize.featurizer import NAGFeaturizer
    from ..signatures.formats import check_output, load_any, save_any

    if not args.streaming:  # a streaming output folder is resumed by rerunning the same command
        check_output(args.output, overwrite=args.overwrite)
    featurizer = NAGFeaturizer(args.model, neuron_types=_csv(args.neuron_types), top_k=args.top_k,
                               max_length=args.max_length, layers=_layers(args.layers), text_column=args.text_column,
                               batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                               on_invalid=args.on_invalid, num_workers=args.num_proc, embedding=args.embedding)
    ds = None if args.streaming else load_any(args.input)
    if args.streaming:
        from ..featurize.streaming import featurize_streaming

        summary = featurize_streaming(args.input, args.output, featurizer, shard_rows=args.shard_rows or 10_000,
                                      overwrite=args.overwrite, wait_timeout=args.wait_timeout)
        print(json.dumps(summary, indent=1))
        return 0
    if args.sharded or args.shard_rows or int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        from ..featurize.sharded import featurize_sharded

        summary = featurize_sharded(ds, args.output, featurizer, shard_rows=args.shard_rows,
                                    overwrite=args.overwrite, keep_shards=args.keep_shards,
                                    wait_timeout=args.wait_timeout, num_proc=args.num_proc)
        print(json.dumps(summary, indent=1))
        return 0
    out, report = featurizer.apply(ds, return_report=True, num_proc=args.num_proc, fresh=args.fresh)
    save_any(out, args.output, overwrite=args.overwrite)
    print(json.dumps({"output": args.output, "report": report.to_dict()}, indent=1))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    f = subparsers.add_parser("featurize", help="attach NAG signature columns to a text dataset")
    f.add_argument("input")
    f.add_argument("output")
    f.add_argument("--model", default=None, help="local folder or Hub id (default: bundled SmolLM2-135M)")
    f.add_argument("--neuron-types", default="fwd_up")
    f.add_argument("--top-k", type=int, default=20)
    f.add_argument("--max-length", type=int, default=120)
    f.add_argument("--layers", default="all",
                   help="'all', 'last', 'lastN' (the final N layers; 'last10' for contrastive selection) or "
                        "comma-separated indices")
    f.add_argument("--embedding", default=None, metavar="last|mid|N",
                   help="also add nag_embedding: the mean over tokens of this decoder layer's output after the final "
                        "norm (float16), from the same forward pass; profiles need it for the hybrid signal")
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
                   help="stream the input and write OUT/part-NNNNNN.parquet shards incrementally (resumable; under a "
                        "launcher each rank streams its split and checkpoints its stream state)")
    f.add_argument("--keep-shards", action="store_true", help="keep OUT.shards/ after assembling OUT")
    f.add_argument("--wait-timeout", type=float, default=None, help="seconds rank 0 waits for the other ranks")
    f.set_defaults(func=cmd_featurize)
