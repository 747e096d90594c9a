"""Publishing on the Hugging Face Hub: a selected subset with a card that says exactly how it was chosen, and profiles.

:func:`export_for_hub` writes everything locally (parquet shards, ``nag_recipe.json``, ``score_distribution.png`` and
a ``README.md`` card rendered from ``hub_cards/``); :func:`push_to_hub` exports first and then uploads the folder.
Profiles get a card with :func:`profile_card` and come back with :func:`load_profile` (a local folder or a Hub repo).

>>> import tempfile, pathlib, numpy as np
>>> from datasets import Dataset
>>> from nag_datasets.select import select_top_fraction
>>> pool = Dataset.from_dict({"text": ["a", "b", "c"], "score": [0.2, 0.9, 0.5], "num_tokens": [4, 4, 4]})
>>> selected = select_top_fraction(pool, 0.7, token_column="num_tokens", score_column="score")
>>> folder = export_for_hub(selected, pathlib.Path(tempfile.mkdtemp()) / "out", license="cc-by-4.0")
>>> sorted(p.name for p in folder.iterdir())
['README.md', 'data', 'nag_recipe.json', 'score_distribution.png']
>>> size_category(999), size_category(1000)
('n<1K', '1K<n<10K')
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._io import atomic_dir, atomic_write_bytes, atomic_write_text, check_replaceable, lock_dir, read_versioned_json
from .columns import signature_columns
from .profile import COUNTS_FILE, META_FILE, NAGProfile, ProfileError
from .recipe import RecipeError, SelectionRecipe, get_recipe
from .spec import SignatureSpec

__all__ = [
    "HubPublishError",
    "export_for_hub",
    "load_profile",
    "profile_card",
    "push_profile",
    "push_to_hub",
    "regenerate_card",
    "register_cli",
    "size_category",
    "template_path",
]

logger = logging.getLogger(__name__)

SUBSET_TEMPLATE = "selected_subset.md"
PROFILE_TEMPLATE = "target_profile.md"
RECIPE_FILE = "nag_recipe.json"
FIGURE_FILE = "score_distribution.png"
CARD_FILE = "README.md"
DATA_DIR = "data"
EXPORT_FORMAT = "nag_datasets.hub_export"
EXPORT_FORMAT_VERSION = 1
DEFAULT_MAX_SHARD_ROWS = 100_000
DEFAULT_TAGS = ("nag", "nag-datasets", "data-selection")
_HIST_BINS = 40
_MAX_SOURCES = 30

#: Settings of a card that are not in the data: stored in ``nag_recipe.json`` so ``regenerate_card`` can reuse them.
CARD_SETTINGS = ("license", "source_datasets", "pretty_name", "source_column", "token_column", "task_categories",
                 "tags", "repo_id")

# The Hub's size buckets, by upper bound (exclusive).
_SIZE_BUCKETS = (
    (10**3, "n<1K"), (10**4, "1K<n<10K"), (10**5, "10K<n<100K"), (10**6, "100K<n<1M"), (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"), (10**9, "100M<n<1B"), (10**10, "1B<n<10B"), (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)


class HubPublishError(RuntimeError):
    """Uploading to the Hub failed (offline, not logged in, refused); ``local_folder`` holds the finished export."""

    def __init__(self, message: str, local_folder: Path | None = None) -> None:
        super().__init__(message)
        self.local_folder = local_folder


# -- templates and metadata --------------------------------------------------------------------------------------


def template_path(name: str) -> Path:
    """Path of a card template shipped in the package (``hub_cards/<name>``), editable install or wheel alike."""
    resource = importlib.resources.files("nag_datasets").joinpath("hub_cards", name)
    if not resource.is_file():
        raise FileNotFoundError(f"card template {name!r} is not installed with nag_datasets (looked for {resource})")
    return Path(str(resource))


def size_category(num_rows: int) -> str:
    """The Hub's ``size_categories`` bucket for ``num_rows`` examples."""
    for bound, label in _SIZE_BUCKETS:
        if num_rows < bound:
            return label
    return "n>1T"


