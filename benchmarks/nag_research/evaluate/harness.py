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
from .baselines import (
    contrastive_embedding_scores,
    contrastive_nag_scores,
    dsir_scores,
    embedding_scores,
    harness_subset,
    nag_scores,
    random_scores,
    tfidf_scores,
)
from .features import FeatureSet, featurize_texts
from .metrics import at_budget, average_precision, jaccard, roc_auc, selected_at_budget
from .tasks import RetrievalTask, TaskConfig, build_task

__all__ = ["CONFIGS", "CONTRASTIVE_GRID", "LAYER_SETS", "EvalConfig", "MethodSpec", "contrastive_name", "contrastive_types",
           "evaluate_task", "methods_for", "params_hash", "run_evaluation", "select_default"]

RESULTS_FORMAT = "nag_datasets.evaluate.results/2"

Params = tuple[tuple[str, float], ...]

#: The contrastive weightings compared (name, parameters); see :func:`.baselines.contrastive_weights`.
CONTRASTIVE_GRID: tuple[tuple[str, Params], ...] = (
    *(("log_odds", (("alpha", a),)) for a in (0.1, 0.25, 0.5, 1.0)),
    *(("shrinkage", (("m", m), ("alpha", a))) for a in (0.5, 1.0) for m in (10.0, 20.0, 50.0, 100.0, 200.0)),
    ("difference", ()),
    *(("lift", (("eps", e),)) for e in (0.01, 0.05)),
    ("tfidf", ()),
)

#: The contrastive default: (weighting, parameters, neuron types), chosen from the full run's evidence (see
#: ``benchmarks/results/evaluate/discussion.md``); every run reports where it ranks and what the selection rule
#: (:func:`select_default`) would pick, on all classes and on held-out halves.
CONTRASTIVE_DEFAULT: tuple[Any, ...] = ("shrinkage", (("m", 20.0), ("alpha", 0.5)), ("fwd_up", "att_o"), "last10")

#: Layer sets of the contrastive family: ``"all"`` recorded layers, or ``"lastN"``: the last N of them (what
#: featurizing with ``layers=range(L - N, L)`` records; per-layer NAGs do not depend on the other layers).
LAYER_SETS = ("all", "last15", "last10")


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
    #: contrastive family: weightings x neuron types (each type alone, plus these combinations of recorded types)
    contrastive_weightings: tuple[tuple[str, Params], ...] = CONTRASTIVE_GRID
    combined_types: tuple[tuple[str, ...], ...] = (("fwd_up", "att_o"),)
    contrastive_default: tuple[Any, ...] = CONTRASTIVE_DEFAULT
    #: layer sets of the contrastive family (see :data:`LAYER_SETS`)
    contrastive_layers: tuple[str, ...] = ("all", "last10")
    #: robustness study: targets per class (subsamples of each class's held-out targets; all of them are added) and
    #: background sample sizes (uniform samples of pool rows; the whole pool is added), ``robustness_seeds`` draws
    robustness_targets: tuple[int, ...] = (10, 20)
    background_sizes: tuple[int, ...] = (25, 50, 100, 200)
    robustness_seeds: int = 3
    #: the selection rule's small-background condition (the nearest studied size is used), and the criterion
    #: difference below which variants count as tied (ties go to the simplest variant, see :func:`select_default`)
    selection_background: int = 50
    selection_tie: float = 0.005

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
        sensitivity_seeds=2, robustness_targets=(5, 10), background_sizes=(25, 50, 100), robustness_seeds=2,
        selection_background=25,
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
        max_length=120, sensitivity_sizes=(10, 25, 50, 100), contrastive_layers=LAYER_SETS,
    ),
}


