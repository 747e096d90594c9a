"""The score distribution of a selection: binned scores (kept in ``nag_recipe.json``) and its PNG figure.

matplotlib (a core dependency) is imported only to draw, so importing the package does not load it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..scoring.profile_base import Profile
from ..selection.recipe import SelectionRecipe

_HIST_BINS = 40


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _selection_scores(selected: Any, recipe: SelectionRecipe | None, scores: Any, profile: Any) -> tuple[Any, str]:
    """The selection's scores for the figure, and where they came from (``None`` when nothing records them)."""
    if scores is not None and profile is not None:
        raise InvalidArgumentError("pass either scores or profile, not both")
    if scores is not None:
        arr = np.asarray(scores, dtype=np.float64)
        if arr.shape != (len(selected),):
            raise InvalidArgumentError(f"scores must hold one value per selected row ({len(selected)}), got shape "
                                       f"{arr.shape}")
        return arr, "given"
    if profile is not None:
        profiles = [profile] if isinstance(profile, Profile) else list(profile)
        if len(profiles) == 1:
            return np.asarray(profiles[0].score(selected), np.float64), "profile"
        if recipe is None or recipe.kind != "multi_target" or len(recipe.reports) != len(profiles):
            raise InvalidArgumentError("several profiles need a multi-target recipe with as many targets")
        if recipe.dedup:
            raise InvalidArgumentError("a de-duplicated multi-target selection does not record which target kept each "
                                       "row: pass scores= instead of profile=")
        bounds = np.cumsum([0] + [r["documents_selected"] for r in recipe.reports])
        if bounds[-1] != len(selected):
            raise InvalidArgumentError(f"the recipe selected {bounds[-1]} rows but the dataset has {len(selected)}")
        parts = [np.asarray(p.score(selected.select(range(lo, hi))), np.float64)
                 for p, lo, hi in zip(profiles, bounds[:-1], bounds[1:])]
        return np.concatenate(parts), "profiles"
    from ..signatures.arrow import numeric_column

    for column in ((recipe.score_column if recipe else None), "nag_similarity"):
        if column and column in selected.column_names:
            return numeric_column(selected, column), f"column {column}"
    return None, "none"


def _histogram(selected_scores: Any, pool_scores: Any, recipe: SelectionRecipe | None, origin: str) -> dict[str, Any]:
    """Binned scores (what the figure and card show), kept in ``nag_recipe.json`` so a card can be rebuilt."""
    higher = True if recipe is None else bool(recipe.higher_is_better)
    if recipe is not None and recipe.score_column:
        label = f"{recipe.score_column} ({'higher' if higher else 'lower'} is better)"
    else:
        label = "similarity to the target profile (higher is closer)"
    thresholds = [r.get("threshold") for r in (recipe.reports if recipe else []) if r.get("threshold") is not None]
    out: dict[str, Any] = {"label": label, "origin": origin, "thresholds": thresholds, "higher_is_better": higher,
                           "edges": None, "selected": None, "pool": None, "stats": None, "pool_stats": None}
    if selected_scores is None and pool_scores is None:
        return out
    sel = _finite(selected_scores) if selected_scores is not None else np.empty(0)
    pool = _finite(pool_scores) if pool_scores is not None else None
    both = sel if pool is None else np.concatenate([sel, pool])
    if not len(both):
        return out
    edges = np.histogram_bin_edges(both, bins=_HIST_BINS)
    out["edges"] = edges.tolist()
    if selected_scores is not None:
        out["selected"] = np.histogram(sel, bins=edges)[0].tolist()
        out["stats"] = _stats(sel)
    if pool is not None:
        out["pool"] = np.histogram(pool, bins=edges)[0].tolist()
        out["pool_stats"] = _stats(pool)
    return out


def _stats(values: np.ndarray) -> dict[str, Any] | None:
    if not len(values):
        return None
    return {"count": len(values), "min": float(values.min()), "median": float(np.median(values)),
            "mean": float(values.mean()), "max": float(values.max())}


def _figure_png(hist: dict[str, Any]) -> bytes:
    """The score histogram as PNG bytes (Agg canvas, no pyplot: the caller's backend is left alone)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if hist["edges"] is None:
        ax.text(0.5, 0.5, "no scores were recorded for this selection", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    else:
        edges = np.asarray(hist["edges"])
        if hist["pool"] is not None:
            ax.stairs(hist["pool"], edges, color="0.45", label="pool", linewidth=1.2)
        if hist["selected"] is not None:
            ax.stairs(hist["selected"], edges, fill=True, color="tab:blue", alpha=0.7, label="selected")
        for i, t in enumerate(hist["thresholds"]):
            ax.axvline(t, color="tab:red", linestyle="--", linewidth=1, label="threshold" if i == 0 else None)
        if hist["pool"] is not None:
            ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel(hist["label"])
        ax.set_ylabel("documents")
        ax.legend(frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _score_text(hist: dict[str, Any]) -> str:
    if hist["edges"] is None:
        return ("No scores were recorded when this subset was exported (export with `scores=` or `profile=`, or keep "
                "a score column), so the figure is empty.")
    parts = []
    if hist["stats"]:
        s = hist["stats"]
        parts.append(f"Selected documents ({s['count']:,} scored): min {s['min']:.4g}, median {s['median']:.4g}, "
                     f"mean {s['mean']:.4g}, max {s['max']:.4g}.")
    if hist["pool_stats"]:
        s = hist["pool_stats"]
        parts.append(f"Pool ({s['count']:,} scored, outline): min {s['min']:.4g}, median {s['median']:.4g}, "
                     f"max {s['max']:.4g}.")
    if hist["thresholds"]:
        parts.append("Dashed: the score threshold of the selection" + ("s." if len(hist["thresholds"]) > 1 else "."))
    parts.append(f"Axis: {hist['label']}.")
    return " ".join(parts)
