"""Distillation study (issue 16): train fast text classifiers on NAG scores and compare them with exact NAG.

For each retrieval task of the harness (MMLU domains, GCIDE fields) a *training pool* of the same source is drawn
outside every document the harness uses (targets, pool and extra targets), cut to the harness's ``max_length`` and
featurized once (cached in resumable chunks, `features.featurize_texts`). Per class:

1. the exact profile of the harness (the class's targets contrasted with the harness pool as background, one
   neuron type) scores the training pool;
2. a distilled scorer (`nag_datasets.distill`) is trained on part of the training pool, with each model's default
   rule (linear: regression on the score; fastText: the top ``POSITIVE_SHARE`` labelled positive), and, for the
   record, the linear model as first shipped (word n-grams only, top-share labels: ``LINEAR_WORDS``);
3. agreement with the exact scores is measured on the held-out rest (precision at the r_f cut, Spearman), and the
   distilled scorer ranks the harness pool (mean AP next to exact NAG, the embedding and random).

>>> round(precision_at_cut(np.arange(10.0), np.arange(10.0), 0.2), 2)
1.0
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .tasks import GCIDE_FIELDS, RetrievalTask, cut_to_tokens, strip_gcide_label

__all__ = ["EXACT", "MODELS", "precision_at_cut", "run_study", "spearman", "speed", "study_rule", "training_pool"]

#: The exact profile distilled: the harness's contrastive default (shrinkage m=50, alpha=0.5; mean of the fwd_up and
#: att_o profiles' scores), the class's targets against the harness pool as background.
EXACT = {"weighting": "shrinkage", "params": {"m": 50.0, "alpha": 0.5}, "types": ("fwd_up", "att_o")}
#: The models compared (library defaults), the labelling rule and the held-out share of the training pool.
MODELS = ("linear", "fasttext")
#: The linear model as first shipped: word n-grams only, raw counts, logistic regression on top-share labels.
LINEAR_WORDS = {"char_max": 0, "sublinear_tf": False}
POSITIVE_SHARE = 0.2
HOLDOUT = 0.25
RANDOM_SEEDS = 10
CURVE_SHARES = (0.25, 0.5, 1.0)


def _order_key(seed: int, rid: str) -> str:
    return hashlib.sha256(f"distill:{seed}:{rid}".encode()).hexdigest()


def _mmlu_rows() -> list[tuple[str, str, str]]:
    from nag_datasets.demo_data import load_source

    ds = load_source("mmlu")
    return list(zip(ds["id"], ds["subject"], ds["text"]))


def _gcide_rows() -> list[tuple[str, str, str]]:
    from ..corpora import gcide_entries

    rows = []
    for i, entry in enumerate(gcide_entries()):
        if entry.field_label in GCIDE_FIELDS:
            rows.append((f"gcide/{i:06d}/{entry.headword}", entry.field_label,
                         strip_gcide_label(entry.text, entry.field_label).strip()))
    return rows


def training_pool(task: RetrievalTask, tokenizer: Any, max_length: int, n: int, *, seed: int = 0,
                  min_chars: int = 40) -> tuple[list[str], list[str]]:
    """``n`` documents of the task's source that the harness task does not use (no shared id and no shared text),
    cut to ``max_length`` tokens, in a seeded hash order; returns ``(texts, source labels)``.

    MMLU: questions of all 57 subjects; GCIDE: entries carrying one of ``GCIDE_FIELDS`` (label removed).
    """
    rows = _mmlu_rows() if task.name == "mmlu_domains" else _gcide_rows()
    used_ids, used_texts = set(task.ids), set(task.texts)
    seen: set[str] = set()
    out_texts: list[str] = []
    out_labels: list[str] = []
    for rid, label, text in sorted(rows, key=lambda r: _order_key(seed, r[0])):
        if rid in used_ids or len(text) < min_chars or text in seen:
            continue
        seen.add(text)
        cut = cut_to_tokens(text, tokenizer, max_length)
        if cut in used_texts:
            continue
        out_texts.append(cut)
        out_labels.append(label)
        if len(out_texts) == n:
            break
    return out_texts, out_labels


def precision_at_cut(predicted: np.ndarray, exact: np.ndarray, fraction: float) -> float:
    """Share of the predicted top ``fraction`` (by row count) that is also in the exact top ``fraction``."""
    k = max(1, round(fraction * len(exact)))
    top_p = set(np.argsort(-np.asarray(predicted), kind="stable")[:k].tolist())
    top_e = set(np.argsort(-np.asarray(exact), kind="stable")[:k].tolist())
    return len(top_p & top_e) / k


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties).

    >>> spearman([1, 2, 3], [10, 20, 30])
    1.0
    """
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)


