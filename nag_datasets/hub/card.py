"""The dataset card of an exported selection: data statistics, recipe summary, how to reproduce it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputNotFoundError, MissingColumnError
from ..scoring.fusion import DEFAULT_NAG_WEIGHT
from ..selection.recipe import SelectionRecipe
from ..signatures.spec import SignatureSpec
from ..storage.atomic import atomic_write_bytes, atomic_write_text
from .card_data import ScoredCardData, SelectionCardData, SubsetCardContext
from .configs import (
    DEFAULT_CONFIG,
    config_data_dir,
    local_configs,
    ordered,
    read_config_meta,
    shard_files,
    yaml_configs,
)
from .figure import _figure_png, _score_text
from .reproduce import _reproduce
from .templates import (
    _MAX_SOURCES,
    CARD_FILE,
    DEFAULT_TAGS,
    FIGURE_FILE,
    SUBSET_TEMPLATE,
    _cell,
    _int,
    _pct,
    _render,
    _spec_rows,
    size_category,
)


def _data_stats(folder: Path, config_name: str, source_column: str | None, token_column: str | None) -> dict[str, Any]:
    """Rows, tokens and per-source counts read back from the written shards (only the needed columns)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = shard_files(folder, config_name)
    if not files:
        raise InputNotFoundError(f"{folder / config_data_dir(config_name)} holds no train-*.parquet shards")
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    columns = [c for c in (source_column, token_column) if c]
    schema_names = pq.read_schema(files[0]).names
    missing = [c for c in columns if c not in schema_names]
    if missing:
        raise MissingColumnError(f"column(s) {missing} not in the exported data; columns: {schema_names}")
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


def _contrastive(recipe: SelectionRecipe) -> bool:
    return any(p.get("score_kind") == "contrastive" for p in recipe.profiles)


def signal_text(profile: dict[str, Any]) -> str:
    """Which signal a contrastive profile's summary ranked with, in words (``nag`` for summaries that name none)."""
    signal = profile.get("signal") or "nag"
    emb = profile.get("embedding") or {}
    model = f"{emb.get('model', 'learned')} embedding model, layer {emb.get('layer')}"
    if signal == "hybrid":
        w = float(profile.get("nag_weight", DEFAULT_NAG_WEIGHT))
        return f"hybrid: {w:g} z(NAG) + {1 - w:g} z({model})"
    if signal == "embedding":
        return f"embedding: {model}"
    return "nag: contrastive NAG"


def _contrasts(recipe: SelectionRecipe) -> list[dict[str, str]]:
    """One row per contrastive target profile: its weighting and its background (what, how many, fingerprint)."""
    rows = []
    for i, p in enumerate(recipe.profiles):
        if p.get("score_kind") != "contrastive":
            continue
        w = dict(p.get("weighting") or {})
        name = w.pop("name", "?")
        bg = p.get("background") or {}
        sample = bg.get("sample") or {}
        drawn = (f"uniform sample of {_int(sample.get('sampled'))} of {_int(sample.get('rows_with_signature'))} rows "
                 f"with a signature, seed {sample.get('seed')}" if sample else "all rows given")
        rows.append({"index": str(i), "signal": signal_text(p),
                     "weighting": f"{name}({', '.join(f'{k}={v}' for k, v in w.items())})",
                     "documents": _int(bg.get("num_documents")), "drawn": drawn,
                     "description": _cell(bg.get("description") or ""), "fingerprint": _cell(bg.get("fingerprint"))})
    return rows


def _kind_text(recipe: SelectionRecipe) -> str:
    if recipe.kind == "multi_target":
        return f"multi-target mixture: {len(recipe.reports)} targets, each selecting its own share of the pool"
    if recipe.quality:
        return "one target profile, NAG distance combined with a quality signal"
    if _contrastive(recipe):
        return "top of the pool by contrastive score against one target profile (target vs a background sample)"
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
    if _contrastive(recipe):
        text += (" The contrastive score of a document is the mean, over layers and over its K most activated "
                 "neurons, of per-neuron weights that compare how often the targets' NAGs hold each neuron with how "
                 "often the NAGs of a background sample of the pool do (the weighting and the background are below). "
                 "It is not a similarity: it can be negative, and only its order matters.")
    elif recipe.profiles:
        text += (" The similarity of a document to the targets is the mean over layers of the target-frequency "
                 "weights of its K most activated neurons, divided by K (its mean Dice overlap with the targets' "
                 "NAGs).")
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


def _configs_table(folder: Path, names: list[str]) -> list[dict[str, str]]:
    """One row per config of the repo: name, rows, what it is, where its shards are (unknown: published elsewhere)."""
    local = set(local_configs(folder))
    rows = []
    for name in names:
        meta = read_config_meta(folder, name) if name in local else None
        if meta is None:
            what, count = "(published earlier; see its nag_recipe.json)", "unknown"
        else:
            what = ("NAG selection" if meta.get("recipe") else
                    f"scored pool (column `{meta['scored']['column']}`)" if meta.get("scored") else
                    "rows without recipe")
            count = f"{int(meta['rows']):,}"
        rows.append({"name": name, "rows": count, "what": what, "path": f"{config_data_dir(name)}/"})
    return rows