def params_hash(config: EvalConfig) -> str:
    """Short hash of every parameter of a configuration (what produced a results file)."""
    payload = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One compared method. ``family`` is nag (the paper's profile), contrastive (contrastive NAG profile),
    embedding, contrastive_embedding, tfidf, dsir or random."""

    name: str
    family: str
    options: tuple[tuple[str, Any], ...] = ()

    def opt(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    @property
    def uses_background(self) -> bool:
        return self.family in ("contrastive", "contrastive_embedding")


_SHORT = {"alpha": "a", "m": "m", "eps": "eps"}


def contrastive_name(weighting: str, params: Params, types: tuple[str, ...], layers: str = "all") -> str:
    """``"Contrastive NAG fwd_up+att_o shrinkage m=20 a=0.5"``: the method's name in results and reports (a layer
    set other than all layers is appended: ``"... a=0.5 last10"``)."""
    ps = " ".join(f"{_SHORT.get(k, k)}={v:g}" for k, v in params)
    return f"Contrastive NAG {'+'.join(types)} {weighting}" + (f" {ps}" if ps else "") + \
        ("" if layers == "all" else f" {layers}")


def layer_positions(layers: str, num_layers: int) -> str | list[int]:
    """Positions in a spec's layers of a layer set (:data:`LAYER_SETS`): ``"all"`` or the last N.

    >>> layer_positions("last10", 30)[:2], layer_positions("all", 30)
    ([20, 21], 'all')
    """
    if layers == "all":
        return "all"
    if not layers.startswith("last") or not layers[4:].isdigit() or not 0 < int(layers[4:]) <= num_layers:
        raise ValueError(f"layer set must be 'all' or 'lastN' with 0 < N <= {num_layers}, got {layers!r}")
    return list(range(num_layers - int(layers[4:]), num_layers))


def contrastive_types(config: EvalConfig) -> list[tuple[str, ...]]:
    """Neuron types of the contrastive family: each recorded type alone, then the configured combinations."""
    out = [(t,) for t in config.neuron_types]
    out += [tuple(c) for c in config.combined_types if all(t in config.neuron_types for t in c)]
    return out


def _contrastive_methods(config: EvalConfig) -> list[MethodSpec]:
    out = []
    for layers in config.contrastive_layers:
        for types in contrastive_types(config):
            for weighting, params in config.contrastive_weightings:
                out.append(MethodSpec(contrastive_name(weighting, params, types, layers), "contrastive",
                                      (("types", types), ("weighting", weighting), ("params", params),
                                       ("layers", layers))))
    return out


def default_name(config: EvalConfig) -> str:
    """Name of the configured contrastive default (weighting, parameters, neuron types[, layer set])."""
    return contrastive_name(*config.contrastive_default)


def methods_for(config: EvalConfig) -> list[MethodSpec]:
    """The methods of a run: the paper's NAG variants first (its default first of all), the contrastive family, then
    the baselines."""
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
    contrastive = _contrastive_methods(config)
    if default_name(config) not in {m.name for m in contrastive}:
        raise ValueError(f"the contrastive default {default_name(config)!r} is not in the configured grid")
    out += contrastive
    out += [
        MethodSpec("Embedding last-layer centroid", "embedding", (("layer", "last"), ("mode", "centroid"))),
        MethodSpec("Embedding last-layer max", "embedding", (("layer", "last"), ("mode", "max"))),
        MethodSpec("Embedding mid-layer centroid", "embedding", (("layer", "mid"), ("mode", "centroid"))),
        MethodSpec("Contrastive embedding last-layer (centroid - background mean)", "contrastive_embedding",
                   (("layer", "last"),)),
        MethodSpec("Contrastive embedding last-layer, centred cosine", "contrastive_embedding",
                   (("layer", "last"), ("centred", True))),
        MethodSpec("TF-IDF centroid", "tfidf", (("mode", "centroid"),)),
        MethodSpec("TF-IDF max", "tfidf", (("mode", "max"),)),
        MethodSpec("DSIR (data-selection 1.0.3)", "dsir"),
        MethodSpec("DSIR weight per n-gram", "dsir", (("per_ngram", True),)),
        MethodSpec(f"Random (mean of {config.random_seeds} seeds)", "random", (("seeds", config.random_seeds),)),
    ]
    return out


def _score(method: MethodSpec, task: RetrievalTask, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray,
           seed: int = 0, background: np.ndarray | None = None) -> np.ndarray:
    """Scores of the ``pool`` documents for the ``targets`` (positions in the task); contrastive methods compare
    with ``background`` (positions; default: the pool itself)."""
    bg = pool if background is None else background
    if method.family == "contrastive":
        per_type = []
        for t in method.opt("types"):
            sigs, spec = feats.signatures[t], feats.specs[t]
            layers = method.opt("layers", "all")
            if layers != "all":
                sigs, spec = harness_subset(sigs, spec, layers=layer_positions(layers, len(spec.layers)))
            per_type.append(contrastive_nag_scores(sigs[pool], sigs[targets], sigs[bg], spec,
                                                   method.opt("weighting"), **dict(method.opt("params"))))
        return np.mean(per_type, axis=0)
    if method.family == "contrastive_embedding":
        emb = feats.embeddings[method.opt("layer")]
        return contrastive_embedding_scores(emb[pool], emb[targets], emb[bg],
                                            centred=bool(method.opt("centred")))
    if method.family == "nag":
        t = method.opt("type")
        sigs, spec = harness_subset(feats.signatures[t], feats.specs[t], layers=method.opt("layers"),
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


def evaluate_task(task: RetrievalTask, tcfg: TaskConfig, feats: FeatureSet, config: EvalConfig,
                  methods: list[MethodSpec], log: Callable[[str], None]) -> dict[str, Any]:
    """Every method on every class of one task, then the stability and robustness studies."""
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
        if m.family != "contrastive" or m.name == default_name(config):
            log(f"  {m.name:40s} AP {per_method[m.name]['mean']['ap']:.3f}  "
                f"AUC {per_method[m.name]['mean']['auc']:.3f}")
    best = max((m for m in methods if m.family == "contrastive"), key=lambda m: per_method[m.name]["mean"]["ap"],
               default=None)
    if best is not None:
        log(f"  best contrastive: {best.name} AP {per_method[best.name]['mean']['ap']:.3f}")
    return {"per_method": per_method, "sensitivity": _sensitivity(task, tcfg, feats, config, methods, log),
            "robustness": _robustness(task, tcfg, feats, config, methods, log),
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
    chosen = [m for m in methods if m.name == default_name(config)]
    chosen += [m for m in methods if m.family in ("nag", "embedding", "contrastive_embedding", "tfidf", "dsir")
               and not m.opt("per_ngram")
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


def _in_robustness(m: MethodSpec, config: EvalConfig) -> bool:
    """Methods of the robustness study: every contrastive variant, the contrastive embedding, the last-layer
    embedding (centroid and max) and the paper's profile at the configured K over all layers."""
    if m.family in ("contrastive", "contrastive_embedding"):
        return True
    if m.family == "embedding":
        return m.opt("layer") == "last"
    return m.family == "nag" and m.opt("layers") == "all" and m.opt("k") == config.top_k


