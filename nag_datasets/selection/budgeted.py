"""Selection: keep the best-ranked documents of a pool within a share of its tokens.

Rank by similarity to the targets (descending; ties by row position), walk down the ranking and keep documents while
the cumulative token count stays within ``fraction`` of the pool's tokens, stopping at the first document that would
overflow. Rows without a score (null signature) are outside the pool. With several targets each selects its own
share; a quality signal can be combined with the NAG distance.

>>> import numpy as np
>>> scores = np.array([0.2, 0.9, np.nan, 0.5, 0.9], dtype=np.float32)
>>> tokens = np.array([10, 30, 99, 20, 40])
>>> indices, report = select_indices(scores, tokens, fraction=0.5)
>>> indices.tolist(), report.tokens_selected, report.pool_tokens, report.null_rows_skipped
([1], 30, 100, 1)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, NAGError, WrongTypeError, argument
from ..scoring.profile_base import Profile
from ..signatures.arrow import numeric_column
from ..signatures.columns import spec_from_feature
from .budget import budget_cut
from .recipe import SelectionRecipe, get_score_info
from .recipe import attach_recipe as _attach_recipe
from .reports import MultiTargetReport, SelectionReport

__all__ = [
    "UnrecordedScoreColumnWarning",
    "select_indices",
    "select_multi_target",
    "select_top_fraction",
]

METHODS = ("exact", "sampled")

#: Pool rows sampled by ``method="sampled"`` (the command line has no option for it).
DEFAULT_SAMPLE_SIZE = 100_000


class UnrecordedScoreColumnWarning(NAGError, UserWarning):
    """Ranking by a score column whose feature records no profile or scorer (any numeric column, e.g. ``id``): the
    selection's recipe cannot say how its scores were made. Filter it when ranking by a column of your own."""


def _check_sampling(method: str, sample_size: int | None, seed: int | None) -> tuple[int, int]:
    """``(sample_size, seed)`` for ``method``; refuses them with ``method="exact"``, which draws no sample."""
    if method != "sampled" and (sample_size is not None or seed is not None):
        given = " and ".join(argument(f"{k}={v!r}") for k, v in (("sample_size", sample_size), ("seed", seed))
                             if v is not None)
        raise InvalidArgumentError(f"{given}: these apply only to {argument('method=' + repr('sampled'))}, which "
                                   "estimates the threshold on a seeded sample; "
                                   f"{argument('method=' + repr(method))} draws none")
    return (DEFAULT_SAMPLE_SIZE if sample_size is None else sample_size), (0 if seed is None else seed)


# -- the selection rule on arrays --------------------------------------------------------------------------------


def _check_tokens(tokens: np.ndarray, n: int) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.shape != (n,):
        raise InvalidArgumentError(f"need one token count per row ({n}), got shape {tokens.shape}")
    if tokens.dtype.kind == "f":
        if np.isnan(tokens).any():
            raise InvalidArgumentError(f"token counts are missing (NaN/null) for {int(np.isnan(tokens).sum())} rows")
        if not np.array_equal(tokens, np.floor(tokens)):
            raise InvalidArgumentError("token counts must be whole numbers")
    elif tokens.dtype.kind not in "iu":
        raise WrongTypeError(f"token counts must be numbers, got {tokens.dtype}")
    if n and tokens.min() < 0:
        raise InvalidArgumentError(f"token counts must not be negative (row {int(np.argmin(tokens))} has "
                                   f"{tokens.min()})")
    # Sums are int64: refuse counts whose total would overflow it (checked in float64, with a margin for rounding).
    if n and float(np.sum(tokens, dtype=np.float64)) >= 2.0**63 * 0.999:
        raise InvalidArgumentError(f"token counts sum to about {float(np.sum(tokens, dtype=np.float64)):.3g}, which "
                                   f"would "
                                   "overflow int64 sums: check the token column (wrong units or corrupt values?)")
    return tokens if tokens.dtype.kind in "iu" else tokens.astype(np.int64)