def _scored_context(scored: dict[str, Any] | None) -> dict[str, Any]:
    if not scored:
        return {"scored": None}
    profile = scored.get("profile") or {}
    return {"scored": {"column": scored["column"], "kind": scored.get("score_kind") or "similarity",
                       "signal": signal_text(profile) if scored.get("score_kind") == "contrastive" else None,
                       "fingerprint": profile.get("fingerprint"),
                       "description": _cell(profile.get("description") or "(no description)")},
            "spec_rows": _spec_rows(scored["spec"]) if scored.get("spec") else [],
            "spec_fingerprint": SignatureSpec.from_dict(scored["spec"]).fingerprint() if scored.get("spec") else ""}


def _subset_card(meta: dict[str, Any], data: dict[str, Any], config_name: str = DEFAULT_CONFIG,
                 configs: list[dict[str, str]] | None = None) -> str:
    """README.md text for an export, from config ``config_name``'s ``nag_recipe.json`` content and the stats of its
    shards; ``configs`` (one row per config of the repo) adds the configs table and the YAML ``configs:`` list."""
    from huggingface_hub import DatasetCardData

    settings = meta["card"]
    recipe = SelectionRecipe.from_dict(meta["recipe"]) if meta.get("recipe") else None
    summary = _recipe_summary(recipe, data)
    hist = meta["score_histogram"]
    spec = recipe.spec if recipe else None
    yaml_extra: dict[str, Any] = {}
    if recipe is not None:
        yaml_extra["nag_selection"] = SelectionCardData.from_recipe(recipe).to_dict()
    elif not meta.get("scored"):
        yaml_extra["nag_selection"] = "unknown"
    if meta.get("scored"):
        yaml_extra["nag_scored"] = ScoredCardData.from_meta(meta["scored"], config_name).to_dict()
    card_data = DatasetCardData(
        license=settings["license"],
        pretty_name=settings["pretty_name"],
        source_datasets=list(settings["source_datasets"]) or None,
        task_categories=list(settings["task_categories"]) or None,
        size_categories=[size_category(data["rows"])],
        tags=list(dict.fromkeys([*DEFAULT_TAGS, *settings["tags"]])),
        configs=yaml_configs([c["name"] for c in configs] if configs else [config_name]),
        language=list(settings.get("language") or []) or None,
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
    recipe_fields: dict[str, Any] = {}
    if recipe is not None:
        recipe_fields = {
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
            "contrasts": _contrasts(recipe),
        }
    prefix = "" if config_name == DEFAULT_CONFIG else config_name + "/"
    context = SubsetCardContext(
        title=settings["pretty_name"] or ("NAG-selected subset" if recipe is not None else "NAG-scored pool"
                                          if meta.get("scored") else
                                          "Dataset exported with nag-datasets (no selection recipe)"),
        config_name=config_name,
        data_dir=config_data_dir(config_name),
        recipe_path=f"{prefix}nag_recipe.json",
        configs=configs if configs and len(configs) > 1 else None,
        license=settings["license"],
        source_datasets=settings["source_datasets"],
        export_version=meta.get("library_version", __version__),
        recipe=recipe,
        documents=f"{data['rows']:,}",
        tokens_text=tokens_text,
        pool_text=pool_text,
        achieved_text=achieved_text,
        excluded_text=excluded_text,
        num_shards=data["shards"],
        warnings=summary["warnings"],
        sources=sources,
        sources_have_tokens=bool(settings["token_column"]),
        token_column=settings["token_column"] or "num_tokens",
        source_column=settings["source_column"],
        signature_columns=meta.get("signature_columns", []),
        figure=f"{prefix}{FIGURE_FILE}",
        score_text=_score_text(hist).replace("Selected documents", "Documents" if meta.get("scored") else
                                             "Selected documents", 1),
        repo_hint=settings.get("repo_id") or "REPO_ID",
        library_code=library_code,
        cli_code=cli_code,
        **{**_scored_context(meta.get("scored")), **recipe_fields},
    )
    return _render(SUBSET_TEMPLATE, card_data, context.to_dict())


def write_figure(root: Path, meta: dict[str, Any]) -> None:
    """The score figure of the config whose ``nag_recipe.json`` content is ``meta``, into that config's ``root``."""
    atomic_write_bytes(root / FIGURE_FILE, _figure_png(meta["score_histogram"]))


def write_card(folder: Path, config_name: str = DEFAULT_CONFIG, repo_configs: Any = ()) -> None:
    """``README.md`` of an export folder: config ``config_name`` described, every config (the folder's and
    ``repo_configs``, those published elsewhere in the repo) listed and in the YAML."""
    folder = Path(folder)
    meta = read_config_meta(folder, config_name)
    data = _data_stats(folder, config_name, meta["card"]["source_column"], meta["card"]["token_column"])
    names = ordered([*local_configs(folder), *repo_configs, config_name])
    atomic_write_text(folder / CARD_FILE, _subset_card(meta, data, config_name, _configs_table(folder, names)))