def _robustness(task: RetrievalTask, tcfg: TaskConfig, feats: FeatureSet, config: EvalConfig,
                methods: list[MethodSpec], log: Callable[[str], None]) -> dict[str, Any]:
    """Mean AP over classes (a) with fewer targets per class (random subsets of each class's held-out targets) and
    (b) with smaller backgrounds (uniform samples of the pool's rows, the same sample for every class), each over
    ``robustness_seeds`` draws shared by all methods (paired comparisons)."""
    pool = task.pool
    studied = [m for m in methods if _in_robustness(m, config)]
    seeds = config.robustness_seeds
    n_full = tcfg.n_target
    t_sizes = sorted({n for n in config.robustness_targets if n < n_full} | {n_full})
    b_sizes = sorted({b for b in config.background_sizes if b < len(pool)} | {len(pool)})
    labels = {c: task.pool_labels(c) for c in task.classes}
    full_targets = {c: task.targets(c) for c in task.classes}

    def draws(n: int, full: int) -> int:
        return seeds if n < full else 1

    target_sets = {(c, n, s): (full_targets[c] if n == n_full else np.sort(
        np.random.default_rng([config.seed, 31337, n, s, task.classes.index(c)]).choice(full_targets[c], n, False)))
        for c in task.classes for n in t_sizes for s in range(draws(n, n_full))}
    backgrounds = {(b, s): (pool if b == len(pool) else np.sort(
        np.random.default_rng([config.seed, 4242, b, s]).choice(pool, b, replace=False)))
        for b in b_sizes for s in range(draws(b, len(pool)))}

    def study(m: MethodSpec, sizes: list[int], full: int, run: Callable[[str, int, int], np.ndarray]) -> dict:
        per_class = {c: [] for c in task.classes}
        seed_means, seed_sd, seed_min = [], [], []
        for n in sizes:
            grid = np.array([[average_precision(run(c, n, s), labels[c]) for c in task.classes]
                             for s in range(draws(n, full))])  # (seeds, classes)
            for j, c in enumerate(task.classes):
                per_class[c].append(float(grid[:, j].mean()))
            by_seed = grid.mean(axis=1)
            seed_means.append(float(by_seed.mean()))
            seed_sd.append(float(by_seed.std()))
            seed_min.append(float(by_seed.min()))
        return {"ap_mean": seed_means, "ap_sd_draws": seed_sd, "ap_min_draw": seed_min, "per_class": per_class}

    out: dict[str, Any] = {"targets": {"sizes": t_sizes, "seeds": seeds, "methods": {}},
                           "background": {"sizes": b_sizes, "seeds": seeds, "methods": {}}}
    t0 = time.perf_counter()
    for m in studied:
        out["targets"]["methods"][m.name] = study(
            m, t_sizes, n_full, lambda c, n, s, m=m: _score(m, task, feats, pool, target_sets[(c, n, s)]))
        if m.uses_background:
            out["background"]["methods"][m.name] = study(
                m, b_sizes, len(pool),
                lambda c, b, s, m=m: _score(m, task, feats, pool, full_targets[c], background=backgrounds[(b, s)]))
    out["seconds"] = time.perf_counter() - t0
    d = default_name(config)
    if d in out["targets"]["methods"]:
        log(f"  robustness {d}: AP by targets/class " + " ".join(
            f"{n}:{v:.3f}" for n, v in zip(t_sizes, out["targets"]["methods"][d]["ap_mean"])) + "; by background "
            + " ".join(f"{b}:{v:.3f}" for b, v in zip(b_sizes, out["background"]["methods"][d]["ap_mean"])))
    return out