def _cell(value: Any) -> str:
    """A value safe inside a markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _int(n: int | None) -> str:
    return "unknown" if n is None else f"{int(n):,}"


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.4g} ({100 * x:.2f}%)"


def _layers_text(layers: Sequence[int]) -> str:
    layers = list(layers)
    if layers == list(range(layers[0], layers[0] + len(layers))):
        return f"{layers[0]}-{layers[-1]} ({len(layers)} layers)" if len(layers) > 1 else f"{layers[0]} (1 layer)"
    return ", ".join(map(str, layers)) + f" ({len(layers)} layers)"


def _spec_rows(spec: dict[str, Any]) -> list[tuple[str, str]]:
    def fmt(value: Any) -> str:
        return _cell(value) if value not in ("", None) else "(not recorded)"

    return [
        ("model", fmt(spec.get("model_name"))),
        ("model weights fingerprint", f"`{fmt(spec['model_fingerprint'])}`"),
        ("tokenizer fingerprint", f"`{fmt(spec['tokenizer_fingerprint'])}`"),
        ("neuron type", f"`{fmt(spec['neuron_type'])}`"),
        ("K (top_k)", str(spec["top_k"])),
        ("layers", _layers_text(spec["layers"])),
        ("max_length (tokens)", str(spec["max_length"])),
        ("add_special_tokens", str(spec["add_special_tokens"])),
        ("neurons per layer", str(spec["neurons_per_layer"])),
        ("impact definition version", fmt(spec.get("impact_version"))),
        ("dtype (recorded)", fmt(spec.get("dtype"))),
        ("attention implementation (recorded)", fmt(spec.get("attn_implementation"))),
        ("library version (recorded)", fmt(spec.get("library_version"))),
    ]


def _render(template: str, card_data: Any, context: dict[str, Any]) -> str:
    from huggingface_hub import DatasetCard

    return str(DatasetCard.from_template(card_data, template_path=str(template_path(template)), **context))


# -- scores and the figure ---------------------------------------------------------------------------------------


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _selection_scores(selected: Any, recipe: SelectionRecipe | None, scores: Any, profile: Any) -> tuple[Any, str]:
    """The selection's scores for the figure, and where they came from (``None`` when nothing records them)."""
    if scores is not None and profile is not None:
        raise ValueError("pass either scores or profile, not both")
    if scores is not None:
        arr = np.asarray(scores, dtype=np.float64)
        if arr.shape != (len(selected),):
            raise ValueError(f"scores must hold one value per selected row ({len(selected)}), got shape {arr.shape}")
        return arr, "given"
    if profile is not None:
        profiles = [profile] if isinstance(profile, NAGProfile) else list(profile)
        if len(profiles) == 1:
            return np.asarray(profiles[0].score(selected), np.float64), "profile"
        if recipe is None or recipe.kind != "multi_target" or len(recipe.reports) != len(profiles):
            raise ValueError("several profiles need a multi-target recipe with as many targets")
        if recipe.dedup:
            raise ValueError("a de-duplicated multi-target selection does not record which target kept each row: "
                             "pass scores= instead of profile=")
        bounds = np.cumsum([0] + [r["documents_selected"] for r in recipe.reports])
        if bounds[-1] != len(selected):
            raise ValueError(f"the recipe selected {bounds[-1]} rows but the dataset has {len(selected)}")
        parts = [np.asarray(p.score(selected.select(range(lo, hi))), np.float64)
                 for p, lo, hi in zip(profiles, bounds[:-1], bounds[1:])]
        return np.concatenate(parts), "profiles"
    from ._arrow import numeric_column

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


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("exporting for the Hub draws the score distribution with matplotlib: "
                          "pip install matplotlib (or nag-datasets[dev])") from None


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


# -- exporting a selection ---------------------------------------------------------------------------------------


def _shard_files(folder: Path) -> list[Path]:
    return sorted((folder / DATA_DIR).glob("train-*.parquet"))