def _duplicates(ds: Any, column: str, rows: np.ndarray) -> int:
    """How many of ``rows`` (positions in ``ds``) hold a value of ``column`` that an earlier one of them holds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from ..signatures.arrow import row_indices

    col = ds.data.column(column)
    idx = row_indices(ds)
    positions = rows if idx is None else idx[rows]
    if len(positions) != len(col) or not np.array_equal(positions, np.arange(len(col))):
        col = col.take(pa.array(np.sort(positions)))
    return len(positions) - len(pc.unique(col))


def _warn_truncated_tokens(token_column: str) -> None:
    if token_column == "nag_tokens":
        warnings.warn("token_column='nag_tokens' counts at most max_length tokens per document (truncated), so the "
                      "budget is not a share of the pool's real tokens: count full documents with "
                      "count_tokens(ds, featurizer.tokenizer) and pass token_column='num_tokens'", UserWarning,
                      stacklevel=3)


def _rank(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Row positions best first, exact ties by position ascending, NaN (missing) rows last.

    Costs one int64 index per row (plus the sort's workspace): no negated or filled copy of the scores when
    higher is better and nothing is missing, which keeps selection memory near 16 bytes per document.
    """
    n = len(scores)
    if not higher_is_better:
        return np.argsort(scores, kind="stable")  # NaN sorts last
    values = scores
    if np.isnan(scores).any():
        values = np.where(np.isnan(scores), -np.inf, scores)  # missing rows go last, after real scores
    # Descending with ties by position: sort the reversed view ascending, then reverse and map positions back.
    order = np.argsort(values[::-1], kind="stable")
    order *= -1
    order += n - 1
    return order[::-1]


def _budget_prefix(ranked: np.ndarray, tokens: np.ndarray, budget: float, chunk: int = 1 << 20) -> int:
    """Length of the longest prefix of ``ranked`` whose tokens sum to at most ``budget`` (chunked cumsum)."""
    total = 0
    for start in range(0, len(ranked), chunk):
        cumulative = np.cumsum(tokens[ranked[start:start + chunk]], dtype=np.int64)
        cumulative += total
        stop = int(np.searchsorted(cumulative, budget, side="right"))
        if stop < len(cumulative):
            return start + stop
        total = int(cumulative[-1])
    return len(ranked)


