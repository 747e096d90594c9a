"""``nag-datasets profile TARGET_FEATURIZED PROFILE_DIR [--background POOL]``: build and save a target profile.

With ``--background`` the profile is contrastive: the target against a uniform sample of the pool
(``--background-sample`` rows, the whole pool when smaller), scoring with ``--signal``: ``nag`` (neuron counts weighted
by ``--weighting``, default shrinkage, m=50, alpha=0.5), ``embedding`` (a model on the ``nag_embedding`` column) or
``hybrid`` (both, z-scored: ``--nag-weight`` 0.2 on NAG). Without ``--signal`` the shipped default: hybrid when target
and pool carry ``nag_embedding`` (``featurize --embedding last``), else nag with a warning. Without ``--background``,
the paper's frequency profile.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InputNotFoundError, OutputExistsError

#: Weighting parameters the command line passes through when given.
_PARAMS = ("alpha", "m", "eps")


def _check_args(args: argparse.Namespace) -> None:
    """Argument checks that need no data, so that a mistake costs nothing."""
    from ..scoring.target_profile import ProfileError
    from ..storage.location import exists

    if exists(args.output) and not args.overwrite:
        raise OutputExistsError(f"{args.output} exists; pass --overwrite to replace the profile saved there")
    if args.background is None:
        given = [f"--{k.replace('_', '-')}" for k in ("weighting", *_PARAMS, "signal", "nag_weight", "embedding_model")
                 if getattr(args, k) is not None]
        if given:
            raise ProfileError(f"{', '.join(given)} need --background POOL: the paper's profile takes no weighting "
                               "and no signal")
        return
    if args.nag_weight is not None and not 0.0 <= args.nag_weight <= 1.0:
        raise ProfileError(f"--nag-weight must lie in [0, 1], got {args.nag_weight}")
    if args.weighting == "frequency" and args.signal not in (None, "nag"):
        raise ProfileError(f"--weighting frequency is the paper's profile: --signal {args.signal} needs a contrastive "
                           "weighting")
    if not exists(args.background):
        raise InputNotFoundError(f"no background dataset at {args.background}")
    if args.background_sample < 1:
        raise ProfileError(f"--background-sample must be >= 1, got {args.background_sample}")


def cmd_profile(args: argparse.Namespace) -> int:
    from ..scoring.target_profile import NAGProfile
    from ..scoring.weighting import get_weighting
    from ..signatures.formats import is_saved_dataset, load_any

    _check_args(args)
    weighting = None
    if args.background is not None and (args.weighting or "shrinkage") != "frequency":
        params = {k: getattr(args, k) for k in _PARAMS if getattr(args, k) is not None}
        weighting = get_weighting(args.weighting or "shrinkage", **params)  # checked before any data is read
    ds = load_any(args.input)
    profile = NAGProfile.from_dataset(ds, column=args.column, description=args.description or str(args.input))
    summary: dict[str, Any] = {"output": args.output, "targets": profile.num_targets,
                               "skipped_null": profile.skipped_null}
    if args.background is not None:
        # A saved folder is memory-mapped; files are streamed, so a large pool is never loaded whole.
        background_ds = load_any(args.background, streaming=not is_saved_dataset(args.background))
        background = NAGProfile.from_dataset(background_ds, column=args.column, sample=args.background_sample,
                                             seed=args.background_seed,
                                             description=f"background: sample of {args.background}")
        extra: dict[str, Any] = {}
        if weighting is not None:
            extra = {"signal": args.signal, "embedding_model": args.embedding_model or "learned"}
            if args.nag_weight is not None:
                extra["nag_weight"] = args.nag_weight
        profile = profile.contrast(background, weighting if weighting is not None else "frequency", **extra)
        summary["background"] = {"documents": background.num_targets, "sample": background.sample_info,
                                 "fingerprint": background.fingerprint()}
        summary["weighting"] = None if weighting is None else weighting.to_dict()
        summary["signal"] = getattr(profile, "signal", "nag")
    summary["kind"] = profile.score_kind
    summary["fingerprint"] = profile.fingerprint()
    profile.save(args.output)
    print(json.dumps(summary, indent=1))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    from ..scoring.embedding_model import EMBEDDING_MODELS
    from ..scoring.fusion import SIGNALS
    from ..scoring.target_profile import DEFAULT_BACKGROUND_SAMPLE
    from ..scoring.weighting import WEIGHTINGS

    p = subparsers.add_parser(
        "profile", help="build a target profile (contrastive with --background) from featurized target documents")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--column", default="nag_fwd_up")
    p.add_argument("--description", default="")
    p.add_argument("--overwrite", action="store_true", help="replace a profile saved in OUTPUT before")
    p.add_argument("--background", default=None,
                   help="featurized pool: make a contrastive profile against a uniform sample of it")
    p.add_argument("--background-sample", type=int, default=DEFAULT_BACKGROUND_SAMPLE,
                   help=f"rows of the background sample (default {DEFAULT_BACKGROUND_SAMPLE}; all when fewer)")
    p.add_argument("--background-seed", type=int, default=0)
    p.add_argument("--weighting", choices=[*sorted(WEIGHTINGS), "frequency"], default=None,
                   help="contrastive weighting (default shrinkage; 'frequency' = the paper's profile)")
    p.add_argument("--alpha", type=float, default=None, help="smoothing pseudo-count (log_odds, shrinkage)")
    p.add_argument("--m", type=float, default=None, help="shrinkage strength in pseudo-documents (shrinkage)")
    p.add_argument("--eps", type=float, default=None, help="floor added to both frequencies (lift)")
    p.add_argument("--signal", choices=SIGNALS, default=None,
                   help="what ranks: nag, embedding or hybrid (default: hybrid when target and background carry "
                        "nag_embedding, from featurize --embedding last; else nag, with a warning)")
    p.add_argument("--nag-weight", type=float, default=None,
                   help="the hybrid's weight on z(NAG) (default 0.2; the embedding model gets the rest)")
    p.add_argument("--embedding-model", choices=EMBEDDING_MODELS, default=None,
                   help="the embedding signal's model: learned (default, a cross-validated logistic regression of "
                        "target vs background rows) or centred (the centred contrastive embedding)")
    p.set_defaults(func=cmd_profile)
