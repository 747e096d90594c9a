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
EMBEDDING_CENTROID = "Embedding last-layer centroid"
CONTRASTIVE_EMBEDDING = "Contrastive embedding last-layer (centroid - background mean)"
CENTRED_EMBEDDING = "Contrastive embedding last-layer, centred cosine"
#: What issue 13 asks of the contrastive default (mean AP margin over the embedding centroid, on both tasks).
REQUIRED_MARGIN = 0.05
#: What issue 23 asks of the shipped default: not below the strongest non-NAG method (mean AP, both tasks, all
#: targets and the fewest targets per class); the goal is this margin on each.
GOAL_MARGIN = 0.02
#: Families that do not use NAG signatures (the "non-NAG" methods of issue 23's check; random aside).
NON_NAG = ("embedding", "contrastive_embedding", "centred_embedding", "tfidf", "dsir")
#: Families tabulated by their best variants only.
GRID_FAMILIES = ("contrastive", "fusion_zsum", "fusion_rrf", "fusion_zsum_learned")
_TASK_SHORT = {"mmlu_domains": "MMLU", "gcide_fields": "GCIDE"}


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def _short(task: str) -> str:
    return _TASK_SHORT.get(task, task)


def _default_nag(results: dict[str, Any]) -> str:
    return f"{DEFAULT_NAG_PREFIX}{results['config']['top_k']}"


def _family(results: dict[str, Any], name: str) -> str:
    return next(iter(results["tasks"].values()))["per_method"][name]["family"]


def _ap(results: dict[str, Any], task: str, name: str) -> float:
    return results["tasks"][task]["per_method"][name]["mean"]["ap"]


def _mean_ap(results: dict[str, Any], name: str) -> float:
    return float(np.mean([_ap(results, t, name) for t in results["tasks"]]))


def _best_of(results: dict[str, Any], family: str) -> str | None:
    names = [m for m in results["methods"] if _family(results, m) == family]
    return max(names, key=lambda m: _mean_ap(results, m)) if names else None


def _contrastive_default(results: dict[str, Any]) -> str | None:
    d = results.get("contrastive_default")
    return d if d in results["methods"] else None


def _shipped_default(results: dict[str, Any]) -> str | None:
    """The selection rule's pick among shippable variants (``results["default"]``)."""
    d = results.get("default")
    return d if d in results["methods"] else None


def _best_per_type(results: dict[str, Any]) -> list[str]:
    """The best contrastive variant (mean AP over tasks) of each neuron-type setting."""
    best: dict[str, str] = {}
    for m in results["methods"]:
        if _family(results, m) != "contrastive":
            continue
        types = "+".join(next(iter(results["tasks"].values()))["per_method"][m]["options"]["types"])
        if types not in best or _mean_ap(results, m) > _mean_ap(results, best[types]):
            best[types] = m
    return list(best.values())


def _shown(results: dict[str, Any]) -> list[str]:
    """Methods of the per-task tables and plots: all but the grids (contrastive, z-sum and RRF fusions), of which
    the defaults, the best contrastive variant of each neuron-type setting and the best fusion of each kind."""
    keep = set(_best_per_type(results))
    keep |= {m for m in (_best_of(results, f) for f in GRID_FAMILIES[1:]) if m}
    firsts = [m for m in (_shipped_default(results), _contrastive_default(results)) if m]
    keep |= set(firsts)
    out = [m for m in results["methods"] if _family(results, m) not in GRID_FAMILIES or m in keep]
    for m in firsts:
        out.remove(m)
    first_other = next((i for i, m in enumerate(out) if _family(results, m) != "nag"), len(out))
    return out[:first_other] + list(dict.fromkeys(firsts)) + out[first_other:]


def _robust(results: dict[str, Any], task: str, kind: str, name: str) -> dict[str, Any] | None:
    rob = results["tasks"][task].get("robustness")
    if not rob:
        return None
    return rob[kind]["methods"].get(name)


def _rivals(results: dict[str, Any]) -> list[str]:
    """The default and its rivals in the sensitivity tables."""
    learned_emb = [m for m in results["methods"] if _family(results, m) == "learned" and is_non_nag(results, m)]
    names = [_shipped_default(results), _contrastive_default(results), *_centred(results), *learned_emb,
             CONTRASTIVE_EMBEDDING, CENTRED_EMBEDDING, EMBEDDING_CENTROID, "Embedding last-layer max",
             _default_nag(results)]
    names += [m for m in results["methods"] if _family(results, m) == "nag" and m.startswith("NAG att_o all-layers")]
    return [m for m in dict.fromkeys(names) if m and m in results["methods"]]


def _centred(results: dict[str, Any]) -> list[str]:
    return [m for m in results["methods"] if _family(results, m) == "centred_embedding"]