def _data_stats(folder: Path, source_column: str | None, token_column: str | None) -> dict[str, Any]:
    """Rows, tokens and per-source counts read back from the written shards (only the needed columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = _shard_files(folder)
    if not files:
        raise FileNotFoundError(f"{folder / DATA_DIR} holds no train-*.parquet shards")
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    columns = [c for c in (source_column, token_column) if c]
    schema_names = pq.read_schema(files[0]).names
    missing = [c for c in columns if c not in schema_names]
    if missing:
        raise KeyError(f"column(s) {missing} not in the exported data; columns: {schema_names}")
    out: dict[str, Any] = {"rows": rows, "shards": len(files), "tokens": None, "sources": None,
                           "signature_columns": [], "columns": schema_names}
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files]) if columns else None
    if token_column:
        out["tokens"] = int(pc.sum(table[token_column]).as_py() or 0)
    if source_column:
        keys = [("(missing)" if v is None else str(v)) for v in table[source_column].to_pylist()]
        tokens = table[token_column].to_numpy(zero_copy_only=False) if token_column else None
        by: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            entry = by.setdefault(key, [0, 0])
            entry[0] += 1
            if tokens is not None and not np.isnan(tokens[i]):
                entry[1] += int(tokens[i])
        out["sources"] = sorted(([k, d, t] for k, (d, t) in by.items()), key=lambda x: (-x[1], x[0]))
    return out


def _recipe_summary(recipe: SelectionRecipe | None, data: dict[str, Any]) -> dict[str, Any]:
    """Token totals and consistency notes from the recipe, preferring counts read from the data."""
    out: dict[str, Any] = {"tokens": data["tokens"], "tokens_exact": data["tokens"] is not None, "pool_tokens": None,
                           "pool_documents": None, "warnings": []}
    if recipe is None or not recipe.reports:
        return out
    first = recipe.reports[0]
    out["pool_tokens"] = first.get("pool_tokens")
    out["pool_documents"] = first.get("pool_documents")
    out["null_rows"] = first.get("null_rows_skipped")
    out["null_tokens"] = first.get("null_tokens_skipped")
    docs = sum(int(r["documents_selected"]) for r in recipe.reports)
    toks = sum(int(r["tokens_selected"]) for r in recipe.reports)
    if out["tokens"] is None:
        out["tokens"] = toks
        out["tokens_exact"] = not recipe.dedup
    if recipe.dedup:
        if data["rows"] > docs:
            out["warnings"].append(f"the data has {data['rows']:,} rows but the recipe selected at most {docs:,}: "
                                   "rows were added after the selection.")
    elif data["rows"] != docs:
        out["warnings"].append(f"the data has {data['rows']:,} rows but the recipe selected {docs:,}: the subset was "
                               "changed after the selection, so the recipe does not describe it exactly.")
    elif data["tokens"] is not None and data["tokens"] != toks:
        out["warnings"].append(f"the token column sums to {data['tokens']:,} but the recipe counted {toks:,} tokens "
                               "(a different token column or tokenizer?).")
    return out


def _kind_text(recipe: SelectionRecipe) -> str:
    if recipe.kind == "multi_target":
        return f"multi-target mixture: {len(recipe.reports)} targets, each selecting its own share of the pool"
    if recipe.quality:
        return "one target profile, NAG distance combined with a quality signal"
    if recipe.profiles:
        return "top of the pool by similarity to one target profile"
    return f"top of the pool by the precomputed score column `{recipe.score_column}`"


def _method_text(recipe: SelectionRecipe) -> str:
    if recipe.method == "exact":
        return ("exact (the boundary score found by bisection over the pool's scores, only the kept rows sorted; "
                "never over the budget)")
    r = recipe.reports[0] if recipe.reports else {}
    return (f"sampled (threshold estimated on {_int(r.get('sample_documents'))} of the pool's documents, "
            f"sample_size={r.get('sample_size')}, seed={r.get('seed')}; applied as a filter to the whole pool)")


def _rule_text(recipe: SelectionRecipe) -> str:
    higher = "highest" if recipe.higher_is_better else "lowest"
    text = (f"The pool was ranked by score ({higher} first, ties by row position), and documents were kept down the "
            "ranking while their cumulative token count stayed within r_f of the pool's tokens, stopping at the first "
            "document that would overflow. Rows without a score were not part of the pool.")
    if recipe.profiles:
        text += (" The similarity of a document to the targets is the mean over layers of the target-frequency "
                 "weights of its K most activated neurons, divided by K (its mean Dice overlap with the targets' NAGs).")
    return text


def _targets(recipe: SelectionRecipe) -> list[dict[str, str]]:
    shares = recipe.shares or [recipe.fraction] * len(recipe.reports)
    rows = []
    for i, (r, share) in enumerate(zip(recipe.reports, shares)):
        if not r.get("profile_fingerprint"):
            continue
        threshold = r.get("threshold")
        rows.append({
            "index": str(i),
            "description": _cell(r.get("profile_description") or "(no description)"),
            "num_targets": _int(r.get("profile_num_targets")),
            "fingerprint": _cell(r["profile_fingerprint"]),
            "share": _pct(share),
            "documents": _int(r.get("documents_selected")),
            "tokens": _int(r.get("tokens_selected")),
            "threshold": "none" if threshold is None else f"{threshold:.6g}",
        })
    return rows


def _py_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _reproduce(recipe: SelectionRecipe, token_column: str, license: str) -> tuple[str, str]:
    """Library code and CLI commands that redo the selection from the same pool (CLI only where it can)."""
    from .models import BUNDLED_NAME

    spec = recipe.spec
    lines = ["from datasets import load_dataset"]
    if spec:
        lines.append("from nag_datasets.featurizer import NAGFeaturizer")
    if recipe.profiles:
        lines.append("from nag_datasets.profile import NAGProfile")
    fn = "select_multi_target" if recipe.kind == "multi_target" else "select_top_fraction"
    imports = [fn] + (["combine_with_quality"] if recipe.quality else [])
    lines += [f"from nag_datasets.select import {', '.join(imports)}", ""]
    lines.append(f'POOL = "POOL"  # your pool: a Hub dataset id or local folder with a text column and {token_column!r}')
    if recipe.kind != "multi_target" and recipe.profiles:
        lines.append('PROFILE_DIR = "PROFILE_DIR"  # the target profile with the fingerprint above')
    lines.append('pool = load_dataset(POOL, split="train")')
    bundled = bool(spec) and spec.get("model_name") == BUNDLED_NAME and \
        str(spec.get("model_fingerprint", "")).startswith("gguf-sha256:")
    if spec:
        feat = {"neuron_types": [spec["neuron_type"]], "top_k": spec["top_k"], "max_length": spec["max_length"],
                "layers": list(spec["layers"]), "add_special_tokens": spec["add_special_tokens"]}
        if spec.get("dtype"):
            feat["dtype"] = spec["dtype"]
        if bundled:  # the bundled model is the default: no name to give
            lines.append(f"featurizer = NAGFeaturizer({_py_args(feat)})  # bundled {BUNDLED_NAME}")
        elif spec.get("model_name"):
            lines.append(f"featurizer = NAGFeaturizer({spec['model_name']!r}, {_py_args(feat)})")
        else:
            lines.append(f"MODEL = \"MODEL\"  # a folder or Hub id of the model with weights fingerprint "
                         f"{spec['model_fingerprint']}")
            lines.append(f"featurizer = NAGFeaturizer(MODEL, {_py_args(feat)})")
        lines.append("pool = featurizer.apply(pool)")
    method = {"method": recipe.method}
    if recipe.method == "sampled" and recipe.reports:
        method.update(sample_size=recipe.reports[0].get("sample_size"), seed=recipe.reports[0].get("seed"))
    if recipe.kind == "multi_target":
        paths = [f"PROFILE_{i}" for i in range(len(recipe.profiles))]
        lines.append(f"profiles = [NAGProfile.load(p) for p in {paths!r}]  # fingerprints in the table above")
        args = {"token_column": token_column, "dedup": bool(recipe.dedup), **method}
        lines.append(f"selected = select_multi_target(pool, profiles, {recipe.fraction!r}, {_py_args(args)})")
    elif recipe.quality:
        column = recipe.score_column or "nag_combined"
        lines.append(f"profile = NAGProfile.load(PROFILE_DIR)  # fingerprint {recipe.profiles[0]['fingerprint']}")
        lines.append(f"pool = combine_with_quality(pool, profile, {recipe.quality['column']!r}, "
                     f"weight={recipe.quality['weight']!r}, out_column={column!r})")
        args = {"token_column": token_column, "score_column": column, **method}
        lines.append(f"selected = select_top_fraction(pool, {recipe.fraction!r}, {_py_args(args)})")
    elif recipe.profiles:
        lines.append(f"profile = NAGProfile.load(PROFILE_DIR)  # fingerprint {recipe.profiles[0]['fingerprint']}")
        args = {"token_column": token_column, "profile": "PROFILE", **method}
        code = _py_args(args).replace("'PROFILE'", "profile")
        lines.append(f"selected = select_top_fraction(pool, {recipe.fraction!r}, {code})")
    else:
        args = {"token_column": token_column, "score_column": recipe.score_column,
                "higher_is_better": recipe.higher_is_better, **method}
        lines.append(f"selected = select_top_fraction(pool, {recipe.fraction!r}, {_py_args(args)})")
    library = "\n".join(lines)

    if recipe.kind != "top_fraction" or recipe.quality or not recipe.profiles or not spec:
        return library, ""
    if recipe.method == "sampled" and method.get("sample_size") != _cli_sample_size():
        return library, ""
    model = "" if bundled else f"--model {spec.get('model_name') or 'MODEL'} "
    featurize = (f"{model}--neuron-types {spec['neuron_type']} --top-k {spec['top_k']} "
                 f"--max-length {spec['max_length']} --layers {','.join(map(str, spec['layers']))}")
    if spec.get("dtype"):
        featurize += f" --dtype {spec['dtype']}"
    select = f"--fraction {recipe.fraction!r} --token-column {token_column} --method {recipe.method}"
    if recipe.method == "sampled":
        select += f" --seed {method.get('seed')}"
    cli = "\n".join([
        f"nag-datasets featurize TARGET target_nag {featurize}",
        "nag-datasets profile target_nag PROFILE_DIR  # or download the published profile",
        f"nag-datasets featurize POOL pool_nag {featurize}",
        f"nag-datasets select pool_nag selected --profile PROFILE_DIR {select}",
        f"nag-datasets export selected EXPORT_DIR --license {license}",
    ])
    return library, cli


def _cli_sample_size() -> Any:
    """The sample size ``nag-datasets select`` uses (it has no option for it)."""
    import inspect

    from .select import select_top_fraction

    return inspect.signature(select_top_fraction).parameters["sample_size"].default


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


def _subset_card(meta: dict[str, Any], data: dict[str, Any]) -> str:
    """README.md text for an export, from its ``nag_recipe.json`` content and the stats of its shards."""
    from huggingface_hub import DatasetCardData

    settings = meta["card"]
    recipe = SelectionRecipe.from_dict(meta["recipe"]) if meta.get("recipe") else None
    summary = _recipe_summary(recipe, data)
    hist = meta["score_histogram"]
    spec = recipe.spec if recipe else None
    yaml_extra: dict[str, Any] = {}
    if recipe is not None:
        yaml_extra["nag_selection"] = {
            "kind": recipe.kind,
            "fraction": recipe.fraction,
            "method": recipe.method,
            "top_k": spec["top_k"] if spec else None,
            "neuron_type": spec["neuron_type"] if spec else None,
            "model_name": (spec.get("model_name") or None) if spec else None,
            "model_fingerprint": spec["model_fingerprint"] if spec else None,
            "spec_fingerprint": SignatureSpec.from_dict(spec).fingerprint() if spec else None,
            "profile_fingerprints": [p.get("fingerprint") for p in recipe.profiles],
            "shares": recipe.shares,
            "quality_weight": recipe.quality.get("weight") if recipe.quality else None,
        }
    else:
        yaml_extra["nag_selection"] = "unknown"
    card_data = DatasetCardData(
        license=settings["license"],
        pretty_name=settings["pretty_name"],
        source_datasets=list(settings["source_datasets"]) or None,
        task_categories=list(settings["task_categories"]) or None,
        size_categories=[size_category(data["rows"])],
        tags=list(dict.fromkeys([*DEFAULT_TAGS, *settings["tags"]])),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*"}]}],
        **yaml_extra,
    )
    tokens = summary["tokens"]
    tokens_text = None
    if tokens is not None:
        tokens_text = f"{tokens:,} tokens" if summary["tokens_exact"] else f"at most {tokens:,} tokens"
    pool_text = achieved_text = excluded_text = None
    if summary["pool_tokens"] is not None:
        pool_text = f"{_int(summary['pool_documents'])} documents, {_int(summary['pool_tokens'])} tokens"
        if tokens is not None and summary["pool_tokens"]:
            achieved_text = _pct(tokens / summary["pool_tokens"])
            if not summary["tokens_exact"]:
                achieved_text = "at most " + achieved_text
        if summary.get("null_rows"):
            excluded_text = f"{_int(summary['null_rows'])} rows, {_int(summary['null_tokens'])} tokens"
    sources = None
    if data["sources"] is not None:
        total_docs = data["rows"] or 1
        total_tokens = sum(s[2] for s in data["sources"]) or 1
        shown = data["sources"][:_MAX_SOURCES]
        rest = data["sources"][_MAX_SOURCES:]
        if rest:
            shown = [*shown, [f"({len(rest)} other values)", sum(s[1] for s in rest), sum(s[2] for s in rest)]]
        sources = [{"name": _cell(name), "documents": f"{d:,}", "document_share": f"{d / total_docs:.3f}",
                    "tokens": f"{t:,}", "token_share": f"{t / total_tokens:.3f}"} for name, d, t in shown]
    library_code = cli_code = ""
    if recipe is not None:
        library_code, cli_code = _reproduce(recipe, settings["token_column"] or "num_tokens",
                                             settings["license"])
    context = {
        "title": settings["pretty_name"] or ("NAG-selected subset" if recipe is not None else
                                             "Dataset exported with nag-datasets (no selection recipe)"),
        "license": settings["license"],
        "source_datasets": settings["source_datasets"],
        "export_version": meta.get("library_version", __version__),
        "recipe": recipe,
        "documents": f"{data['rows']:,}",
        "tokens_text": tokens_text,
        "pool_text": pool_text,
        "achieved_text": achieved_text,
        "excluded_text": excluded_text,
        "num_shards": data["shards"],
        "warnings": summary["warnings"],
        "sources": sources,
        "sources_have_tokens": bool(settings["token_column"]),
        "source_column": settings["source_column"],
        "signature_columns": meta.get("signature_columns", []),
        "figure": FIGURE_FILE,
        "score_text": _score_text(hist),
        "repo_hint": settings.get("repo_id") or "REPO_ID",
        "library_code": library_code,
        "cli_code": cli_code,
    }
    if recipe is not None:
        context.update({
            "rule_text": _rule_text(recipe),
            "kind_text": _kind_text(recipe),
            "fraction": _pct(recipe.fraction),
            "method_text": _method_text(recipe),
            "quality": recipe.quality,
            "score_column": recipe.score_column,
            "higher_is_better": recipe.higher_is_better,
            "dedup": recipe.dedup,
            "created": recipe.created,
            "recipe_version": recipe.library_version,
            "spec_rows": _spec_rows(spec) if spec else [],
            "spec_fingerprint": SignatureSpec.from_dict(spec).fingerprint() if spec else "",
            "targets": _targets(recipe),
        })
    return _render(SUBSET_TEMPLATE, card_data, context)


def _write_card_files(folder: Path, meta: dict[str, Any]) -> None:
    data = _data_stats(folder, meta["card"]["source_column"], meta["card"]["token_column"])
    atomic_write_bytes(folder / FIGURE_FILE, _figure_png(meta["score_histogram"]))
    atomic_write_text(folder / CARD_FILE, _subset_card(meta, data))


def _check_settings(selected: Any, settings: dict[str, Any]) -> None:
    for key in ("source_column", "token_column"):
        name = settings[key]
        if name and name not in selected.column_names:
            raise KeyError(f"{key}={name!r} is not a column of the selection; columns: {selected.column_names}")
    if not isinstance(settings["license"], str) or not settings["license"].strip():
        raise ValueError("license must be a Hub license id such as 'cc-by-4.0', or 'unknown'")


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def export_for_hub(
    selected: Any,
    folder: str | os.PathLike[str],
    *,
    license: str = "unknown",
    source_datasets: str | Sequence[str] = (),
    pretty_name: str | None = None,
    source_column: str | None = None,
    token_column: str | None = None,
    pool_scores: Any = None,
    scores: Any = None,
    profile: NAGProfile | Sequence[NAGProfile] | None = None,
    task_categories: str | Sequence[str] = ("text-generation",),
    tags: str | Sequence[str] = (),
    repo_id: str | None = None,
    overwrite: bool = False,
    max_shard_rows: int = DEFAULT_MAX_SHARD_ROWS,
) -> Path:
    """Write ``selected`` as a Hub-ready dataset folder; returns ``folder``.

    ``folder`` receives ``data/train-0000i-of-0000N.parquet`` (rows, order and features as in ``selected``, spec and
    recipe included), ``nag_recipe.json``, ``score_distribution.png`` and ``README.md``. The folder is built beside
    the target and renamed into place, under a lock: a concurrent export of the same folder is refused, and an
    interrupted one leaves nothing behind. A non-empty ``folder`` is refused unless ``overwrite``, and even then
    only when it is a previous export.

    ``license`` is the source data's license as a Hub id (``"unknown"`` is stated as such on the card);
    ``source_column`` adds per-source shares, ``token_column`` exact token counts (else the recipe's totals).
    The figure shows the selection's scores: ``scores`` (one per row), or ``profile`` (one, or one per target of a
    multi-target recipe) scoring the signature column, or the recipe's score column / ``nag_similarity`` if kept;
    ``pool_scores`` adds the pool's distribution. ``repo_id`` only fills the card's loading example.
    """
    if max_shard_rows < 1:
        raise ValueError(f"max_shard_rows must be >= 1, got {max_shard_rows}")
    if len(selected) == 0:
        raise ValueError("the selection is empty: there is nothing to publish (datasets cannot load an empty split)")
    _require_matplotlib()
    settings = {
        "license": license,
        "source_datasets": _as_list(source_datasets),
        "pretty_name": pretty_name,
        "source_column": source_column,
        "token_column": token_column,
        "task_categories": _as_list(task_categories),
        "tags": _as_list(tags),
        "repo_id": repo_id,
    }
    _check_settings(selected, settings)
    recipe = get_recipe(selected)
    sel_scores, origin = _selection_scores(selected, recipe, scores, profile)
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "library_version": __version__,
        "recipe": recipe.to_dict() if recipe else None,
        "rows": len(selected),
        "signature_columns": sorted(signature_columns(selected)),
        "card": settings,
        "score_histogram": _histogram(sel_scores, pool_scores, recipe, origin),
    }
    folder = Path(folder)
    num_shards = max(1, math.ceil(len(selected) / max_shard_rows))
    with lock_dir(folder):
        _check_target(folder, overwrite)
        with atomic_dir(folder) as tmp:
            (tmp / DATA_DIR).mkdir()
            for i in range(num_shards):
                shard = selected.shard(num_shards, i, contiguous=True)
                shard.to_parquet(str(tmp / DATA_DIR / f"train-{i:05d}-of-{num_shards:05d}.parquet"))
            (tmp / RECIPE_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n")
            _write_card_files(tmp, meta)
    logger.info("exported %d rows in %d shard(s) to %s", len(selected), num_shards, folder)
    return folder


def _check_target(folder: Path, overwrite: bool) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        return
    check_replaceable(folder, overwrite=overwrite, marker=RECIPE_FILE, what="export",
                      ours=(DATA_DIR, CARD_FILE, FIGURE_FILE, RECIPE_FILE).__contains__)


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / RECIPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a nag_datasets export: {RECIPE_FILE} is missing")
    meta = read_versioned_json(path, fmt=EXPORT_FORMAT, version=EXPORT_FORMAT_VERSION, error=RecipeError,
                               what="export description")
    bad = [k for k in ("card", "score_histogram") if not isinstance(meta.get(k), dict)]
    if bad:
        raise RecipeError(f"{path} lacks or has malformed {', '.join(bad)}")
    if meta.get("recipe") is not None:
        try:
            SelectionRecipe.from_dict(meta["recipe"])
        except RecipeError as e:
            raise RecipeError(f"{path}: {e}") from None
    return meta


def regenerate_card(folder: str | os.PathLike[str], **settings: Any) -> Path:
    """Rebuild ``README.md`` and the figure of an export from its ``nag_recipe.json`` and data; returns the card path.

    ``settings`` (any of ``license``, ``source_datasets``, ``pretty_name``, ``source_column``, ``token_column``,
    ``task_categories``, ``tags``, ``repo_id``) replace the stored ones and are saved back to ``nag_recipe.json``.
    """
    folder = Path(folder)
    unknown = sorted(set(settings) - set(CARD_SETTINGS))
    if unknown:
        raise TypeError(f"unknown card setting(s) {unknown}; known: {', '.join(CARD_SETTINGS)}")
    with lock_dir(folder):
        meta = _read_meta(folder)
        if settings:
            for key in ("source_datasets", "task_categories", "tags"):
                if key in settings:
                    settings[key] = _as_list(settings[key])
            meta["card"] = {**meta["card"], **settings}
            atomic_write_text(folder / RECIPE_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        _require_matplotlib()
        _write_card_files(folder, meta)
    return folder / CARD_FILE


# -- the Hub -----------------------------------------------------------------------------------------------------


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.is_offline_mode() or flag.upper() in ("1", "ON", "YES", "TRUE")


def _resolve_token(token: str | None, folder: Path) -> str:
    """The token to use (argument, else huggingface_hub's usual sources); a clear error when there is none."""
    if _hub_offline():
        raise HubPublishError(f"the Hub is offline (HF_HUB_OFFLINE is set); nothing was uploaded. The local export is "
                              f"complete at {folder}: unset HF_HUB_OFFLINE and upload it again.", folder)
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise HubPublishError(f"not logged in to the Hub (no token argument, HF_TOKEN or saved login); nothing was "
                              f"uploaded. The local export is complete at {folder}: run `hf auth login` and upload "
                              "it again.", folder)
    return token


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a Hub call raises when it cannot be done: HTTP and transport errors, offline mode, invalid ids."""
    from huggingface_hub.errors import HTTPError

    return (HTTPError, OSError, ValueError)


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _upload(folder: Path, repo_id: str, *, token: str, private: bool, what: str, data_patterns: list[str]) -> str:
    """Create the repo if needed, upload everything but the card, then the card (so nothing rewrites its body)."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo_id, token=token, private=private, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", token=token,
                          ignore_patterns=[CARD_FILE], delete_patterns=data_patterns,
                          commit_message=f"Upload {what} (nag-datasets {__version__})")
        api.upload_file(path_or_fileobj=str(folder / CARD_FILE), path_in_repo=CARD_FILE, repo_id=repo_id,
                        repo_type="dataset", token=token, commit_message="Upload the card")
    except _hub_errors() as e:
        message = _scrub(f"{type(e).__name__}: {e}", token)
        raise HubPublishError(f"uploading {what} to {repo_id} failed ({message}). The local export is complete at "
                              f"{folder}.", folder) from None
    return str(getattr(url, "url", url))