def select_indices(
    scores: np.ndarray,
    tokens: np.ndarray,
    fraction: float,
    *,
    method: str = "exact",
    higher_is_better: bool = True,
    sample_size: int | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, SelectionReport]:
    """Row positions to keep, best first, and the report; ``scores`` NaN = not in the pool.

    ``method="exact"`` never exceeds the budget; it finds the boundary score by bisection and sorts only the kept rows
    (:mod:`nag_datasets.selection.budget`), so its memory is ~4 bytes per document beyond the scores.
    ``method="sampled"`` estimates the score threshold on a seeded random sample of ``sample_size`` pool rows (same
    greedy rule on the sample) and keeps every pool row at least as good (O(N) filter, only the kept rows are sorted):
    the report's ``achieved_fraction`` says how close it came; it may exceed the request slightly. ``sample_size``
    (default 100,000) and ``seed`` (default 0) are the sampled method's; the exact method refuses them.
    """
    if method not in METHODS:
        raise InvalidArgumentError(f"unknown method {method!r}; use one of {METHODS}")
    sample_size, seed = _check_sampling(method, sample_size, seed)
    if not 0.0 <= fraction <= 1.0:
        raise InvalidArgumentError(f"fraction must be within [0, 1], got {fraction}")
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise InvalidArgumentError(f"scores must be one-dimensional, got shape {scores.shape}")
    if scores.dtype.kind not in "fiu":
        raise WrongTypeError(f"scores must be numbers, got {scores.dtype}")
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    tokens = _check_tokens(tokens, len(scores))
    missing = np.isnan(scores)
    n_missing = int(missing.sum())
    missing_tokens = int(tokens[missing].sum()) if n_missing else 0
    pool_documents = len(scores) - n_missing
    pool_tokens = int(tokens.sum()) - missing_tokens
    del missing

    sample_documents = None
    if method == "exact":
        selected = budget_cut(scores, tokens, fraction * pool_tokens, higher_is_better=higher_is_better)
        threshold = float(scores[selected[-1]]) if len(selected) else None
    else:
        if sample_size < 1:
            raise InvalidArgumentError(f"sample_size must be positive, got {sample_size}")
        rng = np.random.default_rng(seed)
        m = min(int(sample_size), pool_documents)
        pool = np.flatnonzero(~np.isnan(scores)) if n_missing else None
        if m == 0:
            sample = np.zeros(0, dtype=np.int64)
        elif pool is None:
            sample = np.sort(rng.choice(len(scores), size=m, replace=False))
        else:
            sample = np.sort(rng.choice(pool, size=m, replace=False))
        del pool
        sample_ranked = sample[_rank(scores[sample], higher_is_better)]
        keep = _budget_prefix(sample_ranked, tokens, fraction * int(tokens[sample].sum()))
        sample_documents = m
        if keep:
            cut = scores[sample_ranked[keep - 1]]
            threshold = float(cut)
            passing = np.flatnonzero(scores >= cut if higher_is_better else scores <= cut)
            selected = passing[_rank(scores[passing], higher_is_better)]
        else:
            threshold, selected = None, np.zeros(0, dtype=np.int64)

    tokens_selected = int(tokens[selected].sum())
    report = SelectionReport(
        method=method,
        fraction=float(fraction),
        documents_selected=len(selected),
        tokens_selected=tokens_selected,
        pool_documents=pool_documents,
        pool_tokens=pool_tokens,
        achieved_fraction=tokens_selected / pool_tokens if pool_tokens else 0.0,
        threshold=threshold,
        null_rows_skipped=n_missing,
        null_tokens_skipped=missing_tokens,
        higher_is_better=bool(higher_is_better),
        seed=seed if method == "sampled" else None,
        sample_size=int(sample_size) if method == "sampled" else None,
        sample_documents=sample_documents,
    )
    return selected.astype(np.int64, copy=False), report


# -- datasets ----------------------------------------------------------------------------------------------------


def _profile_fields(profile: Profile, ds: Any, column: str) -> dict[str, Any]:
    return {
        "signature_column": column,
        # The typed spec when the column has one; after a plain map the (checked) profile's.
        "spec": (spec_from_feature(ds.features[column]) or profile.spec).to_dict(),
        "profile_fingerprint": profile.fingerprint,
        "profile_description": profile.description,
        "profile_num_targets": profile.num_targets,
        "score_kind": profile.score_kind,
        "profile": profile.summary(),
    }


def _profile_summary(report: SelectionReport) -> dict[str, Any]:
    if report.profile is not None:
        return dict(report.profile)
    return {
        "fingerprint": report.profile_fingerprint,
        "description": report.profile_description,
        "num_targets": report.profile_num_targets,
    }


def _take(ds: Any, indices: np.ndarray, reports: list[SelectionReport], *, attach_recipe: bool, fraction: float,
          **recipe: Any) -> Any:
    """The rows ``indices`` of ``ds``, carrying the recipe of the selection that chose them (``attach_recipe``)."""
    out = ds.select(indices)
    if not attach_recipe:
        return out
    return _attach_recipe(out, SelectionRecipe(
        fraction=float(fraction), reports=[r.to_dict() for r in reports], spec=reports[0].spec,
        profiles=[_profile_summary(r) for r in reports if r.profile_fingerprint], **recipe))


