"""The downstream experiment (issue 24): one code path, sized by a config; resumable per (target, arm, seed) unit.

Per run folder (``--work``, not committed): ``corpus.json`` (:mod:`.corpus`), ``tokenizer.json`` (byte-level BPE
trained on the pool), ``features/`` (one pass of the bundled model over pool and targets, chunked ``.npz``),
``scores/`` and ``selections/`` (``.npy``). Per unit, in the results folder (``--out``, committed):
``units/<target>-<arm>-seed<seed>.json`` holding the selection's composition, the training curve and lm-eval's
output per evaluation set (acc, acc_norm, their stderr) with the summed log-likelihood of the gold continuation.
A rerun skips finished units; ``results.json`` and ``summary.md`` are rewritten from all units at the end.

Training: a small Llama from scratch on each arm's selection (the same recipe for every arm: seed-dependent init
and data order). Continued pretraining of the bundled 135M model was measured and rejected for the CPU size (see
``SPEED``): it trains at well under 40 tokens/s on this shared 2-core machine, too slow for 24 units.

Run: ``python -m nag_research.downstream.experiment --config cpu --work runs/downstream
--out benchmarks/results/downstream``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.storage.atomic import atomic_write_text

from . import corpus as corpus_mod
from .arms import ARMS, SEED_FREE, Features, arm_scores, select_budget
from .corpus import CorpusConfig

#: Measured on this machine (shared 2-core, 2026-12-05, other agents running): tokens/s.
SPEED = {"scratch_h256_l4_v8k_train": 304, "scratch_h192_l4_v8k_train": 670, "scratch_h192_l4_v8k_forward": 1076,
         "bundled_135m_train": "< 10 (3 AdamW steps of 8 x 128 tokens did not finish in 4 min, loading included)"}
TARGETS = ("arc_challenge", "hellaswag")
#: Neuron types recorded in the one forward pass over pool and targets (``fwd_down`` serves the ``hybrid`` arm; it
#: was added after the first 36 units, whose arms read only ``fwd_up`` and ``att_o``: their cached scores stand).
NEURON_TYPES = ("fwd_up", "att_o", "fwd_down")


@dataclass(frozen=True)
class DownstreamConfig:
    name: str
    corpus: CorpusConfig
    budget_tokens: int
    feature_max_length: int = 48
    hellaswag_feature_targets: int = 2000  # of the 10k sample, featurized for the model-based arms
    seq_len: int = 256
    batch_size: int = 8
    vocab_size: int = 8000
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    intermediate: int = 384
    lr: float = 3e-3
    epochs: int = 1
    arms: tuple[str, ...] = ("random", "nag_paper", "nag_contrast", "embedding_contrast", "dsir", "nag_distilled",
                             "hybrid")
    targets: tuple[str, ...] = TARGETS
    seeds: tuple[int, ...] = (0, 1)
    eval_tasks: tuple[str, ...] = ("arc_challenge", "arc_easy", "hellaswag")
    eval_batch_size: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def key(self) -> str:
        d = self.to_dict()
        for k in ("arms", "seeds", "targets", "name"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


_CPU_POOL = {"boolq_wikipedia": 400, "coqa_story": 200, "drop_wikipedia": 200, "sciq_support": 300,
             "evals_owt": 300, "evals_wikipedia": 300, "gutenberg": 250, "python_doc": 250, "wordnet": 150,
             "kjv": 150, "gcide": 150, "mmlu": 300, "humaneval": 50}
CONFIGS: dict[str, DownstreamConfig] = {
    "tiny": DownstreamConfig(
        name="tiny", corpus=CorpusConfig({"evals_owt": 12, "evals_wikipedia": 12, "humaneval": 8},
                                         {"arc_challenge": 4, "arc_easy": 0, "hellaswag": 4}, hellaswag_targets=20),
        budget_tokens=2048, feature_max_length=16, hellaswag_feature_targets=8, seq_len=32, vocab_size=400,
        hidden=32, layers=2, heads=2, intermediate=64, arms=("random", "nag_paper"), seeds=(0,),
        eval_tasks=("arc_challenge", "hellaswag"), eval_batch_size=8, extra={"arc_feature_targets": 8}),
    "cpu": DownstreamConfig(
        name="cpu", corpus=CorpusConfig(_CPU_POOL, {"arc_challenge": None, "arc_easy": 200, "hellaswag": 200},
                                        max_words=160),
        budget_tokens=40_960, feature_max_length=32, hellaswag_feature_targets=1000, batch_size=4, epochs=2,
        seeds=(0, 1, 2)),
}


def config_from_dict(d: dict[str, Any]) -> DownstreamConfig:
    """The config a run's ``manifest.json`` recorded (tuples restored)."""
    d = dict(d)
    d["corpus"] = CorpusConfig(**d["corpus"])
    for k in ("arms", "targets", "seeds", "eval_tasks"):
        d[k] = tuple(d[k])
    return DownstreamConfig(**d)


