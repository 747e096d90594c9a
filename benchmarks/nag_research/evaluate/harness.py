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
from .fusion import (
    LearnedScorer,
    centred_embedding_scores,
    embedding_block,
    fit_learned,
    multi_hot,
    rrf_scores,
    zsum_scores,
)
from .metrics import at_budget, average_precision, jaccard, roc_auc, selected_at_budget
from .tasks import RetrievalTask, TaskConfig, build_task

__all__ = ["CONFIGS", "CONTRASTIVE_GRID", "FUSION_COMPONENTS", "LAYER_SETS", "LEARNED", "EvalConfig", "MethodSpec",
           "contrastive_name", "contrastive_types", "evaluate_task", "methods_for", "params_hash", "run_evaluation",
           "select_default"]

RESULTS_FORMAT = "nag_datasets.evaluate.results/3"

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

#: NAG components of the fusions (weighting, parameters, neuron types, layer set): single-type ones are shippable,
#: the two-type contrastive default is a reference (see :attr:`MethodSpec.shippable`).
FUSION_COMPONENTS: tuple[tuple[Any, ...], ...] = (
    ("shrinkage", (("m", 50.0), ("alpha", 0.5)), ("att_o",), "last10"),
    ("shrinkage", (("m", 20.0), ("alpha", 0.5)), ("att_o",), "last10"),
    ("lift", (("eps", 0.05),), ("att_o",), "last10"),
    ("shrinkage", (("m", 50.0), ("alpha", 0.5)), ("fwd_down",), "last10"),
    CONTRASTIVE_DEFAULT,
)

#: Learned variants: (features, neuron type, layer set, embedding layer); features ``"nag"`` (neuron indicators of
#: the type's signatures on the layer set), ``"emb"`` (the centred embedding) or ``"both"``.
LEARNED: tuple[tuple[str, str, str, str], ...] = (
    ("nag", "att_o", "last10", "last"),
    ("emb", "att_o", "last10", "last"),
    ("both", "att_o", "last10", "last"),
)

#: Families the selection rule compares, and their complexity (ties go to the lowest level first): one signal,
#: a fixed-formula fusion of two, a learned model, a fixed-formula fusion of NAG with a learned model.
SELECTABLE = {"contrastive": 1, "centred_embedding": 1, "fusion_zsum": 2, "fusion_rrf": 2, "learned": 3,
              "fusion_zsum_learned": 4}
