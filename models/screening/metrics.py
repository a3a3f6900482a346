"""How well a score ranks and how well it is calibrated, overall and within subgroups."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.screening.samples import Bools, Floats

_NAN = math.nan


@dataclass(frozen=True, slots=True, kw_only=True)
class BinaryMetrics:
    n: int
    positives: int
    prevalence: float
    roc_auc: float | None
    """None when only one class is present (the AUC is undefined)."""
    pr_auc: float | None
    """Average precision; its chance level is the prevalence."""
    brier: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationBin:
    lower: float
    upper: float
    n: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SubgroupMetrics:
    group: str
    value: str
    metrics: BinaryMetrics


def _checked(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[Bools, Floats]:
    y = np.asarray(labels, dtype=np.bool_)
    p = np.asarray(scores, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {p.shape} must be one-dimensional and the same length")
    if np.isnan(p).any():
        raise ValueError("scores contain NaN")
    return y, p


def evaluate(labels: npt.ArrayLike, scores: npt.ArrayLike, *, probabilities: bool = True) -> BinaryMetrics:
    """ROC AUC, PR AUC (average precision) and, for probabilities, the Brier score."""
    y, p = _checked(labels, scores)
    n, positives = len(y), int(y.sum())
    both = 0 < positives < n
    return BinaryMetrics(
        n=n,
        positives=positives,
        prevalence=positives / n if n else _NAN,
        roc_auc=float(roc_auc_score(y, p)) if both else None,
        pr_auc=float(average_precision_score(y, p)) if both else None,
        brier=float(brier_score_loss(y, p)) if probabilities and n else None,
    )


def calibration_bins(labels: npt.ArrayLike, scores: npt.ArrayLike, *, bins: int = 10) -> tuple[CalibrationBin, ...]:
    """Predicted against observed rates in quantile bins of the score (empty bins dropped)."""
    y, p = _checked(labels, scores)
    if not len(y):
        return ()
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    result = []
    for b in range(len(edges) - 1):
        inside = index == b
        if inside.any():
            result.append(CalibrationBin(
                lower=float(edges[b]), upper=float(edges[b + 1]), n=int(inside.sum()),
                mean_predicted=float(p[inside].mean()), observed_rate=float(y[inside].mean()),
            ))
    return tuple(result)


def subgroup_metrics(
    labels: npt.ArrayLike, scores: npt.ArrayLike, groups: Mapping[str, Sequence[str]]
) -> tuple[SubgroupMetrics, ...]:
    """`evaluate` within each value of each grouping (sex, urban/rural, each special group)."""
    y, p = _checked(labels, scores)
    result = []
    for name, values in groups.items():
        column = np.asarray(values, dtype=object)
        if len(column) != len(y):
            raise ValueError(f"group {name!r} has {len(column)} values for {len(y)} samples")
        for value in sorted(set(values)):
            inside = column == value
            result.append(SubgroupMetrics(group=name, value=value, metrics=evaluate(y[inside], p[inside])))
    return tuple(result)