# ------------------------------------------------------------------------------------------------ shared state

def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def _save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    np.save(tmp, arr)
    tmp.replace(path)


def tokenizer(work: Path, texts: Sequence[str], vocab_size: int) -> Any:
    """The run's byte-level BPE (``<|endoftext|>`` as its only special token), trained once on the pool."""
    from tokenizers import Tokenizer

    from ..experiments.train import train_tokenizer

    path = work / "tokenizer.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tok = train_tokenizer(texts, vocab_size)
    tmp = work / ".tokenizer.tmp.json"
    tok.save(str(tmp))
    tmp.replace(path)
    return tok


def features(work: Path, corpus: corpus_mod.Corpus, target: str, cfg: DownstreamConfig,
             log: Any = print) -> Features:
    """Pool and target features from the bundled model, one pass each, cached in chunks under ``work/features``."""
    from ..evaluate.features import featurize_texts

    pool_texts = [d.text for d in corpus.pool]
    targets = corpus.target_texts(target)
    cap = cfg.hellaswag_feature_targets if target == "hellaswag" else cfg.extra.get("arc_feature_targets")
    featurized = targets if cap is None else targets[:cap]
    kw = {"neuron_types": NEURON_TYPES, "top_k": 20, "max_length": cfg.feature_max_length,
          "cache_dir": work / "features", "torch_threads": 1, "progress": log}
    pool = featurize_texts(pool_texts, **kw)
    tgt = featurize_texts(featurized, **kw)
    return Features(pool.signatures, tgt.signatures, pool.specs, pool.embeddings["last"], tgt.embeddings["last"],
                    pool_texts, targets)


