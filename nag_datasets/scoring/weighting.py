"""Per-neuron weightings of a contrastive profile: how much more often a target NAG holds a neuron than the pool's.

Each weighting maps the count tables of a target set and of a background sample (``c_t[l, n]`` / ``c_b[l, n]``: how
many target / background documents have neuron ``n`` in their layer-``l`` NAG; ``n_t`` / ``n_b``: how many
documents) to one float per neuron. A method family in the style of DSIR's: subclass :class:`Weighting`, override
:meth:`Weighting.table`, register the class in :data:`WEIGHTINGS`.

>>> import numpy as np
>>> c_t, c_b = np.array([[4, 1, 0]]), np.array([[10, 0, 10]])
>>> LogOdds(alpha=0.5).table(c_t, 4, c_b, 10).round(3)     # neuron 1: never in the background, still finite
array([[-0.059,  1.887, -2.256]])
>>> Difference().table(c_t, 4, c_b, 10)
array([[ 0.  ,  0.25, -1.  ]])
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from ..errors import NAGError

__all__ = [
    "WEIGHTINGS",
    "Difference",
    "Lift",
    "LogOdds",
    "Shrinkage",
    "TfIdf",
    "Weighting",
    "WeightingError",
    "get_weighting",
]


class WeightingError(NAGError, ValueError):
    """An unknown weighting, a bad parameter, or a weight table that is not finite."""


@dataclasses.dataclass(frozen=True)
class Weighting:
    """Base class: a named, parameterised map from (target counts, background counts) to per-neuron weights."""

    name: ClassVar[str] = ""

    def table(self, c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int) -> np.ndarray:
        """Weights (float64, same shape as the counts); every entry finite."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self)}

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items())
        return f"{self.name}({params})"

    def __post_init__(self) -> None:
        for key, value in dataclasses.asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise WeightingError(f"{self.name}: {key} must be a finite number > 0, got {value!r}")


def _freq(c: np.ndarray, n: int, a: float) -> np.ndarray:
    """Smoothed share of documents holding each neuron: ``(c + a) / (n + 2a)``, in (0, 1)."""
    return (np.asarray(c, np.float64) + a) / (n + 2.0 * a)


@dataclasses.dataclass(frozen=True)
class LogOdds(Weighting):
    """``log((c_t + a) / (n_t + 2a)) - log((c_b + a) / (n_b + 2a))``: smoothed log ratio of the two frequencies."""

    name: ClassVar[str] = "log_odds"
    alpha: float = 0.25

    def table(self, c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int) -> np.ndarray:
        return np.log(_freq(c_t, n_t, self.alpha)) - np.log(_freq(c_b, n_b, self.alpha))


@dataclasses.dataclass(frozen=True)
class Shrinkage(Weighting):
    """``log((c_t + m p_b) / (n_t + m)) - log(p_b)`` with ``p_b = (c_b + a) / (n_b + 2a)``.

    The target frequency is shrunk toward the background by ``m`` pseudo-documents, so a neuron a few targets
    happen to share does not get a large weight when the target set is small. The library's default weighting
    (m=50, a=0.5): chosen in the retrieval harness, where it held up best with 10 targets per class and with small
    backgrounds (``benchmarks/results/evaluate/report.md``).
    """

    name: ClassVar[str] = "shrinkage"
    m: float = 50.0
    alpha: float = 0.5

    def table(self, c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int) -> np.ndarray:
        p_b = _freq(c_b, n_b, self.alpha)
        return np.log((np.asarray(c_t, np.float64) + self.m * p_b) / (n_t + self.m)) - np.log(p_b)


@dataclasses.dataclass(frozen=True)
class Difference(Weighting):
    """``c_t / n_t - c_b / n_b``: difference of the raw frequencies."""

    name: ClassVar[str] = "difference"

    def table(self, c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int) -> np.ndarray:
        return np.asarray(c_t, np.float64) / n_t - np.asarray(c_b, np.float64) / n_b


@dataclasses.dataclass(frozen=True)
class Lift(Weighting):
    """``log((c_t / n_t + eps) / (c_b / n_b + eps))``."""

    name: ClassVar[str] = "lift"
    eps: float = 0.01

    def table(self, c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int) -> np.ndarray:
        return np.log((np.asarray(c_t, np.float64) / n_t + self.eps) / (np.asarray(c_b, np.float64) / n_b + self.eps))


@dataclasses.dataclass(frozen=True)
class TfIdf(Weighting):
    """``c_t / n_t * log((n_b + 1) / (c_b + 1))``: target frequency times the neuron's rarity in the background."""

    name: ClassVar[str] = "tfidf"

    def table(self, c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int) -> np.ndarray:
        return np.asarray(c_t, np.float64) / n_t * np.log((n_b + 1.0) / (np.asarray(c_b, np.float64) + 1.0))


#: Registered weightings by name (``"frequency"``, the paper's profile, is not one: it ignores the background).
WEIGHTINGS: dict[str, type[Weighting]] = {w.name: w for w in (LogOdds, Shrinkage, Difference, Lift, TfIdf)}


def get_weighting(weighting: str | Weighting | dict[str, Any], **params: Any) -> Weighting:
    """A :class:`Weighting` from its name and parameters, its ``to_dict()``, or an instance (returned as is).

    >>> get_weighting("log_odds", alpha=0.5)
    LogOdds(alpha=0.5)
    >>> get_weighting({"name": "shrinkage", "m": 50.0, "alpha": 0.5}).describe()
    'shrinkage(m=50.0, alpha=0.5)'
    """
    if isinstance(weighting, Weighting):
        if params:
            raise WeightingError(f"parameters {sorted(params)} given with a Weighting instance; set them on it")
        return weighting
    if isinstance(weighting, dict):
        if params:
            raise WeightingError(f"parameters {sorted(params)} given with a weighting dict; put them in the dict")
        params = {k: v for k, v in weighting.items() if k != "name"}
        weighting = str(weighting.get("name"))
    cls = WEIGHTINGS.get(weighting)
    if cls is None:
        raise WeightingError(f"unknown weighting {weighting!r}; choose from {sorted(WEIGHTINGS)} or 'frequency'")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise WeightingError(f"weighting {weighting!r} takes {sorted(fields) or 'no parameters'}, not {unknown}")
    return cls(**{k: float(v) for k, v in params.items()})
