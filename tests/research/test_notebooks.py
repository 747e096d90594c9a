"""The analysis notebooks: committed outputs match their parameters, and small runs reproduce each finding's direction.

The slow tests execute every notebook with ``NAG_DATASETS_NOTEBOOK_SIZE=small`` (a few minutes in all on two cores,
sharing featurized sets through the on-disk cache) and read the JSON summary each notebook prints last. Under
``make test-full`` (``NAG_TEST_FULL=1``) they execute the notebooks at full size instead (hours on two cores; outside
CI) and assert the same findings.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nag_research.analysis.notebook import HEADER_MARKER, SIZE_ENV, SUMMARY_MARKER, params_sha256, read_marker

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = [
    "01_quickstart",
    "02_final_layer_only",
    "03_neuron_deactivation",
    "04_multi_target_and_quality",
    "05_width_and_neuron_types",
    "06_tsne",
    "07_small_scale_pretraining",
    "08_contrastive_profile",
    "09_downstream_paper_targets",
]


def _full_params(nb) -> dict:
    """Run the notebook's parameters cell (it only defines FULL and SMALL) and return FULL."""
    source = next(c.source for c in nb.cells if c.cell_type == "code")
    namespace: dict = {}
    previous = os.environ.pop(SIZE_ENV, None)
    try:
        # The cell is our own committed notebook source: plain assignments and one call that prints a header.
        exec(compile(source, "parameters cell", "exec"), namespace)  # noqa: S102
    finally:
        if previous is not None:
            os.environ[SIZE_ENV] = previous
    return namespace["FULL"]


