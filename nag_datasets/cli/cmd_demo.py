"""``nag-datasets demo``: the whole method on the bundled model and the shipped real data."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from typing import Any


def _shares(values: Sequence[str]) -> dict[str, float]:
    counts = Counter(values)
    total = sum(counts.values()) or 1
    return {k: counts[k] / total for k in sorted(counts)}


def cmd_demo(args: argparse.Namespace) -> int:
    """Featurize the shipped demo target and pool on the bundled model, select, and explain the choice."""
    import numpy as np

    from ..demo_data import load_demo
    from ..featurize.featurizer import NAGFeaturizer
    from ..scoring.target_profile import NAGProfile
    from ..selection.budgeted import select_top_fraction
    from ..selection.tokens import count_tokens

    print("NAG demo: target = GSM8K word problems; pool = held-out GSM8K, HumanEval and MMLU.")
    print("(The sources differ in format, so this shows the mechanics, not evidence of selection quality.)\n")
    # One forward pass, three columns: fwd_up (the paper's type), fwd_down (the hybrid's NAG component) and the
    # embedding (the mean over tokens of the last layer's output after the final norm).
    featurizer = NAGFeaturizer(neuron_types=("fwd_up", "fwd_down"), top_k=args.top_k, embedding="last")
    target = featurizer.apply(load_demo("target"))
    pool, report = featurizer.apply(load_demo("pool"), return_report=True)
    pool = count_tokens(pool, featurizer.tokenizer, column="text", out_column="num_tokens")
    # The lead: the shipped default, the hybrid of the contrastive profile (the targets' fwd_down neurons weighted
    # against the pool's own; the pool is its own background) and the learned embedding model. The contrastive NAG
    # signal alone and the paper's frequency profile (fwd_up) follow for comparison.
    background = NAGProfile.from_dataset(pool, column="nag_fwd_down", sample=args.background_sample,
                                         description="demo: the pool itself")
    target_profile = NAGProfile.from_dataset(target, column="nag_fwd_down", description="demo: GSM8K target split")
    profiles = {"hybrid": target_profile.contrast(background),  # both sides keep embeddings: the hybrid
                "contrastive": target_profile.contrast(background, signal="nag"),
                "paper": NAGProfile.from_dataset(target, column="nag_fwd_up", description="demo: GSM8K target split")}
    profile = profiles[args.profile]
    spec = profile.spec
    print(f"model {spec.model_name} ({spec.model_fingerprint[:24]}...), neuron types fwd_up + fwd_down, "
          f"K={spec.top_k}, {len(spec.layers)} layers, max_length={spec.max_length}, embedding: last layer")
    print(f"target: {profile.num_targets} documents; pool: {report.rows} documents, "
          f"{report.featurized_rows} featurized, {report.null_rows} null")
    print(f"profile: {args.profile} ({profile!r})\n")
    w = profiles["hybrid"].nag_weight
    for name, key in ((f"hybrid score ({w:g} z(fwd_down NAG) + {1 - w:g} z(embedding model); pool as background)",
                       "hybrid"),
                      ("contrastive score (fwd_down, shrinkage; pool as background)", "contrastive"),
                      ("paper similarity (fwd_up, target frequencies)", "paper")):
        scores = profiles[key].score(pool)
        by_source: dict[str, list[float]] = {}
        for s, src in zip(scores.tolist(), pool["source"]):
            by_source.setdefault(src, []).append(s)
        print(f"mean {name} by source:")
        for src, vals in sorted(by_source.items(), key=lambda kv: -np.mean(kv[1])):
            print(f"  {src:10s} {np.mean(vals):+.4f}  (n={len(vals)})")
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
        from ..signatures.formats import save_any

        save_any(top, args.output, overwrite=True)
        print(f"\nwrote the r_f={args.fractions[0]} selection to {args.output}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    d = subparsers.add_parser("demo", help="run the whole method on the bundled model and shipped real data")
    d.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.05])
    d.add_argument("--top-k", type=int, default=20)
    d.add_argument("--output", default=None)
    d.add_argument("--profile", choices=("hybrid", "contrastive", "paper"), default="hybrid",
                   help="rank with the hybrid (default: contrastive NAG and the learned embedding model), the "
                        "contrastive NAG profile alone or the paper's frequency profile")
    d.add_argument("--background-sample", type=int, default=10_000,
                   help="rows of the pool sampled as the contrastive background (all when fewer)")
    d.set_defaults(func=cmd_demo)