def exact_scores(sigs: dict[str, np.ndarray], target_sigs: dict[str, np.ndarray], background: dict[str, np.ndarray],
                 specs: dict[str, Any]) -> np.ndarray:
    """The ``EXACT`` profile's scores of ``sigs`` (mean over the neuron types)."""
    from .baselines import contrastive_nag_scores

    return np.mean([contrastive_nag_scores(sigs[t], target_sigs[t], background[t], specs[t], EXACT["weighting"],
                                           **EXACT["params"]) for t in EXACT["types"]], axis=0)


def study_rule(kind: str) -> Any:
    """The model's default labelling rule, with the study's positive share for top-share labels."""
    from nag_datasets.distill import LabelRule
    from nag_datasets.distill.models import default_rule_mode

    return LabelRule(mode=default_rule_mode(kind), positive_share=POSITIVE_SHARE)


def _variants() -> dict[str, tuple[str, Any, dict[str, Any] | None]]:
    """Name -> (model kind, rule, params) of every distilled model of the study."""
    from nag_datasets.distill import LabelRule

    out = {kind: (kind, study_rule(kind), None) for kind in MODELS}
    out["linear_words"] = ("linear", LabelRule(positive_share=POSITIVE_SHARE), LINEAR_WORDS)
    return out


def _class_study(task: Any, feats: Any, cls: str, train_texts: list[str], train_feats: Any,
                 log: Callable[[str], None]) -> dict[str, Any]:
    from nag_datasets.distill import agreement, train_model

    from .baselines import contrastive_embedding_scores, embedding_scores, random_scores
    from .metrics import average_precision

    pool, targets = task.pool, task.targets(cls)
    labels = task.pool_labels(cls)
    tsig = {t: feats.signatures[t][targets] for t in EXACT["types"]}
    bg = {t: feats.signatures[t][pool] for t in EXACT["types"]}
    exact_pool = exact_scores({t: feats.signatures[t][pool] for t in EXACT["types"]}, tsig, bg, feats.specs)
    exact_train = exact_scores({t: train_feats.signatures[t] for t in EXACT["types"]}, tsig, bg, feats.specs)
    n = len(train_texts)
    perm = np.random.default_rng(0).permutation(n)
    hold, fit = np.sort(perm[: round(HOLDOUT * n)]), np.sort(perm[round(HOLDOUT * n):])
    emb = feats.embeddings["last"]
    out: dict[str, Any] = {
        "prevalence": float(labels.mean()),
        "ap": {"exact_nag": average_precision(exact_pool, labels),
               "random": float(np.mean([average_precision(random_scores(len(pool), s), labels)
                                        for s in range(RANDOM_SEEDS)])),
               "embedding_centroid": average_precision(embedding_scores(emb[pool], emb[targets]), labels),
               "contrastive_embedding_centred": average_precision(
                   contrastive_embedding_scores(emb[pool], emb[targets], emb[pool], centred=True), labels)},
        "agreement": {}, "train_seconds": {},
    }
    pool_texts = [task.texts[i] for i in pool]
    for name, (kind, rule, params) in _variants().items():
        t0 = time.perf_counter()
        model, _ = train_model([train_texts[i] for i in fit], exact_train[fit], rule=rule, model=kind,
                               params=params, seed=0)
        out["train_seconds"][name] = time.perf_counter() - t0
        out["agreement"][name] = agreement(model.predict([train_texts[i] for i in hold]), exact_train[hold])
        out["ap"][f"distilled_{name}"] = average_precision(model.predict(pool_texts), labels)
    # Learning curve of the default (linear) model: nested seeded subsets of the training rows, then all rows
    # (training + held-out: what a deployed scorer would train on), mean AP on the harness pool.
    curve = {}
    for share in CURVE_SHARES:
        rows = fit if share == 1.0 else np.sort(np.random.default_rng(1).permutation(fit)[: round(share * len(fit))])
        m, _ = train_model([train_texts[i] for i in rows], exact_train[rows], rule=study_rule("linear"), model="linear",
                           seed=0)
        curve[str(len(rows))] = average_precision(m.predict(pool_texts), labels)
    m, _ = train_model(train_texts, exact_train, rule=study_rule("linear"), model="linear", seed=0)
    curve[str(n)] = average_precision(m.predict(pool_texts), labels)
    out["linear_learning_curve_ap"] = curve
    log(f"  {cls:20s} AP exact {out['ap']['exact_nag']:.3f} random {out['ap']['random']:.3f} " + " ".join(
        f"{k} {out['ap'][f'distilled_{k}']:.3f} (p@0.2 {out['agreement'][k]['precision@0.2']:.2f})"
        for k in _variants()))
    return out


