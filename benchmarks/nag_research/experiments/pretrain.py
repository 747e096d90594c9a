"""Downstream check: pretrain a small Llama from scratch on data selected by each arm, same token budget.

Claim tested (paper): a model pretrained on NAG-selected data learns the target (GSM8K) better than one pretrained
on random or embedding/DSIR-selected data. Recipe per (arm, seed) unit:

1. Pool and eval sets from `corpus.build_corpus` (no GSM8K text in the pool, 13-gram decontaminated; selection
   targets = GSM8K ``train`` split, target evaluation = GSM8K ``heldout`` split, general evaluation = held-out
   documents of the pool's own sources).
   The corpus is saved as ``<out>/corpus.json`` and reused on resume.
2. One byte-level BPE tokenizer trained on the pool (saved as ``<out>/tokenizer.json``, shared by all arms).
3. The arm scores the pool (`arms.arm_scores`); `select.select_indices` keeps the best documents within
   ``budget_tokens / pool_tokens`` of the pool's tokens (document lengths in our BPE, +1 for EOS).
4. The selection is packed into exactly ``epochs * budget_tokens // seq_len`` sequences (cycling with a fresh
   shuffle when a selection is short; asserted), a model is initialised from the seed and trained with an
   identical recipe for every arm (`train.train`).
5. Mean per-document loss on target-eval and general-eval texts at the ``curve_fractions`` checkpoints and at the
   end; the unit is saved as ``<out>/units/<arm>-seed<seed>.json``. A rerun skips units whose file exists
   (resumable); a ``manifest.json`` with the config refuses resuming into a folder made with another config.

Configs: ``tiny`` (tests, seconds), ``small`` (notebook 07 under the tests, about a minute on 2 CPU cores),
``full`` (sized for this machine: 98 min on 2 idle cores; its results are committed under
``benchmarks/results/pretrain/full``). Run: ``python -m nag_research.experiments.pretrain --config full
--out runs/pretrain-full`` (``--estimate`` prints the expected wall time).

>>> CONFIGS["full"].epochs * CONFIGS["full"].budget_tokens // CONFIGS["full"].seq_len  # sequences per unit
2048

Left for later: man pages / FOLDOC as extra pool sources; featurizing NAG and embeddings in one forward pass
(today two passes); a per-n-gram DSIR weight (the package's weight is summed over a document's n-grams).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.storage.atomic import atomic_write_text

from .arms import ARMS, ArmContext, arm_scores
from .corpus import Corpus, build_corpus
from .train import EOS, build_model, encode, mean_loss, pack, train, train_tokenizer

__all__ = ["CONFIGS", "PretrainConfig", "compare", "estimate_seconds", "run", "summarize", "table"]

# Measured in the full run (2026-11-28, 2 idle cores): training ~2.9k tokens/s at hidden 256 (hidden 192 ~1.4x and
# 128 ~2.3x faster in a short benchmark); NAG featurization ~830 and mean-pooled embeddings ~710 tokens/s.
TRAIN_TOKENS_PER_S_AT_256 = 2900.0
NAG_TOKENS_PER_S = 830.0
EMBED_TOKENS_PER_S = 710.0


@dataclass(frozen=True)
class PretrainConfig:
    name: str
    pool_per_source: dict[str, int]
    n_target_select: int
    n_target_eval: int
    n_general_eval: int
    scan: int
    budget_tokens: int
    seq_len: int
    batch_size: int
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    lr: float
    feature_max_length: int = 120
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    corpus_seed: int = 0
    kjv_verses_per_doc: int = 5
    epochs: int = 1
    curve_fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seeds"], d["arms"] = list(self.seeds), list(self.arms)
        d["curve_fractions"] = list(self.curve_fractions)
        return d

    def key(self) -> str:
        """Hash of everything that changes results except the list of seeds and arms (those may grow)."""
        d = self.to_dict()
        d.pop("seeds"), d.pop("arms")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


CONFIGS: dict[str, PretrainConfig] = {
    "tiny": PretrainConfig(
        name="tiny", pool_per_source={"wordnet": 30, "kjv": 30, "gcide": 30, "humaneval": 20, "mmlu": 30},
        n_target_select=16, n_target_eval=12, n_general_eval=4, scan=500, budget_tokens=1024, seq_len=32,
        batch_size=8, vocab_size=400, hidden=32, layers=2, heads=2, intermediate=64, lr=3e-3,
        feature_max_length=32, arms=("random", "dsir")),
    # Notebook 07 at small size under the tests: sized for the CI token budget (two arms' direction, two seeds).
    "small": PretrainConfig(
        name="small", pool_per_source={"wordnet": 120, "kjv": 80, "gcide": 120, "humaneval": 40, "mmlu": 160},
        n_target_select=48, n_target_eval=48, n_general_eval=24, scan=3000, budget_tokens=16384, seq_len=64,
        batch_size=4, vocab_size=4000, hidden=64, layers=2, heads=2, intermediate=192, lr=3e-3,
        feature_max_length=32, seeds=(0, 1), arms=("random", "nag_all", "nag_last")),
    "full": PretrainConfig(
        name="full", pool_per_source={"wordnet": 4000, "kjv": 2000, "gcide": 3500, "humaneval": 100, "mmlu": 2500},
        n_target_select=500, n_target_eval=250, n_general_eval=60, scan=60000, budget_tokens=262_144,
        seq_len=256, batch_size=8, vocab_size=8000, hidden=256, layers=4, heads=4, intermediate=768, lr=2e-3,
        feature_max_length=96, epochs=2,
        # Every arm. The config key leaves the arm list out, so an appended arm keeps the committed units valid: the
        # run trains only the missing units (``hybrid``, issue 23 item 5, was added this way to the committed folder).
        arms=ARMS),
}


def estimate_seconds(cfg: PretrainConfig, pool_tokens: float | None = None) -> float:
    """Rough wall time on 2 idle CPU cores: an NAG pass and an embedding pass over the (truncated) pool, then
    training and evaluating every unit. ``pool_tokens`` defaults to documents x ``feature_max_length`` (an upper
    bound, so the feature part is pessimistic). The ``full`` run took 98 min against 105 estimated."""
    n_pool = sum(cfg.pool_per_source.values()) + cfg.n_target_select
    feat_tokens = pool_tokens or n_pool * cfg.feature_max_length
    feat = feat_tokens / NAG_TOKENS_PER_S + feat_tokens / EMBED_TOKENS_PER_S
    units = len(cfg.arms) * len(cfg.seeds)
    train_s = units * cfg.epochs * cfg.budget_tokens / (TRAIN_TOKENS_PER_S_AT_256 * 256 / cfg.hidden)
    return feat + 1.15 * train_s  # +15%: learning-curve evaluations


def _unit_path(out: Path, arm: str, seed: int) -> Path:
    return out / "units" / f"{arm}-seed{seed}.json"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def _manifest(out: Path, cfg: PretrainConfig) -> None:
    path = out / "manifest.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("key") != cfg.key():
            raise ValueError(f"{out} was made with config key {old.get('key')} ({old.get('config', {}).get('name')}),"
                             f" not {cfg.key()}: use another output folder")
    else:
        _write_json(path, {"key": cfg.key(), "config": cfg.to_dict()})


def _corpus(out: Path, cfg: PretrainConfig) -> Corpus:
    """The run's corpus, built once and saved as ``<out>/corpus.json`` so a resumed run trains on the same pool."""
    path = out / "corpus.json"
    if path.exists():
        return Corpus(**json.loads(path.read_text()))
    corpus = build_corpus(cfg.pool_per_source, n_target_select=cfg.n_target_select, n_target_eval=cfg.n_target_eval,
                          n_general_eval=cfg.n_general_eval, scan=cfg.scan, kjv_verses_per_doc=cfg.kjv_verses_per_doc,
                          seed=cfg.corpus_seed)
    _write_json(path, dataclasses.asdict(corpus))
    return corpus