#: Families with many variants (logged and tabulated by their best).
GRIDS = ("contrastive", "fusion_zsum", "fusion_rrf", "fusion_zsum_learned")


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
    #: the centred contrastive embedding family (float16-rounded embeddings): embedding layers
    embedding_layers: tuple[str, ...] = ("last", "mid")
    #: fusions of a contrastive NAG component (:data:`FUSION_COMPONENTS`; components of unrecorded types are skipped)
    #: with the centred embedding of each of ``fusion_embeddings``: z-scored sums with the weights on NAG
    #: ``zsum_weights``; reciprocal-rank fusions with ``rrf_kappas`` x ``rrf_weights``
    fusion_components: tuple[tuple[Any, ...], ...] = FUSION_COMPONENTS
    fusion_embeddings: tuple[str, ...] = ("last", "mid")
    zsum_weights: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    rrf_kappas: tuple[float, ...] = (0.02, 0.1, 0.5)
    rrf_weights: tuple[float, ...] = (0.3, 0.5, 0.7)
    #: z-sums of a NAG component with the learned model on the embedding (family fusion_zsum_learned): the
    #: embedding layers and the weights on NAG
    zsum_learned_embeddings: tuple[str, ...] = ("last",)
    zsum_learned_weights: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
    #: learned variants (:data:`LEARNED`), the regularisation grid and the cross-validation folds
    learned: tuple[tuple[str, str, str, str], ...] = LEARNED
    learned_cs: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)
    learned_folds: int = 3

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CONFIGS: dict[str, EvalConfig] = {
    # End-to-end check on a quiet machine in about a minute: 2 tasks x 3 classes x (15 target + 40 pool), plus 10
    # extra targets for one class per task; documents cut to 48 tokens (~16k tokens through the model).
    "small": EvalConfig(
        name="small",
        tasks=(
            TaskConfig("mmlu_domains", ("biology_medicine", "law_government", "economics_business"), 15, 40,
                       sensitivity_class="biology_medicine", n_extra=10),
            TaskConfig("gcide_fields", ("Bot.", "Chem.", "Med."), 15, 40, sensitivity_class="Bot.", n_extra=10),
        ),
        max_length=48, neuron_types=("fwd_up", "att_o"), random_seeds=3, sensitivity_sizes=(5, 10, 20),
        sensitivity_seeds=2, robustness_targets=(5, 10), background_sizes=(25, 50), robustness_seeds=2,
        selection_background=25, embedding_layers=("last",), fusion_components=FUSION_COMPONENTS[:1],
        fusion_embeddings=("last",), zsum_weights=(0.3, 0.5), rrf_kappas=(0.1,), rrf_weights=(0.5,),
        learned=(("both", "att_o", "last10", "last"),), learned_cs=(0.1, 10.0),
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
    centred_embedding (the centred contrastive embedding on float16 embeddings), fusion_zsum / fusion_rrf (a
    contrastive NAG component fused with the centred embedding), learned (target-vs-background logistic
    regression), embedding, contrastive_embedding, tfidf, dsir or random."""

    name: str
    family: str
    options: tuple[tuple[str, Any], ...] = ()

    def opt(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    @property
    def uses_background(self) -> bool:
        return self.family in ("contrastive", "contrastive_embedding", *SELECTABLE)

    @property
    def shippable(self) -> bool:
        """Whether a library can reproduce it per row from one signature column, one float16 embedding and
        statistics of the target and background rows: every selectable family with at most one neuron type."""
        return is_shippable(self.family, dict(self.options))


def is_shippable(family: str, options: dict[str, Any]) -> bool:
    """:attr:`MethodSpec.shippable` from a family and its options (as stored in results)."""
    return family in SELECTABLE and len(options.get("types", ())) <= 1


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


def centred_name(layer: str) -> str:
    """``"Centred contrastive embedding last-layer (float16)"``."""
    return f"Centred contrastive embedding {layer}-layer (float16)"


def _component_label(weighting: str, params: Params, types: tuple[str, ...], layers: str) -> str:
    return contrastive_name(weighting, params, types, layers).removeprefix("Contrastive NAG ")


def fusion_name(kind: str, component: tuple[Any, ...], embedding: str, **params: float) -> str:
    """``"Z-sum w=0.3: att_o shrinkage m=50 a=0.5 last10 + centred emb last"`` (``kind`` zsum or rrf;
    ``w`` is the weight on NAG)."""
    ps = " ".join(f"{k}={v:g}" for k, v in params.items())
    return f"{'Z-sum' if kind == 'zsum' else 'RRF'} {ps}: {_component_label(*component)} + centred emb {embedding}"


def learned_name(features: str, ntype: str, layers: str, embedding: str) -> str:
    """``"Learned LR: att_o last10 indicators + centred emb last"`` (the parts ``features`` uses)."""
    parts = ([f"{ntype} {layers} indicators"] if features in ("nag", "both") else []) + \
        ([f"centred emb {embedding}"] if features in ("emb", "both") else [])
    return "Learned LR: " + " + ".join(parts)


def _fusion_methods(config: EvalConfig) -> list[MethodSpec]:
    out = []
    for layer in config.embedding_layers:
        out.append(MethodSpec(centred_name(layer), "centred_embedding", (("layer", layer),)))
    components = [c for c in config.fusion_components if all(t in config.neuron_types for t in c[2])]
    for weighting, params, types, layers in components:
        base = (("types", tuple(types)), ("weighting", weighting), ("params", params), ("layers", layers))
        comp = (weighting, params, tuple(types), layers)
        for emb in config.fusion_embeddings:
            for w in config.zsum_weights:
                out.append(MethodSpec(fusion_name("zsum", comp, emb, w=w), "fusion_zsum",
                                      (*base, ("embedding", emb), ("w", w))))
            for kappa in config.rrf_kappas:
                for w in config.rrf_weights:
                    out.append(MethodSpec(fusion_name("rrf", comp, emb, k=kappa, w=w), "fusion_rrf",
                                          (*base, ("embedding", emb), ("kappa", kappa), ("w", w))))
        for emb in config.zsum_learned_embeddings:
            for w in config.zsum_learned_weights:
                out.append(MethodSpec(fusion_name("zsum", comp, emb, w=w).replace("centred emb", "learned emb"),
                                      "fusion_zsum_learned",
                                      (*base, ("embedding", emb), ("w", w), ("Cs", config.learned_cs),
                                       ("folds", config.learned_folds))))
    for features, ntype, layers, emb in config.learned:
        if ntype in config.neuron_types:
            out.append(MethodSpec(learned_name(features, ntype, layers, emb), "learned",
                                  (("features", features), ("types", (ntype,)), ("layers", layers),
                                   ("embedding", emb), ("Cs", config.learned_cs), ("folds", config.learned_folds))))
    return out


def methods_for(config: EvalConfig) -> list[MethodSpec]:
    """The methods of a run: the paper's NAG variants first (its default first of all), the contrastive family, the
    centred embedding, the fusions and the learned variants, then the baselines."""
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
    out += _fusion_methods(config)
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
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValueError("method names must be unique")
    return out


#: Component scores of the fusions (NAG and embedding signals on the pool and background rows), shared by every
#: fusion of the same component within a task; keyed by the component and the exact target / background / pool rows.
_COMPONENTS: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
_COMPONENTS_MAX = 8192


def _cached(key: tuple[Any, ...], compute: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    hit = _COMPONENTS.get(key)
    if hit is None:
        if len(_COMPONENTS) >= _COMPONENTS_MAX:
            _COMPONENTS.clear()
        hit = _COMPONENTS[key] = compute()
    return hit


def _rows_key(feats: FeatureSet, pool: np.ndarray, targets: np.ndarray, bg: np.ndarray) -> tuple[Any, ...]:
    return (id(feats), pool.tobytes(), targets.tobytes(), bg.tobytes())


def _nag_component(method: MethodSpec, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray,
                   bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contrastive NAG scores (the mean over the method's neuron types) of the pool rows and of the background rows,
    from one profile of the targets against the background."""
    types, layers = tuple(method.opt("types")), method.opt("layers", "all")
    weighting, params = method.opt("weighting"), tuple(method.opt("params"))

    same = bg is pool or np.array_equal(bg, pool)

    def compute() -> tuple[np.ndarray, np.ndarray]:
        rows = pool if same else np.concatenate([pool, bg])
        per_type = []
        for t in types:
            sigs, spec = feats.signatures[t], feats.specs[t]
            if layers != "all":
                sigs, spec = harness_subset(sigs, spec, layers=layer_positions(layers, len(spec.layers)))
            per_type.append(contrastive_nag_scores(sigs[rows], sigs[targets], sigs[bg], spec, weighting,
                                                   **dict(params)))
        s = np.mean(per_type, axis=0)
        return (s, s) if same else (s[: len(pool)], s[len(pool):])

    return _cached(("nag", types, layers, weighting, params, *_rows_key(feats, pool, targets, bg)), compute)


def _emb_component(layer: str, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray,
                   bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centred contrastive embedding scores (float16 embeddings) of the pool rows and of the background rows."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        emb = feats.embeddings[layer]
        s = centred_embedding_scores(emb[np.concatenate([pool, bg])], emb[targets], emb[bg])
        return s[: len(pool)], s[len(pool):]

    return _cached(("emb", layer, *_rows_key(feats, pool, targets, bg)), compute)


def _learned_emb_component(method: MethodSpec, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray,
                           bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the pool rows and of the background rows by the learned model on the centred embedding."""
    layer = method.opt("embedding")
    Cs, folds = tuple(method.opt("Cs", (0.1, 1.0, 10.0, 100.0))), int(method.opt("folds", 3))
    lm = MethodSpec("", "learned", (("features", "emb"), ("embedding", layer)))

    def compute() -> tuple[np.ndarray, np.ndarray]:
        s = learned_scores(lm, feats, np.concatenate([pool, bg]), targets, bg, Cs=Cs, folds=folds)
        return s[: len(pool)], s[len(pool):]

    return _cached(("learned emb", layer, Cs, folds, *_rows_key(feats, pool, targets, bg)), compute)


def _learned_features(method: MethodSpec, feats: FeatureSet, rows: np.ndarray, bg: np.ndarray) -> Any:
    """The learned variant's feature matrix of ``rows``: neuron indicators, the centred embedding, or both side by
    side (each block has unit-norm rows)."""
    from scipy import sparse

    features = method.opt("features")
    blocks = []
    if features in ("nag", "both"):
        t, layers = method.opt("types")[0], method.opt("layers", "all")
        sigs, spec = feats.signatures[t][rows], feats.specs[t]
        if layers != "all":
            sigs, spec = harness_subset(sigs, spec, layers=layer_positions(layers, len(spec.layers)))
        blocks.append(multi_hot(sigs, spec.neurons_per_layer))
    if features in ("emb", "both"):
        emb = feats.embeddings[method.opt("embedding")]
        block = embedding_block(emb[rows], emb[bg])
        blocks.append(sparse.csr_matrix(block) if blocks else block)
    if not blocks:
        raise ValueError(f"learned features must be 'nag', 'emb' or 'both', got {features!r}")
    return sparse.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]


def learned_scores(method: MethodSpec, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray, bg: np.ndarray,
                   *, Cs: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0), folds: int = 3,
                   fitted: list[LearnedScorer] | None = None) -> np.ndarray:
    """Scores of the pool rows by a logistic regression fitted on the target rows (positives) against the background
    rows (negatives) only: the pool's labels are never seen. Pool rows that are background rows are scored by the
    model they trained (as a library profile scores the rows of its background sample). The fitted model is
    appended to ``fitted`` when given."""
    model = fit_learned(_learned_features(method, feats, targets, bg), _learned_features(method, feats, bg, bg),
                        Cs=Cs, folds=folds)
    if fitted is not None:
        fitted.append(model)
    return model.score(_learned_features(method, feats, pool, bg))


def _score(method: MethodSpec, task: RetrievalTask, feats: FeatureSet, pool: np.ndarray, targets: np.ndarray,
           seed: int = 0, background: np.ndarray | None = None,
           fitted: list[LearnedScorer] | None = None) -> np.ndarray:
    """Scores of the ``pool`` documents for the ``targets`` (positions in the task); contrastive methods compare
    with ``background`` (positions; default: the pool itself)."""
    bg = pool if background is None else background
    if method.family == "contrastive":
        return _nag_component(method, feats, pool, targets, bg)[0]
    if method.family == "centred_embedding":
        return _emb_component(method.opt("layer"), feats, pool, targets, bg)[0]
    if method.family in ("fusion_zsum", "fusion_rrf", "fusion_zsum_learned"):
        nag, nag_bg = _nag_component(method, feats, pool, targets, bg)
        if method.family == "fusion_zsum_learned":
            emb, emb_bg = _learned_emb_component(method, feats, pool, targets, bg)
        else:
            emb, emb_bg = _emb_component(method.opt("embedding"), feats, pool, targets, bg)
        if method.family in ("fusion_zsum", "fusion_zsum_learned"):
            return zsum_scores(nag, nag_bg, emb, emb_bg, float(method.opt("w")))
        return rrf_scores(nag, nag_bg, emb, emb_bg, float(method.opt("kappa")), float(method.opt("w")))
    if method.family == "learned":
        return learned_scores(method, feats, pool, targets, bg, Cs=tuple(method.opt("Cs", (0.1, 1.0, 10.0, 100.0))),
                              folds=int(method.opt("folds", 3)), fitted=fitted)
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
    _COMPONENTS.clear()
    for m in methods:
        t0 = time.perf_counter()
        per_class = {}
        fitted: list[LearnedScorer] = []
        for cls in task.classes:
            labels = task.pool_labels(cls)
            targets = task.targets(cls)
            if m.family == "random":
                runs = [_metrics(_score(m, task, feats, pool, targets, seed=config.seed * 1000 + s), labels, tokens,
                                 config.fractions) for s in range(m.opt("seeds", 1))]
                per_class[cls] = _mean_metrics(runs)
            else:
                per_class[cls] = _metrics(_score(m, task, feats, pool, targets, fitted=fitted), labels, tokens,
                                          config.fractions)
        per_method[m.name] = {"family": m.family, "options": dict(m.options), "per_class": per_class,
                              "mean": _mean_metrics(list(per_class.values())),
                              "std_ap": float(np.std([r["ap"] for r in per_class.values()])),
                              "scoring_seconds": time.perf_counter() - t0}
        if fitted:
            per_method[m.name]["chosen_C"] = [f.C for f in fitted]
        if m.family not in GRIDS or m.name == default_name(config):
            log(f"  {m.name:40s} AP {per_method[m.name]['mean']['ap']:.3f}  "
                f"AUC {per_method[m.name]['mean']['auc']:.3f}  ({per_method[m.name]['scoring_seconds']:.1f} s)")
    for fam in GRIDS:
        best = max((m for m in methods if m.family == fam), key=lambda m: per_method[m.name]["mean"]["ap"],
                   default=None)
        if best is not None:
            log(f"  best {fam}: {best.name} AP {per_method[best.name]['mean']['ap']:.3f}")
    return {"per_method": per_method, "sensitivity": _sensitivity(task, tcfg, feats, config, methods, log),
            "robustness": _robustness(task, tcfg, feats, config, methods, log),
            "pool_documents": len(pool), "pool_tokens": int(tokens.sum()),
            "prevalence": {c: float(task.pool_labels(c).mean()) for c in task.classes}}


def _sensitivity(task: RetrievalTask, tcfg: TaskConfig, feats: FeatureSet, config: EvalConfig,
                 methods: list[MethodSpec], log: Callable[[str], None],
                 extra: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Top-r_f Jaccard (and AP) with n random targets against the selection made with all of them (the configured
    contrastive default, the ``extra`` methods named, and the baselines)."""
    cls = tcfg.sensitivity_class
    if cls is None:
        return None
    pool = task.pool
    tokens = feats.tokens[pool]
    labels = task.pool_labels(cls)
    all_targets = task.targets(cls, with_extra=True)
    n_max = len(all_targets)
    sizes = [n for n in config.sensitivity_sizes if n < n_max] + [n_max]
    chosen = [m for m in methods if m.name == default_name(config) or m.name in extra]
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
    """Methods of the robustness study: every variant the selection rule compares (contrastive, centred embedding,
    fusions, learned), the contrastive embeddings, the last-layer embedding (centroid and max) and the paper's
    profile at the configured K over all layers."""
    if m.family in ("contrastive_embedding", *SELECTABLE):
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


def _freeze(x: Any) -> Any:
    """Options as stored in results (lists after JSON) turned back into hashable tuples."""
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


def method_kind(family: str, options: dict[str, Any]) -> tuple[Any, ...]:
    """What the best variant fixes in the selection rule: everything but the tuned numbers (contrastive: weighting,
    types, layers; fusions: the NAG component and the embedding layer; the others: all their options)."""
    tuned = {"contrastive": ("params",), "fusion_zsum": ("w",), "fusion_zsum_learned": ("w",),
             "fusion_rrf": ("w", "kappa")}.get(family, ())
    return (family, *((k, _freeze(v)) for k, v in sorted(options.items()) if k not in tuned))


def method_simplicity(family: str, options: dict[str, Any]) -> tuple[float, ...]:
    """Order among tied variants of one kind, smallest first: contrastive: the parameters (for shrinkage the weakest
    prior m); z-sum: distance of the weight from equal weights; RRF: that distance, then kappa."""
    if family == "contrastive":
        return tuple(float(v) for _, v in options["params"])
    if family in ("fusion_zsum", "fusion_zsum_learned"):
        return (abs(float(options["w"]) - 0.5),)
    if family == "fusion_rrf":
        return (abs(float(options["w"]) - 0.5), float(options["kappa"]))
    return ()


def select_default(results: dict[str, Any], config: EvalConfig) -> dict[str, Any]:
    """The selection rule, applied to the selectable variants of a finished run (contrastive NAG, the centred
    embedding, the fusions, the learned variants); it picks among the *shippable* ones only.

    Criterion of a variant on a set of classes: mean over the tasks of the mean over those classes of
    (AP with all targets + AP with the fewest targets per class + AP with the small background) / 3, every
    condition with the background = the pool unless it is the background condition. Among the shippable variants
    within ``config.selection_tie`` of the best shippable criterion (ties), the rule keeps the simplest family level
    (one signal < a fixed-formula fusion < a learned model; :data:`SELECTABLE`); the best of those fixes the kind
    (:func:`method_kind`); among that kind's tied variants it takes the simplest parameters
    (:func:`method_simplicity`), then the highest criterion. Reported on all classes and on two halves of each
    task's classes (even / odd positions): the variant picked on one half is scored on the other, which shows how
    much choosing and reporting on the same classes flatters the pick. Before all that, issue 23's requirement is the
    first filter: only shippable variants that are not below the strongest method without NAG signatures in any
    cell (task x all targets / fewest targets) are considered, when there is one.
    """
    tasks = results["tasks"]
    first = next(iter(tasks.values()))["per_method"]
    names = [n for n in results["methods"] if first[n]["family"] in SELECTABLE]
    shippable = [n for n in names if is_shippable(first[n]["family"], first[n]["options"])]
    if not shippable:
        raise ValueError("no shippable variant to select from")

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

    def fam(name: str) -> str:
        return first[name]["family"]

    def kind(name: str) -> tuple[Any, ...]:
        return method_kind(fam(name), first[name]["options"])

    # Issue 23's requirement as the rule's first filter: the shipped default ranks at least as well as the strongest
    # method without NAG signatures in every cell (each task, all targets and the fewest targets per class, on the
    # classes the choice is made on). Without an eligible variant the rule falls back to every shippable one.
    from .report import is_non_nag

    non_nag = [n for n in results["methods"] if is_non_nag(results, n)]

    def cells(name: str, half: str) -> list[float]:
        out = []
        for tn, task in tasks.items():
            classes = list(crit[tn][names[0]])
            h = halves[half]
            chosen = classes if h is None else classes[h::2]
            few = task["robustness"]["targets"]["methods"].get(name)
            pc = task["per_method"][name]["per_class"]
            out.append(float(np.mean([pc[c]["ap"] for c in chosen])))
            if few is not None:
                out.append(float(np.mean([few["per_class"][c][0] for c in chosen])))
            else:
                out.append(out[-1])  # no targets study (a method that ignores the targets' count): the same AP
        return out

    def eligible(half: str) -> list[str]:
        bars = np.max([cells(n, half) for n in non_nag], axis=0) if non_nag else None
        ok = [n for n in shippable if bars is None or all(a >= b for a, b in zip(cells(n, half), bars))]
        return ok or shippable

    def best(half: str, among: list[str] | None = None) -> str:
        return max(among or shippable, key=lambda n: table[n][half])

    def pick(half: str) -> str:
        among = eligible(half)
        top = best(half, among)
        tied = [n for n in among if table[n][half] >= table[top][half] - config.selection_tie]
        level = min(SELECTABLE[fam(n)] for n in tied)
        tied = [n for n in tied if SELECTABLE[fam(n)] == level]
        lead = max(tied, key=lambda n: table[n][half])
        same = [n for n in tied if kind(n) == kind(lead)]
        return min(same, key=lambda n: (*method_simplicity(fam(n), first[n]["options"]), -table[n][half]))

    def rank(name: str, half: str) -> int:
        return sorted(shippable, key=lambda n: -table[n][half]).index(name) + 1

    holdout = {}
    for chosen_on, scored_on in (("half A", "half B"), ("half B", "half A")):
        p = pick(chosen_on)
        holdout[chosen_on] = {"pick": p, "on_other_half": table[p][scored_on], "rank_on_other_half": rank(p, scored_on),
                              "best_on_other_half": table[best(scored_on)][scored_on],
                              "best_on_other_half_name": best(scored_on), "pick_on_other_half": pick(scored_on),
                              "pick_on_other_half_value": table[pick(scored_on)][scored_on]}
    d = default_name(config)
    b_sizes = next(iter(tasks.values()))["robustness"]["background"]["sizes"]
    t_sizes = next(iter(tasks.values()))["robustness"]["targets"]["sizes"]
    ship_ranking = [n for n in ranking if n in set(shippable)]
    return {"criterion": (f"mean over tasks of the mean over classes of (AP, AP with {t_sizes[0]} targets per class, "
                          f"AP with a background of {_nearest(b_sizes, config.selection_background)} pool rows) / 3"),
            "halves": "classes at even (half A) and odd (half B) positions of each task's class list",
            "tie": config.selection_tie,
            "levels": dict(SELECTABLE),
            "shippable": shippable,
            "tied_with_best": [n for n in ship_ranking
                               if table[n]["all"] >= table[ship_ranking[0]]["all"] - config.selection_tie],
            "table": table, "ranking": ranking, "best_all": ranking[0], "best_shippable": ship_ranking[0],
            "pick_all": pick("all"), "holdout": holdout,
            "constraint": ("first filter: shippable variants not below the strongest method without NAG signatures in "
                           "any cell (each task; all targets and the fewest targets per class), on the classes "
                           "chosen on; none eligible: every shippable variant"),
            "eligible": eligible("all"),
            "eligible_fallback": eligible("all") is shippable,
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
    built = {}
    for tcfg in config.tasks:
        t0 = time.perf_counter()
        task, feats = features(tcfg)
        built[tcfg.kind] = (task, feats)
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
    results["default"] = results["selection"]["pick_all"]
    say(f"selection rule picks {results['default']} (shippable variants only); the configured contrastive default "
        f"{results['contrastive_default']} ranks {results['selection']['default_rank']}")
    chosen = next(m for m in methods if m.name == results["default"])
    for tcfg in config.tasks:  # the stability study of the rule's pick
        task, feats = built[tcfg.kind]
        sens = results["tasks"][tcfg.kind]["sensitivity"]
        if sens is not None and chosen.name not in sens["methods"]:
            t0 = time.perf_counter()
            picked = _sensitivity(task, tcfg, feats, config, [chosen], say, extra=(chosen.name,))
            sens["methods"] = {chosen.name: picked["methods"][chosen.name], **sens["methods"]}
            results["timing"][tcfg.kind]["scoring_and_metrics_seconds"] += time.perf_counter() - t0
    results["timing"]["total_seconds"] = time.perf_counter() - start
    if extra:
        results.update(extra)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=1, default=float) + "\n")
    write_report(results, out_dir)
    say(f"wrote {out_dir / 'report.md'} ({results['timing']['total_seconds']:.0f} s)")
    return results