def _summarize(per_class: dict[str, Any]) -> dict[str, Any]:
    rows = list(per_class.values())
    ap = {k: float(np.mean([r["ap"][k] for r in rows])) for k in rows[0]["ap"]}
    summary: dict[str, Any] = {"mean_ap": ap, "agreement": {}, "gain_kept": {}}
    for kind in _variants():
        summary["agreement"][kind] = {m: float(np.mean([r["agreement"][kind][m] for r in rows]))
                                      for m in ("precision@0.05", "precision@0.2", "spearman")}
        summary["gain_kept"][kind] = (ap[f"distilled_{kind}"] - ap["random"]) / (ap["exact_nag"] - ap["random"])
    sizes = list(rows[0]["linear_learning_curve_ap"])
    curve = {k: float(np.mean([r["linear_learning_curve_ap"][k] for r in rows])) for k in sizes}
    summary["linear_learning_curve"] = {k: {"mean_ap": v, "gain_kept": (v - ap["random"]) / (ap["exact_nag"] - ap["random"])}
                                        for k, v in curve.items()}
    return summary


_SPEED_MODEL: Any = None


def _predict_repeatedly(job: tuple[Sequence[str], int]) -> int:
    texts, calls = job
    for _ in range(calls):
        _SPEED_MODEL.predict(list(texts))
    return calls * len(texts)


def _two_process_rate(model: Any, texts: Sequence[str], calls: int) -> float:
    """Documents/s of ``model.predict`` in two forked worker processes, each scoring ``calls`` times ``texts``."""
    import multiprocessing

    global _SPEED_MODEL
    _SPEED_MODEL = model
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(_predict_repeatedly, [(texts, 1)] * 2)  # workers started and warm
            t0 = time.perf_counter()
            done = sum(pool.map(_predict_repeatedly, [(texts, calls)] * 2))
            return done / (time.perf_counter() - t0)
    finally:
        _SPEED_MODEL = None


def speed(texts: Sequence[str], scorers: dict[str, Any], *, repeats: int = 3, min_seconds: float = 1.0,
          torch_threads: int = 2) -> dict[str, Any]:
    """Documents/s of the featurizer (bundled model, ``EXACT``'s neuron types, forward passes only, ``torch_threads``
    threads, a fresh cache) and of each distilled model's ``predict`` on the same ``texts``, in one process and in
    two (the machine's two cores, as the featurizer's two threads), interleaved, median of ``repeats``."""
    import tempfile

    from .features import featurize_texts

    feat_rates: list[float] = []
    model_rates: dict[str, list[float]] = {k: [] for k in scorers}
    two_rates: dict[str, list[float]] = {k: [] for k in scorers}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            fs = featurize_texts(texts, neuron_types=EXACT["types"], max_length=120, torch_threads=torch_threads,
                                 cache_dir=tmp)
        feat_rates.append(len(texts) / fs.seconds)
        for kind, model in scorers.items():
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < min_seconds:
                model.predict(list(texts))
                calls += 1
            model_rates[kind].append(calls * len(texts) / (time.perf_counter() - t0))
            two_rates[kind].append(_two_process_rate(model, texts, max(1, calls)))
    feat = float(np.median(feat_rates))
    return {"documents": len(texts), "featurizer_docs_per_s": feat, "featurizer_runs": feat_rates,
            "distilled_docs_per_s": {k: float(np.median(v)) for k, v in model_rates.items()},
            "distilled_runs": model_rates,
            "ratio": {k: float(np.median(v)) / feat for k, v in model_rates.items()},
            "distilled_docs_per_s_two_processes": {k: float(np.median(v)) for k, v in two_rates.items()},
            "distilled_runs_two_processes": two_rates,
            "ratio_two_processes": {k: float(np.median(v)) / feat for k, v in two_rates.items()}}