def push_to_hub(
    selected: Any,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    **export_kwargs: Any,
) -> str:
    """Export ``selected`` (see :func:`export_for_hub`), then upload it as the dataset repo ``repo_id``; returns its URL.

    The data, recipe and figure are uploaded first and ``README.md`` last, in separate commits. New repos are private
    unless ``private=False`` (an existing repo keeps its visibility). ``token`` defaults to huggingface_hub's usual
    sources (``HF_TOKEN``, the saved login) and is never printed or written. Without ``folder`` the export goes to a
    temporary folder, removed after a successful upload. Offline, unauthenticated or refused uploads raise
    :class:`HubPublishError` after the export, naming the local folder.
    """
    own = folder is None
    target = Path(tempfile.mkdtemp(prefix="nag-export-")) / "export" if own else Path(folder)
    export_kwargs.setdefault("repo_id", repo_id)
    export_for_hub(selected, target, **export_kwargs)
    token = _resolve_token(token, target)
    url = _upload(target, repo_id, token=token, private=private, what="the NAG selection",
                  data_patterns=[f"{DATA_DIR}/*"])
    logger.info("uploaded %s to %s (private=%s)", target, repo_id, private)
    if own:
        shutil.rmtree(target.parent, ignore_errors=True)
    return url


# -- profiles ----------------------------------------------------------------------------------------------------