def _nearest(sizes: list[int], want: int) -> int:
    return min(sizes, key=lambda x: (abs(x - want), x))


def select_default(results: dict[str, Any], config: EvalConfig) -> dict[str, Any]:
    """The selection rule, applied to the contrastive variants of a finished run.

    Criterion of a variant on a set of classes: mean over the tasks of the mean over those classes of
    (AP with all targets + AP with the fewest targets per class + AP with the small background) / 3, every
    condition with the background = the pool unless it is the background condition. The best variant fixes the
    weighting, the neuron types and the layer set; among the variants of those within ``config.selection_tie``
    of the best criterion (ties), the rule picks the smallest parameters (for shrinkage: the weakest prior m), then
    the highest criterion. Reported on all classes and on two halves of each task's classes (even / odd positions):
    the variant picked on one half is scored on the other, which shows how much choosing and reporting on the same
    classes flatters the pick.
    """
    tasks = results["tasks"]
    names = [n for n in results["methods"] if next(iter(tasks.values()))["per_method"][n]["family"] == "contrastive"]

    def per_class_criterion(task: dict[str, Any], name: str) -> dict[str, float]:
        rob = task["robustness"]
        t_pc = rob["targets"]["methods"][name]["per_class"]
        b_sizes = rob["background"]["sizes"]
        bi = b_sizes.index(_nearest(b_sizes, config.selection_background))
        b_pc = rob["background"]["methods"][name]["per_class"]
        pc = task["per_method"][name]["per_class"]
        return {c: (pc[c]["ap"] + t_pc[c][0] + b_pc[c][bi]) / 3 for c in pc}

    crit = {tn: {n: per_class_criterion(t, n) for n in names} for tn, t in tasks.items()}
    halves = {"all": None, "half A": 0, "half B": 1}

    def value(name: str, half: str, task_name: str | None = None) -> float:
        vals = []
        for tn in ([task_name] if task_name else list(tasks)):
            classes = list(crit[tn][name])
            h = halves[half]
            chosen = classes if h is None else classes[h::2]
            vals.append(float(np.mean([crit[tn][name][c] for c in chosen])))
        return float(np.mean(vals))

    table = {n: {h: value(n, h) for h in halves} | {tn: value(n, "all", tn) for tn in tasks} for n in names}
    ranking = sorted(names, key=lambda n: -table[n]["all"])

    first = next(iter(tasks.values()))["per_method"]

    def kind(name: str) -> tuple[str, tuple[str, ...], str]:
        opts = first[name]["options"]
        return opts["weighting"], tuple(opts["types"]), opts.get("layers", "all")

    def best(half: str) -> str:
        return max(names, key=lambda n: table[n][half])

    def pick(half: str) -> str:
        top = best(half)
        tied = [n for n in names if kind(n) == kind(top) and table[n][half] >= table[top][half] - config.selection_tie]
        return min(tied, key=lambda n: (*(float(v) for _, v in first[n]["options"]["params"]), -table[n][half]))

    def rank(name: str, half: str) -> int:
        return sorted(names, key=lambda n: -table[n][half]).index(name) + 1

    holdout = {}
    for chosen_on, scored_on in (("half A", "half B"), ("half B", "half A")):
        p = pick(chosen_on)
        holdout[chosen_on] = {"pick": p, "on_other_half": table[p][scored_on], "rank_on_other_half": rank(p, scored_on),
                              "best_on_other_half": table[best(scored_on)][scored_on],
                              "best_on_other_half_name": best(scored_on), "pick_on_other_half": pick(scored_on)}
    d = default_name(config)
    b_sizes = next(iter(tasks.values()))["robustness"]["background"]["sizes"]
    t_sizes = next(iter(tasks.values()))["robustness"]["targets"]["sizes"]
    return {"criterion": (f"mean over tasks of the mean over classes of (AP, AP with {t_sizes[0]} targets per class, "
                          f"AP with a background of {_nearest(b_sizes, config.selection_background)} pool rows) / 3"),
            "halves": "classes at even (half A) and odd (half B) positions of each task's class list",
            "tie": config.selection_tie,
            "tied_with_best": [n for n in ranking if table[n]["all"] >= table[ranking[0]]["all"] - config.selection_tie],
            "table": table, "ranking": ranking, "best_all": ranking[0], "pick_all": pick("all"), "holdout": holdout,
            "default": d,
            "default_rank": ranking.index(d) + 1 if d in ranking else None,
            "halves_classes": {tn: {"half A": list(crit[tn][names[0]])[0::2],
                                    "half B": list(crit[tn][names[0]])[1::2]} for tn in tasks}}


