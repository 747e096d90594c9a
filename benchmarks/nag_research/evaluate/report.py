"""The human-readable side of a run: ``report.md`` (tables and a summary derived from the numbers) and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.storage.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["summary_lines", "write_report"]

#: Differences of mean AP below this are called ties in the summary.
TIE = 0.02
DEFAULT_NAG_PREFIX = "NAG fwd_up all-layers K="


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _default_nag(results: dict[str, Any]) -> str:
    return f"{DEFAULT_NAG_PREFIX}{results['config']['top_k']}"


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Plain statements read off the numbers: who wins each task, where NAG wins, ties and loses."""
    lines = []
    nag = _default_nag(results)
    for name, task in results["tasks"].items():
        pm = task["per_method"]
        ap = {m: v["mean"]["ap"] for m, v in pm.items()}
        ranked = sorted(ap, key=lambda m: -ap[m])
        best = ranked[0]
        nag_variants = [m for m in ranked if pm[m]["family"] == "nag"]
        baselines = [m for m in ranked if pm[m]["family"] not in ("nag", "random")]
        best_base = baselines[0]
        wins = [m for m in baselines if ap[nag] > ap[m] + TIE]
        ties = [m for m in baselines if abs(ap[nag] - ap[m]) <= TIE]
        losses = [m for m in baselines if ap[nag] < ap[m] - TIE]
        classes = list(pm[nag]["per_class"])
        class_wins = sum(pm[nag]["per_class"][c]["ap"] > pm[best_base]["per_class"][c]["ap"] for c in classes)
        random_ap = next(v["mean"]["ap"] for m, v in pm.items() if v["family"] == "random")
        lines.append(
            f"- **{name}**: best mean AP {ap[best]:.3f} by *{best}*. Default NAG ({nag}) has AP {ap[nag]:.3f} "
            f"(rank {ranked.index(nag) + 1} of {len(ranked)}; random {random_ap:.3f}); best NAG variant *"
            f"{nag_variants[0]}* {ap[nag_variants[0]]:.3f}. Strongest baseline *{best_base}* {ap[best_base]:.3f}; "
            f"default NAG beats it on {class_wins} of {len(classes)} classes. Against the baselines (ties within "
            f"{TIE} AP) default NAG wins vs {', '.join(wins) or 'none'}; ties {', '.join(ties) or 'none'}; "
            f"loses vs {', '.join(losses) or 'none'}."
        )
        sens = task.get("sensitivity")
        if sens and nag in sens["methods"]:
            rows = sens["methods"][nag]
            parts = ", ".join(f"{r['targets']}: {r['jaccard_mean']:.2f}" for r in rows[:-1])
            lines.append(f"  - Stability ({sens['class']}, top {sens['fraction']:.0%} of tokens): Jaccard of the "
                         f"default NAG selection with n random targets vs all {sens['max_targets']}: {parts}.")
    return lines