def select_top_fraction(
    ds: Any,
    fraction: float,
    *,
    token_column: str,
    profile: Profile | None = None,
    column: str | None = None,
    score_column: str | None = None,
    higher_is_better: bool | None = None,
    method: str = "exact",
    sample_size: int | None = None,
    seed: int | None = None,
    attach_recipe: bool = True,
    return_report: bool = False,
    text_column: str = "text",
    count_duplicates: bool = True,
) -> Any:
    """The best documents of ``ds`` within ``fraction`` of the pool's tokens, best first (all columns kept).

    With ``profile``, rows are scored against it from the signature ``column`` (default ``nag_<neuron_type>``,
    spec checked). Without, they are ranked by ``score_column`` (default ``nag_similarity``; null/NaN = not in the
    pool), and a column whose feature records no profile or scorer (as :func:`score_pool`, ``score_dataset`` and
    :func:`combine_with_quality` write) gets an :class:`UnrecordedScoreColumnWarning`; ``higher_is_better``
    defaults to what the column records (False for :func:`combine_with_quality` output) or True. ``profile`` and
    ``score_column`` exclude each other, ``column`` needs ``profile``, ``sample_size`` and ``seed`` need
    ``method="sampled"``. ``ds`` may be a ``pandas.DataFrame`` (converted with ``Dataset.from_pandas``). The result
    carries its recipe in a ``nag_rank`` column (see :mod:`nag_datasets.selection.recipe`). When
    ``ds`` has ``text_column``, the report counts rows with the same text in the pool and in the selection (a hash
    table of the distinct texts; ``count_duplicates=False`` skips it).

    >>> from datasets import Dataset
    >>> ds = Dataset.from_dict({"s": [0.1, 0.7, 0.4], "n": [5, 5, 5]})
    >>> top = select_top_fraction(ds, 0.7, token_column="n", score_column="s")
    >>> top["s"][:], top["nag_rank"][:]
    ([0.7, 0.4], [0, 1])
    """
    from ..signatures.spec_column import as_dataset

    ds = as_dataset(ds, "select_top_fraction")
    if profile is not None and score_column is not None:
        raise InvalidArgumentError(f"pass either {argument('profile=')} or {argument('score_column=')}, not both: "
                                   "with a profile the rows are scored from their signatures")
    if profile is None and column is not None:
        raise InvalidArgumentError(f"{argument('column=')} names the signature column a profile scores; without "
                                   f"{argument('profile=')} the rows are ranked by a score column")
    _warn_truncated_tokens(token_column)
    quality = None
    extra: dict[str, Any] = {}
    if profile is not None:
        if higher_is_better is False:
            raise InvalidArgumentError("similarity to a profile is ranked higher-is-better; drop "
                                       "higher_is_better=False")
        higher_is_better = True
        column = profile.check_column(ds, column)
        scores = profile.score(ds, column)
        extra = _profile_fields(profile, ds, column)
        used_score_column = None
    else:
        score_column = score_column or "nag_similarity"
        info = get_score_info(ds, score_column) or {}
        if not info and score_column in (ds.column_names or []):
            warnings.warn(f"ranking by column {score_column!r}, whose feature records no profile or scorer (not a "
                          "column written by score_pool, score_dataset or combine_with_quality): the selection's "
                          "recipe cannot say how these scores were made", UnrecordedScoreColumnWarning, stacklevel=2)
        recorded = info.get("higher_is_better")
        if higher_is_better is None:
            higher_is_better = True if recorded is None else bool(recorded)
        elif recorded is not None and bool(recorded) != higher_is_better:
            warnings.warn(
                f"column {score_column!r} records higher_is_better={recorded} but {higher_is_better} was given",
                stacklevel=2,
            )
        scores = numeric_column(ds, score_column)
        quality = info.get("quality")
        for key in ("spec", "profile_fingerprint", "profile_description", "profile_num_targets",
                    "signature_column", "score_kind", "profile"):
            if key in info:
                extra[key] = info[key]
        used_score_column = score_column
    tokens = numeric_column(ds, token_column)
    indices, report = select_indices(
        scores, tokens, fraction, method=method, higher_is_better=higher_is_better, sample_size=sample_size, seed=seed
    )
    report = dataclasses.replace(report, score_column=used_score_column, **extra)
    if count_duplicates and text_column in (ds.column_names or []):
        pool_rows = np.flatnonzero(~np.isnan(scores))
        report = dataclasses.replace(report, duplicate_rows=_duplicates(ds, text_column, pool_rows),
                                     duplicate_rows_selected=_duplicates(ds, text_column, indices))
    out = _take(ds, indices, [report], attach_recipe=attach_recipe, kind="top_fraction", fraction=fraction,
                method=method, score_column=used_score_column, higher_is_better=higher_is_better, quality=quality)
    return (out, report) if return_report else out