def build_model(vocab_size: int, eos_id: int, cfg: DownstreamConfig, seed: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                         max_position_embeddings=max(512, cfg.seq_len), tie_word_embeddings=True,
                         bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_hf(model: Any, tok: Any, folder: Path) -> Path:
    """Model and tokenizer as a transformers folder lm-eval can load."""
    from transformers import PreTrainedTokenizerFast

    from ..experiments.train import EOS

    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(folder)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    fast.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------------ the run

def unit_name(target: str, arm: str, seed: int) -> str:
    return f"{target}-{arm}-seed{seed}"


def _order(cfg: DownstreamConfig) -> list[tuple[str, str, int]]:
    """Seeds outermost, so that every arm x target has one seed before any has two."""
    return [(t, a, s) for s in cfg.seeds for t in cfg.targets for a in cfg.arms]


def run(cfg: DownstreamConfig | str, work: Path, out: Path, *, log: Any = print,
        only: Sequence[tuple[str, str, int]] | None = None) -> dict[str, Any]:
    """Every missing unit of ``cfg``, then ``results.json``/``summary.md`` in ``out`` from all finished units."""
    import torch

    from ..experiments.train import EOS, encode, pack, train
    from . import lmeval

    cfg = CONFIGS[cfg] if isinstance(cfg, str) else cfg
    work, out = Path(work), Path(out)
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text())["key"] != cfg.key():
        raise ValueError(f"{work} holds a run of another config; use a fresh --work folder")
    _write_json(manifest, {"key": cfg.key(), "config": cfg.to_dict()})
    units = [u for u in (only or _order(cfg)) if not (out / "units" / f"{unit_name(*u)}.json").is_file()]
    t0 = time.time()
    corp = corpus_mod.load_or_build(cfg.corpus, work, log=log)
    log(f"[{cfg.name}] corpus: {len(corp.pool)} pool documents ({time.time() - t0:.0f} s); {len(units)} unit(s) to run")
    tok = tokenizer(work, [d.text for d in corp.pool], cfg.vocab_size)
    eos_id = tok.token_to_id(EOS)
    pool_ids = encode(tok, [d.text for d in corp.pool])
    doc_tokens = np.array([len(x) + 1 for x in pool_ids], dtype=np.int64)
    data_dir = work / "eval_data"
    lmeval.write_eval_arrows(corp.evals, data_dir)
    task_dir = lmeval.task_folder(data_dir, work / "tasks")
    feats: dict[str, Features] = {}
    torch.set_num_threads(1)  # 2 threads on this shared machine ran 10x slower (oversubscription)
    for target, arm, seed in units:
        u0 = time.time()
        if target not in feats:
            feats[target] = features(work, corp, target, cfg, log=log)
        score_path = work / "scores" / (f"{target}-{arm}.npy" if arm in SEED_FREE else f"{target}-{arm}-seed{seed}.npy")
        if score_path.is_file():
            scores = np.load(score_path)
        else:
            scores = arm_scores(arm, feats[target], seed)
            _save_npy(score_path, scores)
        keep = select_budget(scores, doc_tokens, cfg.budget_tokens)
        _save_npy(work / "selections" / f"{unit_name(target, arm, seed)}.npy", keep)
        n_seqs = cfg.epochs * cfg.budget_tokens // cfg.seq_len
        seqs = pack([pool_ids[i] for i in keep], cfg.seq_len, n_seqs, eos_id, seed)
        model = build_model(tok.get_vocab_size(), eos_id, cfg, seed)
        t_train = time.time()
        losses = train(model, seqs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed)
        train_s = time.time() - t_train
        folder = save_hf(model, tok, work / "models" / unit_name(target, arm, seed))
        t_eval = time.time()
        evals = lmeval.evaluate_model(folder, cfg.eval_tasks, task_dir, batch_size=cfg.eval_batch_size)
        eval_s = time.time() - t_eval
        shutil.rmtree(folder)
        by_source: dict[str, int] = {}
        for i in keep:
            by_source[corp.pool[i].source] = by_source.get(corp.pool[i].source, 0) + int(doc_tokens[i])
        result = {
            "target": target, "arm": arm, "seed": seed, "config": cfg.name, "config_key": cfg.key(),
            "selected_docs": len(keep), "selected_tokens": int(doc_tokens[keep].sum()),
            "selected_tokens_by_source": dict(sorted(by_source.items())),
            "train_tokens": int(seqs.numel()), "steps": len(losses), "train_loss_first": losses[0],
            "train_loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])),
            "train_losses": [round(x, 4) for x in losses[:: max(1, len(losses) // 50)]],
            "train_seconds": round(train_s, 1), "train_tokens_per_s": round(seqs.numel() / train_s),
            "eval_seconds": round(eval_s, 1), "seconds": round(time.time() - u0, 1),
            "eval": evals,
        }
        _write_json(out / "units" / f"{unit_name(target, arm, seed)}.json", result)
        brief = ", ".join(f"{k} {v['acc']:.3f}/{v['acc_norm']:.3f} ll {v['gold_loglik_mean']:.2f}"
                          for k, v in evals.items())
        log(f"  {unit_name(target, arm, seed)}: {brief} (train {train_s:.0f} s, eval {eval_s:.0f} s)")
    return write_results(cfg, corp, out)


# ------------------------------------------------------------------------------------------------ results

def _mean_std(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": len(v)}


def summarize(units: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per target, arm and evaluation set: mean/std/min/max over seeds of acc, acc_norm and the mean gold
    log-likelihood, and the difference to ``random`` (with whether the seed ranges are disjoint, which needs at least
    two seeds on each side)."""
    table: dict[str, Any] = {}
    for target in dict.fromkeys(u["target"] for u in units):
        rows: dict[str, Any] = {}
        arms = sorted({u["arm"] for u in units if u["target"] == target},
                      key=lambda a: (list(ARMS).index(a) if a in ARMS else len(ARMS), a))
        for arm in arms:
            rs = [u for u in units if u["target"] == target and u["arm"] == arm]
            row: dict[str, Any] = {"seeds": sorted(u["seed"] for u in rs)}
            for task in rs[0]["eval"]:
                row[task] = {m: _mean_std([u["eval"][task][m] for u in rs])
                             for m in ("acc", "acc_norm", "gold_loglik_mean")}
            total = {}
            for u in rs:
                for s, n in u["selected_tokens_by_source"].items():
                    total[s] = total.get(s, 0) + n / len(rs)
            denom = sum(total.values()) or 1
            row["selected_share_by_source"] = {s: round(n / denom, 3) for s, n in sorted(total.items())}
            rows[arm] = row
        base = rows.get("random")
        if base:
            for arm, row in rows.items():
                for task in (k for k in row if isinstance(row[k], dict) and "acc" in row[k]):
                    for m in ("acc", "acc_norm", "gold_loglik_mean"):
                        a, b = row[task][m], base[task][m]
                        a["vs_random"] = a["mean"] - b["mean"]
                        a["separated_from_random"] = bool(min(a["n"], b["n"]) > 1
                                                          and (a["min"] > b["max"] or a["max"] < b["min"]))
        table[target] = rows
    return table


def _cell(stat: dict[str, Any], arm: str, digits: int = 3) -> str:
    text = f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
    if "vs_random" in stat and arm != "random":
        text += f" ({stat['vs_random']:+.{digits}f}{'*' if stat.get('separated_from_random') else ''})"
    return text


def markdown_table(table: dict[str, Any]) -> str:
    """Per target: acc_norm and gold log-likelihood per item (the paper's kind of table), acc, and what each arm
    selected (share of selected tokens by source)."""
    lines = []
    for target, rows in table.items():
        tasks = [k for k in next(iter(rows.values())) if k not in ("seeds", "selected_share_by_source")]
        lines.append(f"### target: {target}\n")
        lines += ["| arm | seeds | " + " | ".join(f"{t} acc_norm | {t} gold LL/item" for t in tasks) + " |",
                  "|" + "---|" * (2 + 2 * len(tasks))]
        for arm, row in rows.items():
            cells = [c for t in tasks for c in (_cell(row[t]["acc_norm"], arm), _cell(row[t]["gold_loglik_mean"], arm,
                                                                                       2))]
            lines.append(f"| {arm} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
        lines += ["", "| arm | " + " | ".join(f"{t} acc" for t in tasks) + " |", "|" + "---|" * (1 + len(tasks))]
        for arm, row in rows.items():
            lines.append(f"| {arm} | " + " | ".join(_cell(row[t]["acc"], arm) for t in tasks) + " |")
        sources = sorted({s for row in rows.values() for s in row["selected_share_by_source"]})
        lines += ["", "| arm | " + " | ".join(sources) + " |", "|" + "---|" * (1 + len(sources))]
        for arm, row in rows.items():
            share = row["selected_share_by_source"]
            lines.append(f"| {arm} | " + " | ".join(f"{share.get(s, 0):.2f}" for s in sources) + " |")
        lines.append("")
    lines.append("Mean ± sample std over seeds; in brackets the difference to random (`*`: every seed of the arm is "
                 "on one side of every seed of random). Gold LL/item: log-likelihood (nats) lm-eval gave the gold "
                 "continuation, mean per item. Last table per target: share of the selected tokens by pool source "
                 "(mean over seeds).")
    return "\n".join(lines) + "\n"


def write_results(cfg: DownstreamConfig, corp: corpus_mod.Corpus, out: Path) -> dict[str, Any]:
    from ..provenance import machine_info

    units = [json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))]
    units = [u for u in units if u["config_key"] == cfg.key()]
    table = summarize(units) if units else {}
    results = {"config": cfg.to_dict(), "config_key": cfg.key(), "machine": machine_info(), "speed": SPEED,
               "corpus": {"pool_docs": len(corp.pool), "pool_words": int(corpus_mod.pool_lengths(corp).sum()),
                          "provenance": corp.provenance, "decontamination": corp.decontamination,
                          "targets": {k: len(v) for k, v in corp.targets.items()},
                          "evals": {k: len(v) for k, v in corp.evals.items()}},
               "evaluation": {"harness": "lm-eval 0.4.13 simple_evaluate, local task YAMLs, 0-shot",
                              "gold_loglik": "log-likelihood lm-eval gave the gold continuation, summed and "
                                             "per item (mean)"},
               "units_done": len(units), "units_planned": len(_order(cfg)), "table": table, "units": units}
    _write_json(out / "results.json", results)
    if units:
        atomic_write_text(out / "table.md", markdown_table(table))
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Downstream comparison of selection arms (issue 24).")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--work", type=Path, required=True, help="run folder (corpus, features, scores; not committed)")
    parser.add_argument("--out", type=Path, required=True, help="results folder (units, results.json)")
    args = parser.parse_args(argv)
    run(args.config, args.work, args.out, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
