"""The experiments the notebooks run, as functions: label retrieval, clustering of variants, deactivation runs.

Retrieval on a labelled, format-controlled set: within each label the first ``n_targets`` documents are the
targets, the rest join a shared pool; the label's profile ranks the whole pool and its own documents are the
relevant ones. Metrics are averaged over labels.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.signatures.spec import SignatureSpec

from .clustering import evaluate_distance
from .deactivation import deactivated, key_count
from .distances import nag_distance_matrix
from .measure import document_losses, multiple_choice_accuracy
from .retrieval import average_precision, precision_recall_at, roc_auc
from .subsets import prefix_signatures, signature_array, slice_signatures

__all__ = [
    "deactivation_runs",
    "featurize_labelled_set",
    "label_retrieval",
    "load_task_sets",
    "split_targets",
    "variant",
    "variant_clusters",
]


def featurize_labelled_set(ds: Any, name: str, *, top_k: int, max_length: int, neuron_types: Sequence[str],
                           tokenizer: Any = None) -> Any:
    """Featurize ``ds`` (cached on disk) and add ``num_tokens``, each document's full token count."""
    from nag_datasets.featurize.featurizer import NAGFeaturizer
    from nag_datasets.selection.tokens import count_tokens

    from .sets import featurize_cached

    featurizer = NAGFeaturizer(neuron_types=tuple(neuron_types), top_k=top_k, max_length=max_length)
    out = featurize_cached(ds, featurizer, name)
    if tokenizer is None:
        from nag_datasets.featurize.models import load_model

        tokenizer = load_model()[1]
    return count_tokens(out, tokenizer)


def variant(ds: Any, neuron_type: str = "fwd_up", *, layers: Sequence[int] | str | None = None,
            top_k: int | None = None) -> tuple[np.ndarray, SignatureSpec]:
    """Signatures of one column of ``ds`` restricted to ``layers`` and/or the first ``top_k`` neurons."""
    sigs, valid, spec = signature_array(ds, f"nag_{neuron_type}")
    if not valid.all():
        raise ValueError(f"{int((~valid).sum())} rows have no signature; filter them out first")
    if layers is not None:
        sigs, spec = slice_signatures(sigs, spec, layers)
    if top_k is not None:
        sigs, spec = prefix_signatures(sigs, spec, top_k)
    return sigs, spec


def split_targets(labels: Sequence[str], n_targets: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first ``n_targets`` documents of every label (targets) and of all others (pool)."""
    labels = np.asarray(labels)
    seen: dict[str, int] = {}
    is_target = np.zeros(len(labels), bool)
    for i, label in enumerate(labels):
        if seen.get(label, 0) < n_targets:
            is_target[i] = True
            seen[label] = seen.get(label, 0) + 1
    return np.flatnonzero(is_target), np.flatnonzero(~is_target)


def label_retrieval(sigs: np.ndarray, spec: SignatureSpec, labels: Sequence[str], tokens: np.ndarray,
                    n_targets: int, fractions: Sequence[float]) -> dict[str, Any]:
    """Per-label retrieval of a label's pool documents by its targets' profile, and the means over labels.

    Returns ``{"auc", "ap", "precision": {f: ...}, "recall": {f: ...}, "per_label": {...}, "scores": {label:
    pool scores}, "pool": pool positions}``.
    """
    labels = np.asarray(labels)
    targets, pool = split_targets(labels, n_targets)
    tokens = np.asarray(tokens)
    per_label, scores = {}, {}
    for label in dict.fromkeys(labels.tolist()):
        profile = NAGProfile.from_signatures(sigs[targets[labels[targets] == label]], spec)
        s = profile.score(sigs[pool]).astype(np.float64)
        relevant = labels[pool] == label
        pr = precision_recall_at(s, relevant, tokens[pool], fractions)
        per_label[label] = {"auc": roc_auc(s, relevant), "ap": average_precision(s, relevant),
                            "precision": [r["precision"] for r in pr], "recall": [r["recall"] for r in pr]}
        scores[label] = s

    def mean(key: str) -> float:
        return float(np.mean([v[key] for v in per_label.values()]))

    return {
        "auc": mean("auc"),
        "ap": mean("ap"),
        "precision": {str(f): float(np.mean([v["precision"][i] for v in per_label.values()]))
                      for i, f in enumerate(fractions)},
        "recall": {str(f): float(np.mean([v["recall"][i] for v in per_label.values()]))
                   for i, f in enumerate(fractions)},
        "per_label": per_label,
        "scores": scores,
        "pool": pool,
    }


def variant_clusters(sigs: np.ndarray, spec: SignatureSpec, labels: Sequence[str], *, seed: int = 0,
                     perplexity: float = 30.0) -> dict[str, Any]:
    """:func:`~nag_research.analysis.clustering.evaluate_distance` on the NAG distances of the signatures."""
    return evaluate_distance(nag_distance_matrix(sigs, None, spec), labels, seed=seed, perplexity=perplexity)


def deactivation_runs(model: Any, tokenizer: Any, conditions: Mapping[str, Mapping[int, Any]], *,
                      target_texts: Sequence[str], general_texts: Sequence[str],
                      mc_items: Sequence[tuple[str, Sequence[str], int]] = (), max_length: int = 120,
                      batch_size: int = 16, mc_max_length: int = 256, neuron_type: str = "fwd_up",
                      verbose: bool = True) -> list[dict[str, Any]]:
    """Mean target loss, mean off-target loss and multiple-choice accuracy with each key set deactivated.

    ``conditions`` maps a name to keys (``{}`` = nothing deactivated, the baseline). Losses are means of the
    per-document losses (nats per token).
    """
    rows = []
    for name, keys in conditions.items():
        start = time.time()
        with deactivated(model, keys, neuron_type):
            target = document_losses(model, tokenizer, target_texts, max_length=max_length, batch_size=batch_size)
            general = document_losses(model, tokenizer, general_texts, max_length=max_length, batch_size=batch_size)
            acc = (multiple_choice_accuracy(model, tokenizer, mc_items, batch_size=batch_size,
                                            max_length=mc_max_length)["accuracy"]
                   if mc_items else float("nan"))
        row = {"condition": name, "neurons": key_count(keys), "target_loss": float(np.nanmean(target)),
               "offtarget_loss": float(np.nanmean(general)), "accuracy": acc}
        rows.append(row)
        if verbose:
            print(f"{name:>22}: {row['neurons']:4d} neurons  target loss {row['target_loss']:.3f}  "
                  f"off-target loss {row['offtarget_loss']:.3f}  accuracy {acc:.3f}  ({time.time() - start:.0f} s)")
    return rows


def load_task_sets(params: Mapping[str, Any]) -> dict[str, Any]:
    """The format-controlled sets the notebooks share, featurized (cached) with every neuron type at the widest K.

    ``params``: ``subjects``, ``fields``, ``per_label``, ``max_length``, ``top_k`` (the widest K; narrower ones
    are prefixes), ``neuron_types``. Returns ``{"mmlu": ds, "gcide": ds}`` with ``label`` and ``num_tokens``.
    """
    from .sets import gcide_field_set, mmlu_subject_set

    common = {"top_k": params["top_k"], "max_length": params["max_length"], "neuron_types": params["neuron_types"]}
    return {
        "mmlu": featurize_labelled_set(mmlu_subject_set(params["subjects"], params["per_label"]), "mmlu-subjects",
                                       **common),
        "gcide": featurize_labelled_set(gcide_field_set(params["fields"], params["per_label"]), "gcide-fields",
                                        **common),
    }
