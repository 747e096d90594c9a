"""The evaluation run: build the tasks, featurize once, score every method, compute metrics, write the report.

>>> CONFIGS["small"].tasks[0].kind
'mmlu_domains'
>>> len(params_hash(CONFIGS["full"]))
16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.storage.atomic import atomic_write_text

from ..provenance import git_commit
from .baselines import dsir_scores, embedding_scores, nag_scores, random_scores, slice_signatures, tfidf_scores
from .features import FeatureSet, featurize_texts
from .metrics import at_budget, average_precision, jaccard, roc_auc, selected_at_budget
from .tasks import RetrievalTask, TaskConfig, build_task

__all__ = ["CONFIGS", "EvalConfig", "MethodSpec", "methods_for", "params_hash", "run_evaluation"]

RESULTS_FORMAT = "nag_datasets.evaluate.results/1"  # a stored format id: kept when the code moved


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    name: str
    tasks: tuple[TaskConfig, ...]
    max_length: int = 120
    top_k: int = 20
    neuron_types: tuple[str, ...] = ("fwd_up", "fwd_down", "att_o")
    k_prefixes: tuple[int, ...] = (5, 10)
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2)
    random_seeds: int = 10
    sensitivity_sizes: tuple[int, ...] = (10, 25, 50, 100)
    sensitivity_seeds: int = 3
    sensitivity_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 16

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIGS: dict[str, EvalConfig] = {
    # End-to-end check on a quiet machine in well under two minutes: 2 tasks x 3 classes x (20 target + 50 pool).
    "small": EvalConfig(
        name="small",
        tasks=(
            TaskConfig("mmlu_domains", ("biology_medicine", "law_government", "economics_business"), 20, 50,
                       sensitivity_class="biology_medicine", n_extra=10),
            TaskConfig("gcide_fields", ("Bot.", "Chem.", "Med."), 20, 50, sensitivity_class="Bot.", n_extra=10),
        ),
        max_length=64, neuron_types=("fwd_up", "att_o"), random_seeds=3, sensitivity_sizes=(5, 10, 20),
        sensitivity_seeds=2,
    ),
    # The committed run: 2 tasks x 6 classes x (40 target + 50 pool), plus 160 extra targets for one class per task
    # (sensitivity up to 200 targets): ~1,400 documents of at most 120 tokens.
    "full": EvalConfig(
        name="full",
        tasks=(
            TaskConfig("mmlu_domains", ("mathematics", "physical_sciences", "biology_medicine", "law_government",
                                        "economics_business", "psychology_society"), 40, 50,
                       sensitivity_class="biology_medicine", n_extra=160),
            TaskConfig("gcide_fields", ("Zool.", "Bot.", "Chem.", "Med.", "Law", "Naut."), 40, 50,
                       sensitivity_class="Zool.", n_extra=160),
        ),
        max_length=120, sensitivity_sizes=(10, 25, 50, 100),
    ),
}


def params_hash(config: EvalConfig) -> str:
    """Short hash of every parameter of a configuration (what produced a results file)."""
    payload = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One compared method. ``family`` is nag, embedding, tfidf, dsir or random."""

    name: str
    family: str
    options: tuple[tuple[str, Any], ...] = ()

    def opt(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


def methods_for(config: EvalConfig) -> list[MethodSpec]:
    """The methods of a run: NAG variants first (the default first of all), then the baselines."""
    out = [MethodSpec(f"NAG fwd_up all-layers K={config.top_k}", "nag",
                      (("type", "fwd_up"), ("layers", "all"), ("k", config.top_k)))]
    for k in sorted(config.k_prefixes, reverse=True):
        out.append(MethodSpec(f"NAG fwd_up all-layers K={k}", "nag", (("type", "fwd_up"), ("layers", "all"), ("k", k))))
    out.append(MethodSpec(f"NAG fwd_up last-layer K={config.top_k}", "nag",
                          (("type", "fwd_up"), ("layers", "last"), ("k", config.top_k))))
    for t in config.neuron_types:
        if t != "fwd_up":
            out.append(MethodSpec(f"NAG {t} all-layers K={config.top_k}", "nag",
                                  (("type", t), ("layers", "all"), ("k", config.top_k))))
    out += [
        MethodSpec("Embedding last-layer centroid", "embedding", (("layer", "last"), ("mode", "centroid"))),
        MethodSpec("Embedding last-layer max", "embedding", (("layer", "last"), ("mode", "max"))),
        MethodSpec("Embedding mid-layer centroid", "embedding", (("layer", "mid"), ("mode", "centroid"))),
        MethodSpec("TF-IDF centroid", "tfidf", (("mode", "centroid"),)),
        MethodSpec("TF-IDF max", "tfidf", (("mode", "max"),)),
        MethodSpec("DSIR (data-selection 1.0.3)", "dsir"),
        MethodSpec("DSIR weight per n-gram", "dsir", (("per_ngram", True),)),
        MethodSpec(f"Random (mean of {config.random_seeds} seeds)", "random", (("seeds", config.random_seeds),)),
    ]
    return out


def _score(method: MethodSpec, task: RetrievalTask, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray,
           seed: int = 0) -> np.ndarray:
    if method.family == "nag":
        t = method.opt("type")
        sigs, spec = slice_signatures(feats.signatures[t], feats.specs[t], layers=method.opt("layers"),
                                      top_k=method.opt("k"))
        return nag_scores(sigs[pool], sigs[targets], spec)
    if method.family == "embedding":
        emb = feats.embeddings[method.opt("layer")]
        return embedding_scores(emb[pool], emb[targets], method.opt("mode"))
    texts = np.array(task.texts, dtype=object)
    if method.family == "tfidf":
        return tfidf_scores(list(texts[pool]), list(texts[targets]), method.opt("mode"))
    if method.family == "dsir":
        return dsir_scores(list(texts[pool]), list(texts[targets]), per_ngram=bool(method.opt("per_ngram")))
    if method.family == "random":
        return random_scores(len(pool), seed)
    raise ValueError(f"unknown method family {method.family!r}")


def _metrics(scores: np.ndarray, labels: np.ndarray, tokens: np.ndarray, fractions: tuple[float, ...]) -> dict:
    out: dict[str, Any] = {"ap": average_precision(scores, labels), "auc": roc_auc(scores, labels)}
    for f in fractions:
        b = at_budget(scores, labels, tokens, f)
        out[f"precision@{f:g}"] = b.precision
        out[f"recall@{f:g}"] = b.recall
        out[f"documents@{f:g}"] = b.documents
    return out


def _mean_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def _evaluate_task(task: RetrievalTask, tcfg: TaskConfig, feats: FeatureSet, config: EvalConfig,
                   methods: list[MethodSpec], log: Callable[[str], None]) -> dict[str, Any]:
    pool = task.pool
    tokens = feats.tokens[pool]
    per_method: dict[str, Any] = {}
    for m in methods:
        t0 = time.perf_counter()
        per_class = {}
        for cls in task.classes:
            labels = task.pool_labels(cls)
            targets = task.targets(cls)
            if m.family == "random":
                runs = [_metrics(_score(m, task, feats, pool, targets, seed=config.seed * 1000 + s), labels, tokens,
                                 config.fractions) for s in range(m.opt("seeds", 1))]
                per_class[cls] = _mean_metrics(runs)
            else:
                per_class[cls] = _metrics(_score(m, task, feats, pool, targets), labels, tokens, config.fractions)
        per_method[m.name] = {"family": m.family, "options": dict(m.options), "per_class": per_class,
                              "mean": _mean_metrics(list(per_class.values())),
                              "std_ap": float(np.std([r["ap"] for r in per_class.values()])),
                              "scoring_seconds": time.perf_counter() - t0}
        log(f"  {m.name:40s} AP {per_method[m.name]['mean']['ap']:.3f}  "
            f"AUC {per_method[m.name]['mean']['auc']:.3f}")
    return {"per_method": per_method, "sensitivity": _sensitivity(task, tcfg, feats, config, methods, log),
            "pool_documents": len(pool), "pool_tokens": int(tokens.sum()),
            "prevalence": {c: float(task.pool_labels(c).mean()) for c in task.classes}}


def _sensitivity(task: RetrievalTask, tcfg: TaskConfig, feats: FeatureSet, config: EvalConfig,
                 methods: list[MethodSpec], log: Callable[[str], None]) -> dict[str, Any] | None:
    """Top-r_f Jaccard (and AP) with n random targets against the selection made with all of them."""
    cls = tcfg.sensitivity_class
    if cls is None:
        return None
    pool = task.pool
    tokens = feats.tokens[pool]
    labels = task.pool_labels(cls)
    all_targets = task.targets(cls, with_extra=True)
    n_max = len(all_targets)
    sizes = [n for n in config.sensitivity_sizes if n < n_max] + [n_max]
    chosen = [m for m in methods if m.family in ("nag", "embedding", "tfidf", "dsir") and not m.opt("per_ngram")
              and (m.family != "nag" or m.opt("k") == config.top_k and m.opt("layers") == "all")
              and m.opt("mode", "centroid") == "centroid" and m.opt("layer", "last") == "last"]
    f = config.sensitivity_fraction
    out: dict[str, Any] = {"class": cls, "fraction": f, "max_targets": n_max, "sizes": sizes,
                           "seeds": config.sensitivity_seeds, "methods": {}}
    for m in chosen:
        reference = selected_at_budget(_score(m, task, feats, pool, all_targets), tokens, f)
        rows = []
        for n in sizes:
            jac, aps = [], []
            for s in range(config.sensitivity_seeds if n < n_max else 1):
                rng = np.random.default_rng(config.seed * 7919 + s * 104729 + n)
                subset = all_targets if n == n_max else np.sort(rng.choice(all_targets, size=n, replace=False))
                scores = _score(m, task, feats, pool, subset)
                jac.append(jaccard(selected_at_budget(scores, tokens, f), reference))
                aps.append(average_precision(scores, labels))
            rows.append({"targets": n, "jaccard_mean": float(np.mean(jac)), "jaccard_min": float(np.min(jac)),
                         "ap_mean": float(np.mean(aps))})
        out["methods"][m.name] = rows
        log(f"  sensitivity {m.name:32s} " + " ".join(f"n={r['targets']}:{r['jaccard_mean']:.2f}" for r in rows))
    return out


def run_evaluation(
    config: EvalConfig | str,
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    torch_threads: int | None = None,
    extra: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run every task and method of ``config``; write ``results.json``, ``report.md`` and plots to ``out_dir``."""
    from transformers import AutoTokenizer

    from nag_datasets.featurize.models import converted_bundled_dir

    from .report import write_report

    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown configuration {config!r}; choose from {sorted(CONFIGS)}")
        config = CONFIGS[config]
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))
    methods = methods_for(config)
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT, "config": config.to_dict(), "params_hash": params_hash(config),
        "git_commit": git_commit(), "methods": [m.name for m in methods], "tasks": {}, "timing": {},
    }
    for tcfg in config.tasks:
        t0 = time.perf_counter()
        task = build_task(tcfg, tokenizer, config.max_length, seed=config.seed)
        say(f"[{tcfg.kind}] {len(task.ids)} documents; featurizing (max_length={config.max_length})")
        feats = featurize_texts(task.texts, neuron_types=config.neuron_types, top_k=config.top_k,
                                max_length=config.max_length, batch_size=config.batch_size,
                                torch_threads=torch_threads, cache_dir=cache_dir, progress=say)
        t1 = time.perf_counter()
        evaluated = _evaluate_task(task, tcfg, feats, config, methods, say)
        evaluated["summary"] = task.summary()
        evaluated["spec"] = feats.specs[config.neuron_types[0]].to_dict()
        evaluated["featurized_tokens"] = int(feats.tokens.sum())
        results["tasks"][tcfg.kind] = evaluated
        results["timing"][tcfg.kind] = {"build_and_featurize_seconds": t1 - t0,
                                        "forward_seconds_this_run": feats.seconds,
                                        "chunks_from_cache": feats.cached_chunks,
                                        "chunks_computed": feats.computed_chunks,
                                        "scoring_and_metrics_seconds": time.perf_counter() - t1}
    results["timing"]["total_seconds"] = time.perf_counter() - start
    if extra:
        results.update(extra)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, default=float) + "\n")
    write_report(results, out_dir)
    say(f"wrote {out_dir / 'report.md'} ({results['timing']['total_seconds']:.0f} s)")
    return results