def _task_table(task: dict[str, Any], fractions: list[float]) -> list[str]:
    head = ["Method", "AP", "AP sd (classes)", "ROC-AUC"] + [f"P@{f:.0%}" for f in fractions] + \
           [f"R@{f:.0%}" for f in fractions] + ["score s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m, v in task["per_method"].items():
        mean = v["mean"]
        cells = [m, _fmt(mean["ap"]), _fmt(v["std_ap"]), _fmt(mean["auc"])]
        cells += [_fmt(mean[f"precision@{f:g}"]) for f in fractions]
        cells += [_fmt(mean[f"recall@{f:g}"]) for f in fractions]
        cells.append(f"{v['scoring_seconds']:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def _class_table(task: dict[str, Any]) -> list[str]:
    pm = task["per_method"]
    classes = list(next(iter(pm.values()))["per_class"])
    out = ["| Method | " + " | ".join(classes) + " |", "|" + "---|" * (len(classes) + 1)]
    for m, v in pm.items():
        out.append(f"| {m} | " + " | ".join(_fmt(v["per_class"][c]["ap"]) for c in classes) + " |")
    prev = task["prevalence"]
    out.append("| (share of pool = random AP) | " + " | ".join(_fmt(prev[c]) for c in classes) + " |")
    return out


def _sensitivity_table(sens: dict[str, Any]) -> list[str]:
    sizes = sens["sizes"]
    out = ["| Method | " + " | ".join(f"n={n}" for n in sizes) + " |", "|" + "---|" * (len(sizes) + 1)]
    for m, rows in sens["methods"].items():
        cells = [f"{r['jaccard_mean']:.2f} (AP {r['ap_mean']:.2f})" for r in rows]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out


def _plots(results: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir = out_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    names = list(results["tasks"])
    methods = results["methods"]
    colors = {"nag": "tab:blue", "embedding": "tab:orange", "tfidf": "tab:green", "dsir": "tab:red",
              "random": "tab:gray"}
    files = []

    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 0.35 * len(methods) + 1.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        pm = results["tasks"][name]["per_method"]
        y = np.arange(len(methods))[::-1]
        ax.barh(y, [pm[m]["mean"]["ap"] for m in methods], xerr=[pm[m]["std_ap"] for m in methods],
                color=[colors[pm[m]["family"]] for m in methods], alpha=0.85)
        ax.set_yticks(y, methods, fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("average precision (mean over target classes; bar = sd)")
        ax.set_title(name)
    fig.tight_layout()
    _save_figure(fig, plot_dir / "ap_by_method.png")
    plt.close(fig)
    files.append("plots/ap_by_method.png")

    fractions = results["config"]["fractions"]
    shown = [m for m in methods if results["tasks"][names[0]]["per_method"][m]["family"] != "nag"
             or m == _default_nag(results) or "last-layer" in m]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 5.2), squeeze=False)
    palette = plt.get_cmap("tab10")
    for ax, name in zip(axes[0], names):
        pm = results["tasks"][name]["per_method"]
        for i, m in enumerate(shown):
            ax.plot([f * 100 for f in fractions], [pm[m]["mean"][f"precision@{f:g}"] for f in fractions],
                    marker="os^Dv"[i % 5], label=m, color=palette(i % 10),
                    linestyle="-" if pm[m]["family"] == "nag" else "--", linewidth=2.2 if m == shown[0] else 1.2)
        ax.set_xlabel("token budget r_f (% of pool tokens)")
        ax.set_ylabel("precision of the selection (mean over classes)")
        ax.set_ylim(0, 1)
        ax.set_title(name)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    _save_figure(fig, plot_dir / "precision_at_budget.png")
    plt.close(fig)
    files.append("plots/precision_at_budget.png")

    sens_tasks = [n for n in names if results["tasks"][n].get("sensitivity")]
    if sens_tasks:
        fig, axes = plt.subplots(1, len(sens_tasks), figsize=(5.5 * len(sens_tasks), 4), squeeze=False)
        for ax, name in zip(axes[0], sens_tasks):
            sens = results["tasks"][name]["sensitivity"]
            for m, rows in sens["methods"].items():
                fam = results["tasks"][name]["per_method"][m]["family"]
                ax.plot([r["targets"] for r in rows], [r["jaccard_mean"] for r in rows], marker="o", label=m,
                        color=colors[fam], linestyle="-" if fam != "nag" or "fwd_up" in m else ":")
            ax.set_xscale("log")
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("number of target documents")
            ax.set_ylabel(f"top-{sens['fraction']:.0%} Jaccard vs {sens['max_targets']} targets")
            ax.set_title(f"{name}: class {sens['class']}")
        axes[0][-1].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        _save_figure(fig, plot_dir / "sensitivity.png")
        plt.close(fig)
        files.append("plots/sensitivity.png")
    return files


def write_report(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``plots/*.png`` for a results dictionary from :func:`run_evaluation`."""
    out_dir = Path(out_dir)
    plots = _plots(results, out_dir)
    cfg = results["config"]
    fractions = cfg["fractions"]
    lines = [
        "# Target retrieval: NAG against peers on same-format real text",
        "",
        f"Configuration `{cfg['name']}`, parameters hash `{results['params_hash']}`, git commit "
        f"`{results['git_commit']}`, total time {results['timing']['total_seconds']:.0f} s"
        + (f", machine {results['machine'].get('platform')} ({results['machine'].get('cpu_count')} CPUs, load "
           f"{results['machine'].get('load_avg')})" if isinstance(results.get("machine"), dict) else "") + ".",
        "Written by `nag_research.evaluate` (`nag-datasets evaluate --config " + cfg["name"] + "`).",
        "",
        "## Summary read off the numbers",
        "",
        *summary_lines(results),
        "",
    ]
    if results.get("discussion"):
        lines += ["## Discussion", "", results["discussion"], ""]
    lines += [
        "## Set-up",
        "",
        (f"Model: bundled SmolLM2-135M-Instruct (fp32, CPU). Every document is cut to its first {cfg['max_length']} "
        "tokens before any method sees it, so all methods score the same text and budgets count those tokens. "
        f"NAG signatures: K={cfg['top_k']} per layer, all 30 layers, neuron types {', '.join(cfg['neuron_types'])}; "
        f"smaller K are prefixes (K={', '.join(map(str, cfg['k_prefixes']))}), last-layer = layer 29 only. "
        "Embedding = the same model's hidden states after the middle or the last decoder layer, passed through "
        "the final RMSNorm and mean-pooled over tokens; cosine to the target centroid (mean of unit vectors) or to "
        "the nearest target. TF-IDF = scikit-learn word 1-2-grams, sublinear tf, cosine. DSIR = per-document log "
        "importance weight of `data-selection` 1.0.3 `HashedNgramDSIR` (unigrams+bigrams, 10,000 hash buckets), "
        "raw distribution fitted on the pool."),
        "",
        ("For each task and each class in turn: target = that class's held-out documents; pool = the same pool "
        "for every class; relevant = pool documents of the target's class. Metrics per class, then averaged over "
        "classes: average precision (AP, step-wise, ties admitted together), ROC-AUC (ties count 1/2), and "
        "precision / recall (in documents) of the library's budget selection (score descending, keep while the "
        "cumulative tokens stay within r_f of the pool's tokens). A random ranking has AP ~= the class's share of "
        "the pool, AUC 0.5."),
        "",
    ]
    for name, task in results["tasks"].items():
        s = task["summary"]
        per_class = ", ".join(f"{c}: {d.get('target', 0)} target / {d.get('pool', 0)} pool"
                              + (f" / {d['extra']} extra targets" if d.get("extra") else "")
                              for c, d in s["per_class"].items())
        lines += [
            f"## Task `{name}`",
            "",
            (f"{s['description']}. Pool: {task['pool_documents']} documents, {task['pool_tokens']} tokens. "
            f"Per class: {per_class}."),
            "",
            *_task_table(task, fractions),
            "",
            "AP per target class:",
            "",
            *_class_table(task),
            "",
        ]
        sens = task.get("sensitivity")
        if sens:
            lines += [
                (f"Stability with fewer targets (class {sens['class']}): Jaccard of the top-{sens['fraction']:.0%} "
                f"selection made with n random targets against the one made with all {sens['max_targets']} "
                f"(mean over {sens['seeds']} draws; AP of the n-target ranking in brackets)."),
                "",
                *_sensitivity_table(sens),
                "",
            ]
    lines += ["## Runtime", ""]
    for name, t in results["timing"].items():
        if isinstance(t, dict):
            lines.append(f"- {name}: building and featurizing {t['build_and_featurize_seconds']:.0f} s "
                         f"(forward passes {t['forward_seconds_this_run']:.0f} s; {t['chunks_computed']} chunks "
                         f"computed, {t['chunks_from_cache']} from the cache), scoring and metrics "
                         f"{t['scoring_and_metrics_seconds']:.0f} s.")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    lines += [
        "## Limits of this comparison",
        "",
        ("- Small pools (hundreds of documents) and one 135M model: differences of a few AP points between methods "
        "are within the spread over classes (see the sd column); treat rankings of close methods as ties."),
        ("- Retrieval of a labelled class is a proxy: the paper's claim is about pretraining on the selected data, "
        "which this harness does not measure."),
        ("- MMLU domains are groups of subjects chosen here; GCIDE field labels are the dictionary's own, with the "
        "label text removed from each entry. Neighbouring classes (e.g. medicine and biology) overlap by nature."),
        "- The stability study goes up to the largest target set available here, far below the paper's 10k.",
        "",
    ]
    path = out_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def _save_figure(fig: Any, path: Path) -> None:
    """Render to memory, then write atomically (a killed run never leaves a truncated PNG)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