def select_multi_target(
    ds: Any,
    profiles: Sequence[Profile],
    fraction: float,
    *,
    token_column: str,
    column: str | Sequence[str] | None = None,
    dedup: bool = False,
    method: str = "exact",
    attach_recipe: bool = True,
    return_report: bool = False,
    **kw: Any,
) -> Any:
    """The paper's multi-target mixture: each of M profiles selects ``fraction / M`` of the pool's tokens.

    The selections are concatenated in target order, each ranked best first. The paper keeps rows chosen by
    several targets twice; ``dedup=True`` drops a row already chosen by an earlier target, so the result then holds
    fewer tokens than ``fraction``. ``column`` is one signature column for all targets or one per target;
    ``sample_size``/``seed`` pass through to :func:`select_indices`. For one profile pooling all targets (a
    different method), see :meth:`NAGProfile.merge`.
    """
    profiles = list(profiles)
    if not profiles:
        raise InvalidArgumentError("select_multi_target needs at least one profile")
    _warn_truncated_tokens(token_column)
    if isinstance(column, str) or column is None:
        columns = [column] * len(profiles)
    else:
        columns = list(column)
        if len(columns) != len(profiles):
            raise InvalidArgumentError(f"got {len(columns)} columns for {len(profiles)} profiles")
    share = fraction / len(profiles)
    tokens = numeric_column(ds, token_column)
    seen = np.zeros(len(ds), np.bool_)
    parts, reports, dropped, dropped_tokens = [], [], [], []
    for profile, col in zip(profiles, columns):
        col = profile.check_column(ds, col)
        indices, report = select_indices(profile.score(ds, col), tokens, share, method=method, **kw)
        reports.append(dataclasses.replace(report, **_profile_fields(profile, ds, col)))
        if dedup:
            fresh = ~seen[indices]
            dropped.append(int((~fresh).sum()))
            dropped_tokens.append(int(tokens[indices[~fresh]].sum()))
            indices = indices[fresh]
        else:
            dropped.append(0)
            dropped_tokens.append(0)
        seen[indices] = True
        parts.append(indices)
    all_indices = np.concatenate(parts)
    tokens_selected = int(tokens[all_indices].sum())
    pool_tokens = reports[0].pool_tokens
    multi = MultiTargetReport(
        fraction=float(fraction),
        share=share,
        dedup=dedup,
        targets=reports,
        target_documents=[len(p) for p in parts],
        duplicates_dropped=dropped,
        duplicate_tokens_dropped=dropped_tokens,
        documents_selected=len(all_indices),
        tokens_selected=tokens_selected,
        pool_tokens=pool_tokens,
        achieved_fraction=tokens_selected / pool_tokens if pool_tokens else 0.0,
    )
    out = _take(ds, all_indices, reports, attach_recipe=attach_recipe, kind="multi_target", fraction=fraction,
                method=method, shares=[share] * len(profiles), dedup=dedup)
    return (out, multi) if return_report else out