def pretrain_agreement(out_dir: Any, seeds: Sequence[int] = (0, 1, 2)) -> dict[str, Any]:
    """Agreement of distilled scorers with the pretraining arm's exact scores (``arms.DISTILL["exact_arm"]``) on the
    pool rows outside the arm's sample, per seed: the arm's model (the library's default linear model), fastText
    (top 25% labelled, about the arm's budget share) and the linear model first shipped (``LINEAR_WORDS``, top 25%)."""
    import json
    from pathlib import Path

    from nag_datasets.distill import LabelRule, agreement, precision_at_cut, train_model

    from ..experiments.arms import DISTILL, ArmContext, arm_scores

    out_dir = Path(out_dir)
    corpus = json.loads((out_dir / "corpus.json").read_text())
    ctx = ArmContext(corpus["pool_texts"], corpus["target_select"], out_dir / "features", max_length=96)
    exact = arm_scores(DISTILL["exact_arm"], ctx, 0)
    n = len(exact)
    top_share = LabelRule(positive_share=0.25)
    variants = {"linear": ("linear", None, None), "fasttext": ("fasttext", top_share, None),
                "linear_words": ("linear", top_share, LINEAR_WORDS)}
    result: dict[str, Any] = {"exact_arm": DISTILL["exact_arm"]}
    for name, (kind, rule, params) in variants.items():
        per_seed = []
        for seed in seeds:
            sample = np.sort(np.random.default_rng(seed).choice(n, size=round(DISTILL["sample"] * n), replace=False))
            rest = np.setdiff1d(np.arange(n), sample)
            model, _ = train_model([ctx.pool[i] for i in sample], exact[sample], rule=rule, model=kind,
                                   params=params, seed=seed)
            pred = model.predict([ctx.pool[i] for i in rest])
            a = agreement(pred, exact[rest])
            a["precision@0.235"] = precision_at_cut(pred, exact[rest], 0.235)
            per_seed.append(a)
        result[name] = per_seed
    return result


def run_study(tasks: Sequence[tuple[Any, Any, Any]], pools: dict[str, tuple[list[str], list[str], Any]], *,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every class of every task with a training pool: agreement, mean AP next to exact NAG, per model."""
    results: dict[str, Any] = {"exact": {**EXACT, "types": list(EXACT["types"])}, "models": list(_variants()),
                               "linear_words_params": LINEAR_WORDS, "positive_share": POSITIVE_SHARE, "holdout": HOLDOUT, "tasks": {}}
    for _tcfg, task, feats in tasks:
        if task.name not in pools:
            continue
        texts, sources, train_feats = pools[task.name]
        log(f"[{task.name}] {len(texts)} training-pool documents, {len(task.pool)} harness pool documents")
        per_class = {cls: _class_study(task, feats, cls, texts, train_feats, log) for cls in task.classes}
        results["tasks"][task.name] = {"training_pool": {"documents": len(texts),
                                                         "sources": dict(zip(*np.unique(sources, return_counts=True)))},
                                       "per_class": per_class, "summary": _summarize(per_class)}
        s = results["tasks"][task.name]["summary"]
        log(f"[{task.name}] mean AP " + ", ".join(f"{k} {v:.3f}" for k, v in s["mean_ap"].items()) +
            "; gain kept " + ", ".join(f"{k} {v:.2f}" for k, v in s["gain_kept"].items()) +
            "; linear by training rows " + ", ".join(f"{k}: {v['mean_ap']:.3f} ({v['gain_kept']:.2f})"
                                                     for k, v in s["linear_learning_curve"].items()))
    return results