def _task_features(config: EvalConfig, cache_dir: str | os.PathLike[str] | None, torch_threads: int | None,
                   say: Callable[[str], None]) -> Callable[[TaskConfig], tuple[RetrievalTask, FeatureSet]]:
    """Build a task from real text and featurize it (cached) on the bundled model."""
    from transformers import AutoTokenizer

    from nag_datasets.featurize.models import converted_bundled_dir

    tokenizer = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))

    def build(tcfg: TaskConfig) -> tuple[RetrievalTask, FeatureSet]:
        task = build_task(tcfg, tokenizer, config.max_length, seed=config.seed)
        say(f"[{tcfg.kind}] {len(task.ids)} documents; featurizing (max_length={config.max_length})")
        feats = featurize_texts(task.texts, neuron_types=config.neuron_types, top_k=config.top_k,
                                max_length=config.max_length, batch_size=config.batch_size,
                                torch_threads=torch_threads, cache_dir=cache_dir, progress=say)
        return task, feats

    return build


def run_evaluation(
    config: EvalConfig | str,
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    torch_threads: int | None = None,
    extra: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    features: Callable[[TaskConfig], tuple[RetrievalTask, FeatureSet]] | None = None,
    method_filter: Callable[[MethodSpec], bool] | None = None,
) -> dict[str, Any]:
    """Run every task and method of ``config``; write ``results.json``, ``report.md`` and plots to ``out_dir``.

    ``features`` (tests): a function giving each task and its features instead of building and featurizing them;
    ``method_filter`` (tests): keep only the methods it accepts.
    """

    from .report import write_report

    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown configuration {config!r}; choose from {sorted(CONFIGS)}")
        config = CONFIGS[config]
    say = log or (lambda _msg: None)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if features is None:
        features = _task_features(config, cache_dir, torch_threads, say)
    methods = [m for m in methods_for(config) if method_filter is None or method_filter(m)]
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT, "config": config.to_dict(), "params_hash": params_hash(config),
        "git_commit": git_commit(), "methods": [m.name for m in methods], "tasks": {}, "timing": {},
    }
    for tcfg in config.tasks:
        t0 = time.perf_counter()
        task, feats = features(tcfg)
        t1 = time.perf_counter()
        evaluated = evaluate_task(task, tcfg, feats, config, methods, say)
        evaluated["summary"] = task.summary()
        evaluated["spec"] = feats.specs[config.neuron_types[0]].to_dict()
        evaluated["featurized_tokens"] = int(feats.tokens.sum())
        results["tasks"][tcfg.kind] = evaluated
        results["timing"][tcfg.kind] = {"build_and_featurize_seconds": t1 - t0,
                                        "forward_seconds_this_run": feats.seconds,
                                        "chunks_from_cache": feats.cached_chunks,
                                        "chunks_computed": feats.computed_chunks,
                                        "scoring_and_metrics_seconds": time.perf_counter() - t1}
    results["contrastive_default"] = default_name(config)
    results["selection"] = select_default(results, config)
    say(f"selection rule picks {results['selection']['pick_all']}; configured default "
        f"{results['contrastive_default']} ranks {results['selection']['default_rank']}")
    results["timing"]["total_seconds"] = time.perf_counter() - start
    if extra:
        results.update(extra)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, default=float) + "\n")
    write_report(results, out_dir)
    say(f"wrote {out_dir / 'report.md'} ({results['timing']['total_seconds']:.0f} s)")
    return results
