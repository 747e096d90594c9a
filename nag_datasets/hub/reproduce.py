"""How to redo a selection: library code and CLI commands that reproduce a recipe from the same pool (for the card)."""

from __future__ import annotations

from typing import Any

from ..selection.budgeted import DEFAULT_SAMPLE_SIZE
from ..selection.recipe import SelectionRecipe


def _py_args(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _embedding_choice(recipe: SelectionRecipe) -> str | int | None:
    """The featurizer's ``embedding=`` a recipe's profiles need (None when none scores with embeddings)."""
    for p in recipe.profiles:
        emb = p.get("embedding") if isinstance(p, dict) else None
        if emb:
            return emb.get("layer_name") or emb.get("layer")
    return None


def _reproduce(recipe: SelectionRecipe, token_column: str, license: str) -> tuple[str, str]:
    """Library code and CLI commands that redo the selection from the same pool (CLI only where it can)."""
    from ..featurize.models import BUNDLED_NAME

    spec = recipe.spec
    lines = ["from datasets import load_dataset"]
    if spec:
        lines.append("from nag_datasets.featurize.featurizer import NAGFeaturizer")
    if recipe.profiles:
        lines.append("from nag_datasets.scoring.target_profile import NAGProfile")
    fn = "select_multi_target" if recipe.kind == "multi_target" else "select_top_fraction"
    imports = [fn] + (["combine_with_quality"] if recipe.quality else [])
    lines += [f"from nag_datasets import {', '.join(imports)}", ""]
    lines.append(
        f'POOL = "POOL"  # your pool: a Hub dataset id or local folder with a text column and {token_column!r}'
    )
    if recipe.kind != "multi_target" and recipe.profiles:
        lines.append('PROFILE_DIR = "PROFILE_DIR"  # the target profile with the fingerprint above')
    lines.append('pool = load_dataset(POOL, split="train")')
    bundled = (
        bool(spec)
        and spec.get("model_name") == BUNDLED_NAME
        and str(spec.get("model_fingerprint", "")).startswith("gguf-sha256:")
    )
    embedding = _embedding_choice(recipe)
    if spec:
        feat = {
            "neuron_types": [spec["neuron_type"]],
            "top_k": spec["top_k"],
            "max_length": spec["max_length"],
            "layers": list(spec["layers"]),
            "add_special_tokens": spec["add_special_tokens"],
        }
        if spec.get("dtype"):
            feat["dtype"] = spec["dtype"]
        if embedding is not None:
            feat["embedding"] = embedding
        if bundled:  # the bundled model is the default: no name to give
            lines.append(f"featurizer = NAGFeaturizer({_py_args(feat)})  # bundled {BUNDLED_NAME}")
        elif spec.get("model_name"):
            lines.append(f"featurizer = NAGFeaturizer({spec['model_name']!r}, {_py_args(feat)})")
        else:
            lines.append(
                f'MODEL = "MODEL"  # a folder or Hub id of the model with weights fingerprint '
                f"{spec['model_fingerprint']}"
            )
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
        lines.append(
            f"pool = combine_with_quality(pool, profile, {recipe.quality['column']!r}, "
            f"weight={recipe.quality['weight']!r}, out_column={column!r})"
        )
        args = {"token_column": token_column, "score_column": column, **method}
        lines.append(f"selected = select_top_fraction(pool, {recipe.fraction!r}, {_py_args(args)})")
    elif recipe.profiles:
        lines.append(f"profile = NAGProfile.load(PROFILE_DIR)  # fingerprint {recipe.profiles[0]['fingerprint']}")
        args = {"token_column": token_column, "profile": "PROFILE", **method}
        code = _py_args(args).replace("'PROFILE'", "profile")
        lines.append(f"selected = select_top_fraction(pool, {recipe.fraction!r}, {code})")
    else:
        args = {
            "token_column": token_column,
            "score_column": recipe.score_column,
            "higher_is_better": recipe.higher_is_better,
            **method,
        }
        lines.append(f"selected = select_top_fraction(pool, {recipe.fraction!r}, {_py_args(args)})")
    library = "\n".join(lines)

    if recipe.kind != "top_fraction" or recipe.quality or not recipe.profiles or not spec:
        return library, ""
    if recipe.method == "sampled" and method.get("sample_size") != DEFAULT_SAMPLE_SIZE:
        return library, ""
    model = "" if bundled else f"--model {spec.get('model_name') or 'MODEL'} "
    featurize = (
        f"{model}--neuron-types {spec['neuron_type']} --top-k {spec['top_k']} "
        f"--max-length {spec['max_length']} --layers {','.join(map(str, spec['layers']))}"
    )
    if spec.get("dtype"):
        featurize += f" --dtype {spec['dtype']}"
    if embedding is not None:
        featurize += f" --embedding {embedding}"
    select = f"--fraction {recipe.fraction!r} --token-column {token_column} --method {recipe.method}"
    if recipe.method == "sampled":
        select += f" --seed {method.get('seed')}"
    profile_line = "nag-datasets profile target_nag PROFILE_DIR  # or download the published profile"
    contrast = recipe.profiles[0] if recipe.profiles[0].get("score_kind") == "contrastive" else None
    if contrast is not None:
        w = dict(contrast.get("weighting") or {})
        flags = f"--weighting {w.pop('name', 'shrinkage')}" + "".join(f" --{k} {v!r}" for k, v in w.items())
        sample = (contrast.get("background") or {}).get("sample") or {}
        signal = contrast.get("signal") or "nag"
        flags += f" --signal {signal}"
        if signal == "hybrid" and contrast.get("nag_weight") is not None:
            flags += f" --nag-weight {contrast['nag_weight']!r}"
        model = (contrast.get("embedding") or {}).get("model")
        if signal != "nag" and model and model != "learned":
            flags += f" --embedding-model {model}"
        if sample:
            flags += f" --background-sample {sample.get('size')} --background-seed {sample.get('seed')}"
        profile_line = (
            f"nag-datasets profile target_nag PROFILE_DIR --background pool_nag {flags}"
            "  # or download the published profile"
        )
    cli = "\n".join(
        [
            f"nag-datasets featurize TARGET target_nag {featurize}",
            f"nag-datasets featurize POOL pool_nag {featurize}",
            profile_line,
            f"nag-datasets select pool_nag selected --profile PROFILE_DIR {select}",
            f"nag-datasets export selected EXPORT_DIR --license {license}",
        ]
    )
    return library, cli