@pytest.mark.fast
@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_come_from_current_full_parameters(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    header = read_marker(nb, HEADER_MARKER)
    assert header["size"] == "full", "committed outputs must come from a full-size run"
    assert header["full_params_sha256"] == params_sha256(_full_params(nb)), (
        f"{name}: the FULL parameters changed since the committed run; re-run it with "
        f"`python -m nag_research.analysis.notebook notebooks/{name}.ipynb`")
    assert header["commit"] != "unknown"
    read_marker(nb, SUMMARY_MARKER)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.fixture(scope="module")
def small_run():
    from nag_research.analysis.notebook import run_notebook

    cache: dict = {}
    size = "full" if os.environ.get("NAG_TEST_FULL") else "small"

    def run(name: str) -> dict:
        if name not in cache:
            nb = run_notebook(NOTEBOOKS / f"{name}.ipynb", size=size, out=False, timeout=6 * 3600)
            assert read_marker(nb, HEADER_MARKER)["size"] == size
            cache[name] = read_marker(nb, SUMMARY_MARKER)
        return cache[name]

    return run


@pytest.mark.slow
def test_quickstart_selection_favours_the_target_source(small_run):
    s = small_run("01_quickstart")
    assert s["gsm8k_share_at_smallest_rf"] > s["gsm8k_pool_share"]
    assert s["gsm8k_mean_similarity"] > s["best_other_mean_similarity"]


@pytest.mark.slow
def test_all_layers_retrieve_better_than_the_last_layer_alone(small_run):
    s = small_run("02_final_layer_only")
    for task in ("mmlu", "gcide"):
        assert s[task]["all layers"]["auc"] > s[task]["last layer"]["auc"]
        assert s[task]["all layers"]["auc"] > 0.5


@pytest.mark.slow
def test_nag_deactivation_hurts_more_than_every_random_seed(small_run):
    s = small_run("03_neuron_deactivation")
    assert s["nag_target_delta"] > max(s["random_target_deltas"])
    assert s["nag_target_delta"] > 0
    # Found at this scale: the most frequent NAG neurons are generic, off-target loss rises about as much.
    by = {r["condition"]: r for r in s["rows"]}
    randoms = [r for name, r in by.items() if name.startswith("random")]
    assert s["nag_offtarget_delta"] > max(r["offtarget_delta"] for r in randoms)


@pytest.mark.slow
def test_mixture_shares_the_budget_and_quality_weight_favours_length(small_run):
    s = small_run("04_multi_target_and_quality")
    multi = s["multi"]
    for label, recall in multi["mixture dedup=False"]["recall"].items():
        assert recall <= multi[f"single {label}"]["recall"][label]
    sweep = [s["quality_sweep"][k] for k in sorted(s["quality_sweep"], key=float)]
    assert sweep[-1]["mean_tokens"] > sweep[0]["mean_tokens"]


@pytest.mark.slow
def test_wider_signatures_retrieve_better_than_one_neuron_per_layer(small_run):
    s = small_run("05_width_and_neuron_types")
    for task in ("mmlu", "gcide"):
        assert s["widths"][task]["20"]["auc"] > s["widths"][task]["1"]["auc"]
    assert all(v["auc"] > 0.5 for v in s["types"]["mmlu"].values())


@pytest.mark.slow
def test_nag_clusters_beat_chance(small_run):
    s = small_run("06_tsne")
    for task, labels in (("mmlu", 4), ("gcide", 4)):
        assert s[f"{task}/NAG"]["tsne_kmeans"]["purity"] > 1.0 / labels + 0.1
    assert np.isfinite(s["mmlu/TF-IDF"]["tsne_kmeans"]["nmi"]) and np.isfinite(s["mmlu/embedding"]["tsne_kmeans"]["nmi"])


@pytest.mark.slow
def test_pretraining_small_config_nag_beats_random_on_target_loss_with_equal_tokens(small_run):
    s = small_run("07_small_scale_pretraining")
    from nag_research.experiments.pretrain import CONFIGS

    cfg = CONFIGS[s["config"]]
    assert s["units"] == len(cfg.arms) * len(cfg.seeds)
    assert len(s["train_tokens"]) == 1  # every arm and seed trained on the same number of tokens
    assert s["target_vs_random"]["nag_all"]["diff"] < 0
    assert s["target_loss"]["nag_all"] < s["target_loss"]["random"]


@pytest.mark.slow
def test_contrastive_profile_retrieves_better_and_its_top_neurons_are_more_target_specific(small_run):
    s = small_run("08_contrastive_profile")
    for task in ("mmlu_domains", "gcide_fields"):
        assert s["retrieval"][task]["contrastive"]["ap"] > s["retrieval"][task]["paper"]["ap"]
    # Deactivation: the paper profile's top neurons hurt target and off-target text about equally; the top
    # contrastive neurons hurt the target relatively more, and still more than random neurons.
    assert s["contrastive_ratio"] > s["paper_ratio"]
    assert s["contrastive_offtarget_delta"] < s["paper_offtarget_delta"]
    assert s["contrastive_target_delta"] > max(s["random_target_deltas"])
    # Issue 23: the hybrid (0.2 z(contrastive fwd_down NAG) + 0.8 z(learned embedding model)) ranks at least as well
    # as the contrastive NAG profile alone with all targets, on both tasks.
    most = str(max(int(n) for n in s["signals_ap"]["mmlu_domains"]))
    for task in ("mmlu_domains", "gcide_fields"):
        ap = s["signals_ap"][task][most]
        assert set(ap) == {"contrastive", "hybrid_nag", "embedding_centred", "learned", "hybrid"}
        assert ap["hybrid"] >= ap["contrastive"]


@pytest.mark.slow
def test_downstream_notebook_runs_every_unit_and_its_gains_are_recomputable_from_the_seeds(small_run):
    s = small_run("09_downstream_paper_targets")
    assert s["units"] == s["units_done"] == s["units_planned"] == len(s["arms"]) * len(s["targets"]) * len(s["seeds"])
    assert len(s["train_tokens"]) == 1  # every arm and seed trained on the same number of tokens
    for target in s["targets"]:
        seeds = s["per_seed"][target]
        for metric in ("gold_loglik_mean", "acc_norm"):
            base = np.mean([v[metric] for v in seeds["random"].values()])
            for arm in s["arms"]:
                gain = np.mean([v[metric] for v in seeds[arm].values()]) - base
                assert s["own"][target][arm][metric]["vs_random"] == pytest.approx(gain, abs=1e-9)