def _top_neurons(profile: NAGProfile, count: int = 10) -> tuple[int, list[dict[str, str]]]:
    layer = profile.spec.num_layers - 1
    row = profile.weights[layer]
    order = np.argsort(-row, kind="stable")[:count]
    return profile.spec.layers[layer], [{"neuron": str(int(k)), "share": f"{row[k]:.3f}"} for k in order if row[k] > 0]


def profile_card(
    profile: NAGProfile,
    folder: str | os.PathLike[str],
    *,
    license: str = "unknown",
    source_datasets: str | Sequence[str] = (),
    pretty_name: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write a ``README.md`` card into the profile folder ``folder`` (saving ``profile`` there first if it is absent).

    A folder holding a different profile is refused. Returns the card's path.
    """
    from huggingface_hub import DatasetCardData

    folder = Path(folder)
    if (folder / META_FILE).is_file():
        stored = NAGProfile.load(folder)
        if stored.fingerprint() != profile.fingerprint():
            raise ProfileError(f"{folder} holds profile {stored.fingerprint()}, not {profile.fingerprint()}: "
                               "write the card into the folder the profile was saved to")
    else:
        profile.save(folder)
    spec = profile.spec
    card_data = DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        source_datasets=_as_list(source_datasets) or None,
        tags=[*DEFAULT_TAGS, "nag-profile"],
        viewer=False,
        nag_profile={
            "fingerprint": profile.fingerprint(),
            "spec_fingerprint": spec.fingerprint(),
            "num_targets": profile.num_targets,
            "neuron_type": spec.neuron_type,
            "top_k": spec.top_k,
            "model_name": spec.model_name or None,
            "model_fingerprint": spec.model_fingerprint,
        },
    )
    top_layer, top = _top_neurons(profile)
    context = {
        "title": pretty_name or "NAG target profile",
        "description": _cell(profile.description),
        "license": license,
        "source_datasets": _as_list(source_datasets),
        "num_targets": f"{profile.num_targets:,}",
        "skipped_null": profile.skipped_null,
        "fingerprint": profile.fingerprint(),
        "spec_fingerprint": spec.fingerprint(),
        "spec_rows": _spec_rows(spec.to_dict()),
        "top_k": spec.top_k,
        "num_layers": spec.num_layers,
        "neurons_per_layer": spec.neurons_per_layer,
        "top_layer": top_layer,
        "top_neurons": top,
        "repo_hint": repo_id or "REPO_ID",
    }
    path = folder / CARD_FILE
    atomic_write_text(path, _render(PROFILE_TEMPLATE, card_data, context))
    return path


def push_profile(
    profile: NAGProfile,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    **card_kwargs: Any,
) -> str:
    """Save ``profile`` with its card (see :func:`profile_card`) and upload it as the dataset repo ``repo_id``.

    Same rules as :func:`push_to_hub`: local first, private by default, card last, :class:`HubPublishError` naming
    the local folder when the upload cannot happen. Returns the repo URL.
    """
    own = folder is None
    target = Path(tempfile.mkdtemp(prefix="nag-profile-")) / "profile" if own else Path(folder)
    card_kwargs.setdefault("repo_id", repo_id)
    profile_card(profile, target, **card_kwargs)
    token = _resolve_token(token, target)
    url = _upload(target, repo_id, token=token, private=private, what="the NAG profile",
                  data_patterns=[COUNTS_FILE, META_FILE])
    if own:
        shutil.rmtree(target.parent, ignore_errors=True)
    return url


def load_profile(
    folder_or_repo: str | os.PathLike[str],
    revision: str | None = None,
    *,
    repo_type: str = "dataset",
    token: str | None = None,
) -> NAGProfile:
    """A profile from a local folder (:meth:`NAGProfile.load`) or else a Hub repo (downloaded, cached, then loaded)."""
    path = Path(folder_or_repo)
    if path.is_dir():
        return NAGProfile.load(path)
    if path.exists() or str(folder_or_repo).startswith((".", "/", "~")):
        raise ProfileError(f"{folder_or_repo} is not a profile folder")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(str(folder_or_repo), repo_type=repo_type, revision=revision, token=token,
                                  allow_patterns=[COUNTS_FILE, META_FILE, CARD_FILE])
    except _hub_errors() as e:  # offline without a cached copy, unknown repo, no access
        message = _scrub(f"{type(e).__name__}: {e}", token or "")
        raise ProfileError(f"{folder_or_repo!r} is not a local folder and the Hub {repo_type} repo could not be "
                           f"fetched ({message})") from None
    return NAGProfile.load(local)


# -- command line ------------------------------------------------------------------------------------------------


def _load_input(path: str) -> Any:
    from .io import load_any

    return load_any(path)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _cmd_export(args: argparse.Namespace) -> int:
    _check_target(Path(args.output), args.overwrite)  # before reading anything
    selected = _load_input(args.input)
    profile = NAGProfile.load(args.profile) if args.profile else None
    # An existing or locked output is reported by `cli.main` (one line, exit 1).
    folder = export_for_hub(selected, args.output, license=args.license, source_datasets=args.source_dataset,
                            pretty_name=args.pretty_name, source_column=args.source_column,
                            token_column=args.token_column, profile=profile, overwrite=args.overwrite,
                            max_shard_rows=args.max_shard_rows)
    print(json.dumps({"output": str(folder), "rows": len(selected), "card": str(folder / CARD_FILE)}, indent=1))
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    selected = _load_input(args.input)
    profile = NAGProfile.load(args.profile) if args.profile else None
    try:
        url = push_to_hub(selected, args.repo_id, private=not args.public, folder=args.folder, license=args.license,
                          source_datasets=args.source_dataset, pretty_name=args.pretty_name,
                          source_column=args.source_column, token_column=args.token_column, profile=profile,
                          overwrite=args.overwrite)
    except HubPublishError as e:
        return _fail(str(e))
    print(json.dumps({"repo": url, "private": not args.public}, indent=1))
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    settings = {k: v for k, v in (("license", args.license), ("source_datasets", args.source_dataset or None))
                if v is not None}
    try:
        path = regenerate_card(args.folder, **settings)
    except (FileNotFoundError, RecipeError) as e:
        return _fail(str(e))
    print(json.dumps({"card": str(path)}, indent=1))
    return 0


def _card_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--license", default="unknown", help="the source data's license as a Hub id (default: unknown)")
    p.add_argument("--source-dataset", action="append", default=[], help="a source dataset id (repeatable)")
    p.add_argument("--pretty-name", default=None)
    p.add_argument("--source-column", default=None, help="column naming each row's source (per-source shares)")
    p.add_argument("--token-column", default=None, help="column of token counts (exact token totals)")
    p.add_argument("--profile", default=None, help="profile folder: score the selection for the card's figure")
    p.add_argument("--overwrite", action="store_true", help="replace a previous export in the output folder")


def register_cli(subparsers: Any) -> None:
    """Add the ``export``, ``push`` and ``card`` subcommands to the ``nag-datasets`` parser's ``subparsers``."""
    e = subparsers.add_parser("export", help="write a selection as a Hub-ready folder (parquet, recipe, card)")
    e.add_argument("input", help="the selected dataset (save_to_disk folder, parquet or jsonl)")
    e.add_argument("output", help="the folder to write")
    _card_options(e)
    e.add_argument("--max-shard-rows", type=int, default=DEFAULT_MAX_SHARD_ROWS)
    e.set_defaults(func=_cmd_export)

    p = subparsers.add_parser("push", help="export a selection and upload it to the Hub (private by default)")
    p.add_argument("input", help="the selected dataset (save_to_disk folder, parquet or jsonl)")
    p.add_argument("repo_id")
    p.add_argument("--public", action="store_true", help="create the repo public (default: private)")
    p.add_argument("--folder", default=None, help="where to keep the local export (default: a temporary folder)")
    _card_options(p)
    p.set_defaults(func=_cmd_push)

    c = subparsers.add_parser("card", help="rebuild README.md and the figure of an export from nag_recipe.json")
    c.add_argument("folder")
    c.add_argument("--license", default=None, help="replace the stored license")
    c.add_argument("--source-dataset", action="append", default=None, help="replace the stored source datasets")
    c.set_defaults(func=_cmd_card)