def main_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, method) rows of the main table: the shipped default, the previous contrastive default, the best of
    every family (mean AP over tasks), and the references the acceptance checks name (embedding centroid, the
    paper's default)."""
    rows: list[tuple[str, str]] = []
    sd = _shipped_default(results)
    if sd:
        rows.append(("shipped default (selection rule)", sd))
    d = _contrastive_default(results)
    if d:
        rows.append(("contrastive NAG, issue 13's default", d))
    labels = {"contrastive": "contrastive NAG, best variant", "fusion_zsum": "z-sum fusion, best",
              "fusion_rrf": "RRF fusion, best", "fusion_zsum_learned": "z-sum with the learned embedding, best", "learned": "learned (logistic regression), best",
              "nag": "paper NAG profile, best variant", "centred_embedding": "centred contrastive embedding, best",
              "embedding": "embedding (same model), best", "contrastive_embedding": "contrastive embedding, best",
              "tfidf": "TF-IDF, best", "dsir": "DSIR, best", "random": "random"}
    for fam, label in labels.items():
        best = _best_of(results, fam)
        if best:
            rows.append((label, best))
        if fam == "nag" and _default_nag(results) in results["methods"] and best != _default_nag(results):
            rows.append(("paper NAG profile, paper default", _default_nag(results)))
        if fam == "embedding" and EMBEDDING_CENTROID in results["methods"] and best != EMBEDDING_CENTROID:
            rows.append(("embedding centroid (BETR-style)", EMBEDDING_CENTROID))
        if fam == "contrastive_embedding" and CONTRASTIVE_EMBEDDING in results["methods"] \
                and best != CONTRASTIVE_EMBEDDING:
            rows.append(("contrastive embedding (issue 13's definition)", CONTRASTIVE_EMBEDDING))
    return rows


def acceptance(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's three checks on the contrastive default, each with its numbers and whether it is met."""
    d = _contrastive_default(results)
    if not d or EMBEDDING_CENTROID not in results["methods"]:
        return []
    ce = CONTRASTIVE_EMBEDDING
    tasks = list(results["tasks"])
    out = []
    margins = {t: _ap(results, t, d) - _ap(results, t, EMBEDDING_CENTROID) for t in tasks}
    out.append({"check": f"default beats the embedding centroid by >= {REQUIRED_MARGIN} mean AP on both tasks",
                "values": margins, "met": all(v >= REQUIRED_MARGIN for v in margins.values())})
    if ce in results["methods"]:
        diff = {t: _ap(results, t, d) - _ap(results, t, ce) for t in tasks}
        out.append({"check": "default is not below the contrastive embedding (mean AP)", "values": diff,
                    "met": all(v >= 0 for v in diff.values())})
    few = {}
    for t in tasks:
        rd, re_ = _robust(results, t, "targets", d), _robust(results, t, "targets", EMBEDDING_CENTROID)
        if rd and re_:
            few[t] = rd["ap_mean"][0] - re_["ap_mean"][0]
    if few:
        n = results["tasks"][tasks[0]]["robustness"]["targets"]["sizes"][0]
        out.append({"check": f"with {n} targets per class the default is not below the embedding centroid",
                    "values": few, "met": all(v >= 0 for v in few.values())})
    return out


def _background_index(results: dict[str, Any], task: str) -> int | None:
    rob = results["tasks"][task].get("robustness")
    if not rob:
        return None
    sizes = rob["background"]["sizes"]
    want = results["config"].get("selection_background", 50)
    return min(range(len(sizes)), key=lambda i: (abs(sizes[i] - want), sizes[i]))


#: The three conditions of the selection criterion: all targets; the fewest targets per class; the small background.
CONDITIONS = ("all", "few", "background")


def condition_label(results: dict[str, Any], cond: str) -> str:
    first = next(iter(results["tasks"]))
    rob = results["tasks"][first].get("robustness")
    if cond == "all":
        n = results["config"]["tasks"][0]["n_target"]
        return f"{n} targets"
    if cond == "few":
        return f"{rob['targets']['sizes'][0]} targets"
    return f"{rob['background']['sizes'][_background_index(results, first)]}-row bg"


def condition_value(results: dict[str, Any], task: str, name: str, cond: str, cls: str | None = None) -> float | None:
    """Mean AP over classes (or one class's AP) of a method in one condition; None where it was not studied."""
    if cond == "all":
        v = results["tasks"][task]["per_method"][name]
        return v["mean"]["ap"] if cls is None else v["per_class"][cls]["ap"]
    kind = "targets" if cond == "few" else "background"
    r = _robust(results, task, kind, name)
    if cond == "background" and r is None and _family(results, name) in ("embedding", "tfidf", "dsir", "nag"):
        return condition_value(results, task, name, "all", cls)  # no background: the same AP with any
    if r is None:
        return None
    i = 0 if cond == "few" else _background_index(results, task)
    return r["ap_mean"][i] if cls is None else r["per_class"][cls][i]


def strongest_non_nag(results: dict[str, Any], task: str, cond: str) -> tuple[str, float] | None:
    """The non-NAG method (:func:`is_non_nag`) with the highest mean AP in one task and condition."""
    vals = [(m, condition_value(results, task, m, cond)) for m in results["methods"] if is_non_nag(results, m)]
    vals = [(m, v) for m, v in vals if v is not None]
    return max(vals, key=lambda x: x[1]) if vals else None


def issue23_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 23's checks on the shipped default, on both tasks, with all targets and with the fewest targets per
    class: not below the strongest non-NAG method (:func:`is_non_nag`, learned embedding models included), and not
    below the issue's named reference, the best centred contrastive embedding (margins per task; the goal is
    +:data:`GOAL_MARGIN`)."""
    d = _shipped_default(results)
    if not d:
        return []
    centred = _by_criterion(results, _centred(results)) or (_centred(results) or [None])[0]
    refs: dict[str, Any] = {"the strongest non-NAG method": lambda t, c: strongest_non_nag(results, t, c)}
    if centred:
        refs["the centred contrastive embedding"] = lambda t, c: (centred, condition_value(results, t, centred, c))
    out = []
    for label, ref_of in refs.items():
        for cond in ("all", "few"):
            vals, used = {}, {}
            for t in results["tasks"]:
                ref = ref_of(t, cond)
                v = condition_value(results, t, d, cond)
                if ref is None or ref[1] is None or v is None:
                    continue
                vals[t], used[t] = v - ref[1], list(ref)
            if vals:
                out.append({"check": f"shipped default not below {label}, {condition_label(results, cond)}",
                            "reference": label, "condition": cond, "values": vals, "references": used,
                            "met": all(v >= 0 for v in vals.values()),
                            "goal_met": all(v >= GOAL_MARGIN for v in vals.values())})
    return out


def _by_criterion(results: dict[str, Any], names: list[str]) -> str | None:
    table = (results.get("selection") or {}).get("table", {})
    names = [n for n in names if n in table]
    return max(names, key=lambda n: table[n]["all"]) if names else None


def lead_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, method) rows of the leading table: the shipped default, then the strongest single-signal method of
    each kind by the selection criterion (contrastive NAG, shippable and any; the centred embedding)."""
    sel = results.get("selection") or {}
    ship = set(sel.get("shippable", []))
    contrastive = [m for m in results["methods"] if _family(results, m) == "contrastive"]
    rows = [("shipped default", _shipped_default(results)),
            ("strongest contrastive NAG, one neuron type (shippable)", _by_criterion(results, [m for m in contrastive
                                                                                           if m in ship])),
            ("strongest contrastive NAG, any (two types: reference)", _by_criterion(results, contrastive)),
            ("issue 13's contrastive default", _contrastive_default(results)),
            ("strongest centred contrastive embedding", _by_criterion(results, _centred(results))),
            ("strongest learned model on the embedding alone (non-NAG)", _by_criterion(
                results, [m for m in results["methods"] if _family(results, m) == "learned" and is_non_nag(results, m)]))]
    return [(r, m) for r, m in rows if m]


def _lead_section(results: dict[str, Any]) -> list[str]:
    d = _shipped_default(results)
    sel = results.get("selection")
    if not d or not sel:
        return []
    tasks = list(results["tasks"])
    conds = [c for c in CONDITIONS if condition_value(results, tasks[0], d, c) is not None]
    head = ["Role", "Method"] + [f"{_short(t)}, {condition_label(results, c)}" for c in conds for t in tasks] + \
        ["criterion"]
    out = [(f"The selection rule's pick among shippable variants is **{d}**. Mean AP over classes in each condition "
           "(the fewest targets and the small background: mean over draws); criterion = the rule's mean of the three."),
           "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role, m in lead_rows(results):
        cells = [role, m] + [_fmt(condition_value(results, t, m, c)) for c in conds for t in tasks] + \
            [_fmt(sel["table"][m]["all"]) if m in sel["table"] else ""]
        if m == d:
            cells = [f"**{x}**" for x in cells]
        out.append("| " + " | ".join(cells) + " |")
    cells = ["strongest non-NAG method (per cell)", ""]
    for c in conds:
        for t in tasks:
            ref = strongest_non_nag(results, t, c)
            cells.append(f"{_fmt(ref[1])} ({ref[0]})" if ref else "")
    out.append("| " + " | ".join(cells + [""]) + " |")
    out.append("")
    for chk in issue23_checks(results):
        vals = ", ".join(f"{_short(t)} {v:+.3f}" for t, v in chk["values"].items())
        out.append(f"- Check: {chk['check']}: {vals} -> **{'met' if chk['met'] else 'NOT met'}**; goal "
                   f"+{GOAL_MARGIN} on each: **{'met' if chk['goal_met'] else 'not met'}**.")
    return out


#: Columns of the per-class table: (key, role in :func:`lead_rows`).
_PER_CLASS_REFS = (("N", "strongest contrastive NAG, any (two types: reference)"),
                   ("E", "strongest centred contrastive embedding"),
                   ("L", "strongest learned model on the embedding alone (non-NAG)"))


def per_class_rows(results: dict[str, Any], task: str, cond: str) -> list[dict[str, Any]]:
    """Per class: the shipped default's AP (``D``) against the strongest contrastive NAG (``N``), centred embedding
    (``E``) and learned model on the embedding alone (``L``), by the criterion, in one condition."""
    d = _shipped_default(results)
    rows = dict(lead_rows(results))
    refs = {"D": d} | {k: rows.get(role) for k, role in _PER_CLASS_REFS}
    return [{"class": c} | {k: condition_value(results, task, m, cond, c) if m else None for k, m in refs.items()}
            for c in results["tasks"][task]["per_method"][d]["per_class"]]


def _per_class_section(results: dict[str, Any]) -> list[str]:
    d = _shipped_default(results)
    if not d or not results.get("selection"):
        return []
    rows = dict(lead_rows(results))
    refs = [(k, rows[role]) for k, role in _PER_CLASS_REFS if rows.get(role)]
    out = ["AP per class of the shipped default (D) against " + ", ".join(f"{k} = *{m}*" for k, m in refs)
           + "; D-E and D-L > 0 where the default wins.", ""]
    conds = [c for c in ("all", "few") if condition_value(results, next(iter(results["tasks"])), d, c) is not None]
    keys = ["D"] + [k for k, _ in refs]
    diffs = [k for k in ("E", "L") if k in keys]
    head = ["Task", "Class"] + [f"{x}, {condition_label(results, c)}" for c in conds
                                for x in keys + [f"D-{k}" for k in diffs]]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    wins = {(c, k): [0, 0] for c in conds for k in diffs}
    for t in results["tasks"]:
        per = {c: per_class_rows(results, t, c) for c in conds}
        for i, r0 in enumerate(per[conds[0]]):
            cells = [_short(t), r0["class"]]
            for c in conds:
                r = per[c][i]
                cells += [_fmt(r[k]) for k in keys]
                for k in diffs:
                    diff = r["D"] - r[k]
                    wins[(c, k)][0 if diff > 0 else 1] += 1
                    cells.append(f"{diff:+.3f}")
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "Wins / losses of D over the classes of both tasks: " + "; ".join(
        f"against {k}, {condition_label(results, c)}: {w} / {lo}" for (c, k), (w, lo) in wins.items()) + "."]
    return out


def is_non_nag(results: dict[str, Any], name: str) -> bool:
    """Whether a method uses no NAG signature (:data:`NON_NAG` families and a learned model on the embedding only)."""
    fam = _family(results, name)
    if fam == "learned":
        return next(iter(results["tasks"].values()))["per_method"][name]["options"].get("features") == "emb"
    return fam in NON_NAG


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Plain statements read off the numbers: who wins each task, where the shipped default and the NAG profiles
    stand, the checks."""
    lines = []
    nag = _default_nag(results)
    cd = _contrastive_default(results)
    d = _shipped_default(results) or cd
    label = "Shipped default" if _shipped_default(results) else "Contrastive default"
    for name, task in results["tasks"].items():
        pm = task["per_method"]
        ap = {m: v["mean"]["ap"] for m, v in pm.items()}
        ranked = sorted(ap, key=lambda m: -ap[m])
        random_ap = next(v["mean"]["ap"] for v in pm.values() if v["family"] == "random")
        others = [m for m in ranked if is_non_nag(results, m)]
        best_base = others[0] if others else None
        line = f"- **{name}**: best mean AP {ap[ranked[0]]:.3f} by *{ranked[0]}* (random {random_ap:.3f}). "
        if best_base is None:
            line += f"{label} *{d}* {ap[d]:.3f}. " if d else ""
        elif d:
            classes = list(pm[d]["per_class"])
            wins = sum(pm[d]["per_class"][c]["ap"] > pm[best_base]["per_class"][c]["ap"] for c in classes)
            line += (f"{label} *{d}* {ap[d]:.3f} (rank {ranked.index(d) + 1} of {len(ranked)}; beats "
                     f"the strongest non-NAG method, *{best_base}* {ap[best_base]:.3f}, on {wins} of {len(classes)} "
                     f"classes). ")
        else:
            line += f"Strongest non-NAG method *{best_base}* {ap[best_base]:.3f}. "
        if cd and cd != d:
            line += f"Issue 13's contrastive default *{cd}* {ap[cd]:.3f}. "
        nag_variants = [m for m in ranked if pm[m]["family"] == "nag"]
        if nag in ap:
            line += (f"Paper profile ({nag}) {ap[nag]:.3f}; best paper variant *{nag_variants[0]}* "
                     f"{ap[nag_variants[0]]:.3f}.")
        if not d and nag in ap:
            wins = [m for m in others if ap[nag] > ap[m] + TIE]
            ties = [m for m in others if abs(ap[nag] - ap[m]) <= TIE]
            losses = [m for m in others if ap[nag] < ap[m] - TIE]
            line += (f" Against the baselines (ties within {TIE} AP) the paper profile wins vs "
                     f"{', '.join(wins) or 'none'}; ties {', '.join(ties) or 'none'}; loses vs "
                     f"{', '.join(losses) or 'none'}.")
        lines.append(line)
        sens = task.get("sensitivity")
        if sens:
            for m in [x for x in dict.fromkeys((d, cd, nag)) if x and x in sens["methods"]]:
                rows = sens["methods"][m]
                parts = ", ".join(f"{r['targets']}: {r['jaccard_mean']:.2f}" for r in rows[:-1])
                lines.append(f"  - Stability of *{m}* ({sens['class']}, top {sens['fraction']:.0%} of tokens): "
                             f"Jaccard with n random targets vs all {sens['max_targets']}: {parts}.")
    for chk in issue23_checks(results):
        vals = ", ".join(f"{_short(t)} {v:+.3f}" for t, v in chk["values"].items())
        lines.append(f"- Check (issue 23): {chk['check']}: {vals} -> **{'met' if chk['met'] else 'NOT met'}** "
                     f"(goal +{GOAL_MARGIN}: {'met' if chk['goal_met'] else 'not met'}).")
    for chk in acceptance(results):
        vals = ", ".join(f"{_short(t)} {v:+.3f}" for t, v in chk["values"].items())
        lines.append(f"- Check (issue 13, on its contrastive default): {chk['check']}: {vals} -> "
                     f"**{'met' if chk['met'] else 'NOT met'}**.")
    sel = results.get("selection")
    if sel:
        lines.append(f"- Selection rule ({sel['criterion']}; shippable variants only; ties within {sel['tie']} go to "
                     "the simplest variant): "
                     f"picks *{sel['pick_all']}* (best shippable criterion: *{sel['best_shippable']}*; best of all, "
                     f"references included: *{sel['best_all']}*); issue 13's contrastive default "
                     f"*{sel['default']}* ranks {sel['default_rank']} of {len(sel['ranking'])}.")
    return lines


def _main_table(results: dict[str, Any]) -> list[str]:
    tasks = list(results["tasks"])
    first = results["tasks"][tasks[0]]
    n_few = first["robustness"]["targets"]["sizes"][0] if first.get("robustness") else None
    head = ["Role", "Method"] + [f"{_short(t)} AP" for t in tasks] + ["mean"]
    if n_few:
        head += [f"{_short(t)} AP, {n_few} targets" for t in tasks]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for role, m in main_rows(results):
        cells = [role, m] + [_fmt(_ap(results, t, m)) for t in tasks] + [_fmt(_mean_ap(results, m))]
        if n_few:
            for t in tasks:
                r = _robust(results, t, "targets", m)
                cells.append(_fmt(r["ap_mean"][0]) if r else "")
        if m == _shipped_default(results):
            cells = [f"**{c}**" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _variant_label(opts: dict[str, Any]) -> str:
    ps = " ".join(f"{k}={v:g}" for k, v in opts["params"])
    return f"{opts['weighting']} {ps}".strip()


def _pivot(results: dict[str, Any], value: Any, title: str) -> list[str]:
    """Contrastive variants: one row per weighting, one column per (neuron types, task)."""
    first = next(iter(results["tasks"].values()))["per_method"]
    variants = [m for m in results["methods"] if first[m]["family"] == "contrastive"]
    rows: dict[str, dict[str, str]] = {}
    types_order: list[str] = []
    for m in variants:
        opts = first[m]["options"]
        types = "+".join(opts["types"])
        if types not in types_order:
            types_order.append(types)
        rows.setdefault(_variant_label(opts), {})[types] = m
    tasks = list(results["tasks"])
    head = ["Weighting"] + [f"{ty} {_short(t)}" for ty in types_order for t in tasks]
    out = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    d = _contrastive_default(results)
    for label, by_type in rows.items():
        cells = [label]
        for ty in types_order:
            for t in tasks:
                m = by_type.get(ty)
                v = value(t, m) if m else None
                cell = _fmt(v) if v is not None else ""
                cells.append(f"**{cell}**" if m == d else cell)
        out.append("| " + " | ".join(cells) + " |")
    return out


def _variant_tables(results: dict[str, Any]) -> list[str]:
    first = next(iter(results["tasks"].values()))
    out = _pivot(results, lambda t, m: _ap(results, t, m),
                 "Mean AP with all targets, background = the whole pool (default in bold):")
    rob = first.get("robustness")
    if rob:
        n_few = rob["targets"]["sizes"][0]
        out += [""] + _pivot(
            results, lambda t, m: _robust(results, t, "targets", m)["ap_mean"][0],
            f"Mean AP with {n_few} targets per class ({rob['targets']['seeds']} draws; background = the pool):")
        sel = results.get("selection")
        want = results["config"].get("selection_background", 50)
        sizes = rob["background"]["sizes"]
        bi = min(range(len(sizes)), key=lambda i: (abs(sizes[i] - want), sizes[i]))
        out += [""] + _pivot(
            results, lambda t, m: _robust(results, t, "background", m)["ap_mean"][bi],
            f"Mean AP with a background of {sizes[bi]} random pool rows ({rob['background']['seeds']} draws; all "
            "targets):")
        if sel:
            out += [""] + _pivot(results, lambda t, m: sel["table"][m][t],
                                 "Selection criterion (mean of the three tables above):")
    return out


def _selection_section(results: dict[str, Any]) -> list[str]:
    sel = results.get("selection")
    if not sel:
        return []
    tasks = list(results["tasks"])
    ship = set(sel["shippable"])
    n_ship = len(sel["shippable"])
    levels = ", ".join(f"{f} {lv}" for f, lv in sel["levels"].items())
    out = [f"Criterion: {sel['criterion']}. Compared: {len(sel['ranking'])} variants of the families {levels} (level = "
           f"complexity); the rule picks among the {n_ship} **shippable** ones (one signature column, one float16 "
           "embedding, statistics of the target and background rows only); the others (two neuron types averaged) "
           f"are references. Among the shippable variants within {sel['tie']} of the best shippable criterion (ties) "
           "it keeps the lowest level, lets the best of those fix the kind (family and everything but the tuned "
           "numbers), and takes that kind's simplest parameters (contrastive: the smallest, for shrinkage the "
           "weakest prior m; z-sum: the weight closest to 1/2; RRF: that, then the smallest kappa), then the "
           f"highest criterion. Best shippable criterion: *{sel['best_shippable']}*; shippable variants within "
           f"{sel['tie']} of it: {len(sel['tied_with_best'])}; **the rule picks *{sel['pick_all']}***. Issue 13's "
           f"contrastive default *{sel['default']}* (two types, not shippable) ranks {sel['default_rank']}. "
           f"Halves: {sel['halves']} ("
           + "; ".join(f"{_short(t)} A = {', '.join(h['half A'])}, B = {', '.join(h['half B'])}"
                       for t, h in sel["halves_classes"].items()) + ").", "",
           "| Rank | Variant | shippable | criterion, all classes | " + " | ".join(_short(t) for t in tasks)
           + " | half A | half B |", "|" + "---|" * (6 + len(tasks))]
    top = sel["ranking"][:15]
    for extra in (sel["pick_all"], sel["default"]):
        if extra in sel["ranking"] and extra not in top:
            top.append(extra)
    for m in top:
        row = sel["table"][m]
        cells = [str(sel["ranking"].index(m) + 1), m, "yes" if m in ship else "no", _fmt(row["all"])] + \
            [_fmt(row[t]) for t in tasks] + [_fmt(row["half A"]), _fmt(row["half B"])]
        if m == sel["pick_all"]:
            cells = [f"**{c}**" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    singles = [(role, m) for role, m in lead_rows(results)[1:] if m in sel["table"] and m in ship]
    for chosen_on, h in sel["holdout"].items():
        other = "half B" if chosen_on == "half A" else "half A"
        out.append(f"- Rule applied to {chosen_on}: picks *{h['pick']}*; on {other} its criterion is "
                   f"{h['on_other_half']:.3f} (rank {h['rank_on_other_half']} of {n_ship} shippable; the best "
                   f"on {other}, *{h['best_on_other_half_name']}*, has {h['best_on_other_half']:.3f}; the rule "
                   f"applied to {other} picks *{h['pick_on_other_half']}*, "
                   f"{h.get('pick_on_other_half_value', float('nan')):.3f}). On {other}, the single signals: "
                   + "; ".join(f"{role} *{m}* {sel['table'][m][other]:.3f}" for role, m in singles) + ".")
    return out


def _family_table(results: dict[str, Any], families: tuple[str, ...], limit: int | None = None) -> list[str]:
    """Variants of some families ranked by the criterion: AP in the three conditions per task, shippable or not."""
    sel = results.get("selection") or {}
    table = sel.get("table", {})
    names = [m for m in results["methods"] if _family(results, m) in families]
    names.sort(key=lambda m: -table[m]["all"] if m in table else -_mean_ap(results, m))
    if limit is not None:
        names = names[:limit]
    tasks = list(results["tasks"])
    conds = [c for c in CONDITIONS if names and condition_value(results, tasks[0], names[0], c) is not None]
    head = ["Variant", "shippable"] + [f"{_short(t)}, {condition_label(results, c)}" for c in conds for t in tasks] + \
        ["criterion"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ship = set(sel.get("shippable", []))
    for m in names:
        cells = [m, "yes" if m in ship else "no"] + [_fmt(condition_value(results, t, m, c)) for c in conds
                                                      for t in tasks] + [_fmt(table[m]["all"]) if m in table else ""]
        if m == _shipped_default(results):
            cells = [f"**{c}**" for c in cells]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _learned_fits(results: dict[str, Any]) -> list[str]:
    """The regularisation the cross-validation chose, per learned variant (main condition, every class)."""
    out = []
    for m in results["methods"]:
        if _family(results, m) != "learned":
            continue
        cs = [c for t in results["tasks"].values() for c in t["per_method"][m].get("chosen_C", [])]
        if cs:
            vals, counts = np.unique(cs, return_counts=True)
            out.append(f"- *{m}*: C chosen " + ", ".join(f"{v:g} ({n}x)" for v, n in zip(vals, counts))
                       + f" over the {len(cs)} classes (all targets, background = the pool).")
    return out


def _targets_table(results: dict[str, Any]) -> list[str]:
    tasks = [t for t in results["tasks"] if results["tasks"][t].get("robustness")]
    if not tasks:
        return []
    sizes = {t: results["tasks"][t]["robustness"]["targets"]["sizes"] for t in tasks}
    head = ["Method"] + [f"{_short(t)} n={n}" for t in tasks for n in sizes[t]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in _rivals(results):
        cells = [m]
        for t in tasks:
            r = _robust(results, t, "targets", m)
            for i in range(len(sizes[t])):
                cells.append(f"{r['ap_mean'][i]:.3f} ± {r['ap_sd_draws'][i]:.3f}" if r else "")
        out.append("| " + " | ".join(cells) + " |")
    return out


def _background_table(results: dict[str, Any]) -> list[str]:
    tasks = [t for t in results["tasks"] if results["tasks"][t].get("robustness")]
    if not tasks:
        return []
    sizes = {t: results["tasks"][t]["robustness"]["background"]["sizes"] for t in tasks}
    head = ["Method"] + [f"{_short(t)} {n}" for t in tasks for n in sizes[t]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    d = _contrastive_default(results)
    others = [m for m in (results.get("selection") or {}).get("ranking", [])[:3] if m != d]
    for m in dict.fromkeys([*_rivals(results), *others]):
        cells = [m]
        for t in tasks:
            r = _robust(results, t, "background", m)
            for i in range(len(sizes[t])):
                if r:
                    cells.append(f"{r['ap_mean'][i]:.3f} ± {r['ap_sd_draws'][i]:.3f}")
                else:
                    cells.append(f"({_ap(results, t, m):.3f})")
        out.append("| " + " | ".join(cells) + " |")
    return out


def _task_table(task: dict[str, Any], fractions: list[float], shown: list[str]) -> list[str]:
    head = ["Method", "AP", "AP sd (classes)", "ROC-AUC"] + [f"P@{f:.0%}" for f in fractions] + \
           [f"R@{f:.0%}" for f in fractions] + ["score s"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in shown:
        v = task["per_method"][m]
        mean = v["mean"]
        cells = [m, _fmt(mean["ap"]), _fmt(v["std_ap"]), _fmt(mean["auc"])]
        cells += [_fmt(mean[f"precision@{f:g}"]) for f in fractions]
        cells += [_fmt(mean[f"recall@{f:g}"]) for f in fractions]
        cells.append(f"{v['scoring_seconds']:.1f}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def _class_table(task: dict[str, Any], shown: list[str]) -> list[str]:
    pm = task["per_method"]
    classes = list(next(iter(pm.values()))["per_class"])
    out = ["| Method | " + " | ".join(classes) + " |", "|" + "---|" * (len(classes) + 1)]
    for m in shown:
        v = pm[m]
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
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = list(results["tasks"])
    methods = _shown(results)
    colors = {"nag": "tab:blue", "contrastive": "tab:purple", "embedding": "tab:orange",
              "contrastive_embedding": "tab:brown", "centred_embedding": "tab:olive", "fusion_zsum": "tab:pink", "fusion_zsum_learned": "tab:red",
              "fusion_rrf": "tab:cyan", "learned": "black", "tfidf": "tab:green", "dsir": "tab:red",
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
    shown = list(dict.fromkeys(m for _, m in main_rows(results)))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 5.2), squeeze=False)
    palette = plt.get_cmap("tab10")
    for ax, name in zip(axes[0], names):
        pm = results["tasks"][name]["per_method"]
        for i, m in enumerate(shown):
            ax.plot([f * 100 for f in fractions], [pm[m]["mean"][f"precision@{f:g}"] for f in fractions],
                    marker="os^Dv"[i % 5], label=m, color=palette(i % 10),
                    linestyle="-" if pm[m]["family"] in ("nag", "contrastive") else "--",
                    linewidth=2.2 if m == shown[0] else 1.2)
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
                        color=colors[fam], linestyle=":" if fam == "nag" and "fwd_up" not in m else "-")
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

    rob_tasks = [n for n in names if results["tasks"][n].get("robustness")]
    if rob_tasks:
        fig, axes = plt.subplots(2, len(rob_tasks), figsize=(5.5 * len(rob_tasks), 8), squeeze=False)
        for j, name in enumerate(rob_tasks):
            rob = results["tasks"][name]["robustness"]
            for i, (kind, xlabel) in enumerate((("targets", "targets per class"),
                                                ("background", "background rows (uniform sample of the pool)"))):
                ax = axes[i][j]
                sizes = rob[kind]["sizes"]
                for k, m in enumerate(_rivals(results)):
                    r = rob[kind]["methods"].get(m)
                    ys = r["ap_mean"] if r else [_ap(results, name, m)] * len(sizes)
                    ax.plot(sizes, ys, marker="o" if r else None, label=m, color=palette(k % 10),
                            linestyle="-" if r else "--", linewidth=2.2 if m == _shipped_default(results) else 1.2)
                ax.set_xscale("log")
                ax.minorticks_off()
                ax.set_xticks(sizes, [str(x) for x in sizes])
                ax.set_xlabel(xlabel)
                ax.set_ylabel("mean AP over classes")
                ax.set_title(f"{name}: AP vs {kind}")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        _save_figure(fig, plot_dir / "robustness.png")
        plt.close(fig)
        files.append("plots/robustness.png")
    return files


def write_report(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.md`` and ``plots/*.png`` for a results dictionary from :func:`run_evaluation`."""
    out_dir = Path(out_dir)
    plots = _plots(results, out_dir)
    cfg = results["config"]
    fractions = cfg["fractions"]
    lines = [
        "# Target retrieval: NAG profiles, the same model's embedding, their fusions, against peers on same-format text",
        "",
        f"Configuration `{cfg['name']}`, parameters hash `{results['params_hash']}`, git commit "
        f"`{results['git_commit']}`, total time {results['timing']['total_seconds']:.0f} s"
        + (f", machine {results['machine'].get('platform')} ({results['machine'].get('cpu_count')} CPUs, load "
           f"{results['machine'].get('load_avg')})" if isinstance(results.get("machine"), dict) else "") + ".",
        "Written by `nag_research.evaluate` (`python -m nag_research.evaluate --config " + cfg["name"] + "`).",
        "",
    ]
    if _shipped_default(results):
        lines += ["## The shipped default against the strongest single signals", "", *_lead_section(results), "",
                  "## Per class: where the shipped default wins and where it loses", "",
                  *_per_class_section(results), ""]
    lines += [
        "## Summary read off the numbers",
        "",
        *summary_lines(results),
        "",
        "## Main table",
        "",
        ("Mean AP over the target classes; the shipped default (bold), issue 13's contrastive default, the best "
         "variant of every family (by the mean of the two tasks) and the references the checks name. Methods with "
         "a background use the task's pool as the background."),
        "",
        *_main_table(results),
        "",
    ]
    if results.get("discussion"):
        lines += ["## Discussion", "", results["discussion"], ""]
    if results.get("selection"):
        lines += ["## Choosing the default", "", *_selection_section(results), ""]
        lines += ["## The centred embedding, the learned variants and the best fusions", "",
                  ("Every centred-embedding and learned variant, then the 20 best fusions by the criterion (every "
                  "fusion is in `results.json`)."), "",
                  *_family_table(results, ("centred_embedding", "learned")), "", *_learned_fits(results), "",
                  *_family_table(results, ("fusion_zsum", "fusion_rrf", "fusion_zsum_learned"), limit=20), ""]
    if _contrastive_default(results):
        lines += ["## Every contrastive variant", "", *_variant_tables(results), ""]
    if any(t.get("robustness") for t in results["tasks"].values()):
        first = next(t for t in results["tasks"].values() if t.get("robustness"))["robustness"]
        lines += [
            "## Sensitivity",
            "",
            (f"(a) Number of targets per class, on every class: mean AP over classes with n targets drawn from each "
             f"class's held-out targets (mean ± sd over {first['targets']['seeds']} draws, the same draws for every "
             "method; the largest n is all of them, one draw). Background = the whole pool."),
            "",
            *_targets_table(results),
            "",
            (f"(b) Background sample size: mean AP over classes with all targets and a background of n uniformly "
             f"sampled pool rows (mean ± sd over {first['background']['seeds']} draws; the largest n is the whole "
             "pool). Methods without a background show their (constant) AP in brackets."),
            "",
            *_background_table(results),
            "",
        ]
        for name, task in results["tasks"].items():
            sens = task.get("sensitivity")
            if sens:
                lines += [
                    (f"(c) `{name}`, class {sens['class']}: Jaccard of the top-{sens['fraction']:.0%} selection made "
                     f"with n random targets against the one made with all {sens['max_targets']} (mean over "
                     f"{sens['seeds']} draws; AP of the n-target ranking in brackets)."),
                    "",
                    *_sensitivity_table(sens),
                    "",
                ]
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
        "raw distribution fitted on the pool. Contrastive NAG = the mean, over layers and the K slots of a "
        "document's signature, of per-neuron weights comparing how many target and background documents hold the "
        "neuron in their NAG (weightings in `nag_datasets/evaluate/baselines.py` and `NAG_METHOD.md` section 4; "
        "several neuron types = mean of the per-type scores); contrastive embedding = cosine to the target centroid "
        "minus the background's mean (unit vectors). Background = the task's pool unless stated. "
        "Centred contrastive embedding (family, last or mid layer) = the same on embeddings rounded to float16, with "
        "the background mean also subtracted from each unit pool vector (a centred cosine). Fusions of one "
        "contrastive NAG component with the centred embedding: z-sum = w z(NAG) + (1 - w) z(emb), each signal "
        "z-scored with the mean and population sd of the background rows' own scores; RRF = w / (kappa + p_NAG) + "
        "(1 - w) / (kappa + p_emb), p = a row's rank fraction among the background rows' scores (share above it, "
        "ties counting one half). Learned = L2 logistic regression per class, the target rows against the "
        "background rows (balanced class weights, C by 3-fold stratified cross-validation on those rows, ROC-AUC), "
        "on neuron indicators of one signature column (unit-norm rows), on the centred unit embedding, or on both "
        "side by side; its score is the decision function. Nothing of the pool's labels enters any of them."),
        "",
        ("For each task and each class in turn: target = that class's held-out documents; pool = the same pool "
        "for every class; relevant = pool documents of the target's class. Metrics per class, then averaged over "
        "classes: average precision (AP, step-wise, ties admitted together), ROC-AUC (ties count 1/2), and "
        "precision / recall (in documents) of the library's budget selection (score descending, keep while the "
        "cumulative tokens stay within r_f of the pool's tokens). A random ranking has AP ~= the class's share of "
        "the pool, AUC 0.5."),
        "",
    ]
    shown = _shown(results)
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
            ("Every method except the grids (contrastive, z-sum, RRF), of which the defaults, the best fusion of each "
             "kind and the best contrastive variant of each "
             "neuron-type setting are shown (all variants: section 'Every contrastive variant')."),
            "",
            *_task_table(task, fractions, shown),
            "",
            "AP per target class:",
            "",
            *_class_table(task, shown),
            "",
        ]
    lines += ["## Runtime", ""]
    for name, t in results["timing"].items():
        if isinstance(t, dict):
            lines.append(f"- {name}: building and featurizing {t['build_and_featurize_seconds']:.0f} s "
                         f"(forward passes {t['forward_seconds_this_run']:.0f} s; {t['chunks_computed']} chunks "
                         f"computed, {t['chunks_from_cache']} from the cache), scoring and metrics "
                         f"{t['scoring_and_metrics_seconds']:.0f} s"
                         + (f" (of which the robustness study {results['tasks'][name]['robustness']['seconds']:.0f} s)"
                            if results["tasks"].get(name, {}).get("robustness") else "") + ".")
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
        ("- The default was chosen on these same tasks and classes, so its numbers here are optimistic; "
         "the held-out halves in 'Choosing the default' show by how much."),
        ("- The background is the task's pool (300 rows) unless stated, so every pool row is also a background row: "
         "the learned variants are scored on rows they were trained on as negatives (as a library profile would "
         "be on the rows of its background sample)."),
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