def _tokenizer(out: Path, texts: Sequence[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer

    path = out / "tokenizer.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = train_tokenizer(texts, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path.with_suffix(".tmp")))
    path.with_suffix(".tmp").replace(path)
    return tok


def run(cfg: PretrainConfig | str, out: str | Path, *, arms: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None, log: Any = print) -> list[dict[str, Any]]:
    """Run every missing (arm, seed) unit of ``cfg`` into ``out`` and return all units' results (new and old)."""
    import torch

    from nag_datasets.selection.budgeted import select_indices

    cfg = CONFIGS[cfg] if isinstance(cfg, str) else cfg
    arms = tuple(arms or cfg.arms)
    seeds = tuple(cfg.seeds if seeds is None else seeds)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {ARMS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _manifest(out, cfg)
    todo = [(a, s) for a in arms for s in seeds if not _unit_path(out, a, s).exists()]
    results: list[dict[str, Any]] = []
    if todo:
        corpus = _corpus(out, cfg)
        tok = _tokenizer(out, corpus.pool_texts, cfg.vocab_size)
        eos_id = tok.token_to_id(EOS)
        pool_ids = encode(tok, corpus.pool_texts)
        doc_tokens = np.array([len(d) + 1 for d in pool_ids], dtype=np.int64)
        pool_tokens = int(doc_tokens.sum())
        fraction = cfg.budget_tokens / pool_tokens
        if fraction > 1:
            raise ValueError(f"pool has {pool_tokens} tokens, fewer than the budget {cfg.budget_tokens}")
        target_eval_ids = encode(tok, corpus.target_eval)
        general_eval_ids = encode(tok, corpus.general_eval)
        ctx = ArmContext(corpus.pool_texts, corpus.target_select, out / "features",
                         max_length=cfg.feature_max_length)
        n_seqs = cfg.epochs * cfg.budget_tokens // cfg.seq_len
        steps = -(-n_seqs // cfg.batch_size)
        checkpoints = sorted({max(1, int(steps * f)) for f in cfg.curve_fractions} - {steps})
        log(f"[{cfg.name}] pool {len(pool_ids)} docs / {pool_tokens} tokens, budget {cfg.budget_tokens} "
            f"({fraction:.3f} of pool), {n_seqs} x {cfg.seq_len}; {len(todo)} unit(s) to run")
        for arm, seed in todo:
            t0 = time.time()
            scores = np.asarray(arm_scores(arm, ctx, seed), dtype=np.float64)
            keep, _ = select_indices(scores, doc_tokens, fraction)
            keep = np.asarray(keep)
            seqs = pack([pool_ids[i] for i in keep], cfg.seq_len, n_seqs, eos_id, seed)
            assert seqs.numel() == n_seqs * cfg.seq_len
            torch.manual_seed(seed)
            model = build_model(tok.get_vocab_size(), hidden=cfg.hidden, layers=cfg.layers, heads=cfg.heads,
                                intermediate=cfg.intermediate, seq_len=cfg.seq_len, seed=seed)
            curve: list[dict[str, float]] = []

            def evaluate(step: int, model: Any = model, curve: list = curve) -> None:
                curve.append({"step": step, "tokens": min(step * cfg.batch_size, n_seqs) * cfg.seq_len,
                              "target_loss": mean_loss(model, target_eval_ids, seq_len=cfg.seq_len, eos_id=eos_id),
                              "general_loss": mean_loss(model, general_eval_ids, seq_len=cfg.seq_len,
                                                        eos_id=eos_id)})

            losses = train(model, seqs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed, checkpoints=checkpoints,
                           on_checkpoint=evaluate)
            evaluate(len(losses))
            comp: dict[str, int] = {}
            for i in keep:
                comp[corpus.pool_sources[i]] = comp.get(corpus.pool_sources[i], 0) + int(doc_tokens[i])
            result = {
                "arm": arm, "seed": seed, "config": cfg.name, "config_key": cfg.key(),
                "train_tokens": int(seqs.numel()), "train_sequences": int(seqs.shape[0]),
                "selected_docs": len(keep), "selected_tokens": int(doc_tokens[keep].sum()),
                "selected_tokens_by_source": comp,
                "target_loss": curve[-1]["target_loss"], "general_loss": curve[-1]["general_loss"],
                "curve": curve, "train_losses": [round(x, 4) for x in losses],
                "train_loss_first": losses[0], "train_loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])),
                "steps": len(losses), "seconds": round(time.time() - t0, 1),
                "pool_docs": len(pool_ids), "pool_tokens": pool_tokens,
                "contaminated_dropped": corpus.dropped_contaminated,
            }
            _write_json(_unit_path(out, arm, seed), result)
            log(f"  {arm:10s} seed {seed}: target {result['target_loss']:.3f} general {result['general_loss']:.3f}"
                f" ({result['seconds']} s)")
    for a in arms:
        for s in seeds:
            results.append(json.loads(_unit_path(out, a, s).read_text()))
    summary = summarize(results)
    _write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", table(summary))
    return results


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm: mean, sample std, min and max of target and general loss over seeds, plus token counts."""
    out: dict[str, dict[str, Any]] = {}
    for arm in dict.fromkeys(r["arm"] for r in results):
        rs = [r for r in results if r["arm"] == arm]
        row: dict[str, Any] = {"seeds": [r["seed"] for r in rs], "train_tokens": sorted({r["train_tokens"] for r in rs})}
        for k in ("target_loss", "general_loss"):
            v = np.array([r[k] for r in rs])
            row[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                      "min": float(v.min()), "max": float(v.max())}
        by_source: dict[str, float] = {}
        for r in rs:
            for src, n in r["selected_tokens_by_source"].items():
                by_source[src] = by_source.get(src, 0) + n / len(rs)
        total = sum(by_source.values()) or 1
        row["selected_share_by_source"] = {k: round(v / total, 3) for k, v in sorted(by_source.items())}
        out[arm] = row
    for arm, row in out.items():
        row["target_vs"] = {other: compare(results, arm, other) for other in out if other != arm}
    return out


def compare(results: Sequence[dict[str, Any]], a: str, b: str, key: str = "target_loss") -> dict[str, Any]:
    """Arm ``a`` against arm ``b`` on ``key`` over seeds: difference of means (negative = ``a`` lower), the larger
    of the two sample standard deviations, and whether the seed ranges are disjoint (every seed of one arm beats
    every seed of the other), which is what "exceeds the spread" means in the tables.

    >>> rs = [{"arm": "x", "target_loss": v} for v in (1.0, 1.1)] + [{"arm": "y", "target_loss": v} for v in (2.0, 2.2)]
    >>> c = compare(rs, "x", "y"); (round(c["diff"], 2), c["separated"])
    (-1.05, True)
    """
    va = np.array([r[key] for r in results if r["arm"] == a])
    vb = np.array([r[key] for r in results if r["arm"] == b])
    spread = max(float(va.std(ddof=1)) if len(va) > 1 else 0.0, float(vb.std(ddof=1)) if len(vb) > 1 else 0.0)
    return {"diff": float(va.mean() - vb.mean()), "max_std": spread,
            "separated": bool(va.max() < vb.min() or vb.max() < va.min())}


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [("| arm | seeds | target loss (mean ± std) | vs random | general loss (mean ± std) |"
              " selected share by source |"),
             "|---|---|---|---|---|---|"]
    for arm, r in summary.items():
        t, g = r["target_loss"], r["general_loss"]
        share = ", ".join(f"{k} {v:.2f}" for k, v in r["selected_share_by_source"].items())
        vs = r["target_vs"].get("random")
        vs_text = "" if vs is None else f"{vs['diff']:+.3f}" + (" (seeds separate)" if vs["separated"] else
                                                                  " (seed ranges overlap)")
        lines.append(f"| {arm} | {len(r['seeds'])} | {t['mean']:.3f} ± {t['std']:.3f} | {vs_text} | "
                     f"{g['mean']:.3f} ± {g['std']:.3f} | {share} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pretrain small LMs on data selected by each arm (issue 9).")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--out", type=Path, default=None, help="output folder (required unless --estimate)")
    parser.add_argument("--arms", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=None)
    parser.add_argument("--estimate", action="store_true", help="print the time estimate and exit")
    args = parser.parse_args(argv)
    cfg = CONFIGS[args.config]
    if args.estimate:
        print(f"{cfg.name}: ~{estimate_seconds(cfg) / 60:.0f} min on 2 CPU cores")
        return
    if args.out is None:
        parser.error("--out is required")
    run(cfg, args.out, arms=args.arms, seeds=args.seeds)
    print(table(summarize([json.loads(p.read_text()) for p in sorted((args.out / "units").glob("*.json"))])))


if __name__ == "__main__":
    main()
