"""Credit-grade binary metrics in plain numpy, each checked against scikit-learn in the tests.

Conventions (as scikit-learn): ``*_score`` is maximised, ``*_loss`` minimised. ``y_true`` is 0/1 with
1 = default; ``y_score`` is the predicted PD. Both are 1-D of equal length. Undefined cases (a single
class) return NaN, never a guess; the approval gate treats NaN as a failure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from credit_risk.errors import DataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def check_inputs(y_true: ArrayLike, y_score: ArrayLike) -> tuple[IntArray, FloatArray]:
    """Validate at the boundary: same length, non-empty, labels in {0,1}, finite scores in [0,1]."""
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise DataError(f"y_true has {y.size} values but y_score has {s.size}; they must match")
    if y.size == 0:
        raise DataError("no rows to evaluate")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"y_true must be 0/1; row {i} is {y[i]!r}")
    nonfinite = ~np.isfinite(s)
    if nonfinite.any():
        i = int(np.flatnonzero(nonfinite)[0])
        raise DataError(f"y_score has {int(nonfinite.sum())} non-finite values; first at row {i}: {s[i]}")
    out = (s < 0) | (s > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataError(f"y_score must be probabilities in [0, 1]; row {i} is {s[i]}")
    return y.astype(np.int64), s


def _both_classes(y: IntArray) -> bool:
    return 0 < int(y.sum()) < y.size


def roc_auc_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN for one class."""
    y, s = check_inputs(y_true, y_score)
    if not _both_classes(y):
        return float("nan")
    ranks = rankdata(s)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gini_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Accuracy ratio / Gini = 2 * AUC - 1."""
    return 2.0 * roc_auc_score(y_true, y_score) - 1.0


def roc_curve(y_true: ArrayLike, y_score: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(fpr, tpr, thresholds), thresholds decreasing, first point (0, 0) at threshold +inf."""
    y, s = check_inputs(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last_of_run]
    fps = (last_of_run + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int(y.size - y.sum()), 1)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return fpr, tpr, np.r_[np.inf, s_sorted[last_of_run]]


def ks_statistic(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Kolmogorov-Smirnov: max distance between the score CDFs of defaults and non-defaults."""
    y, s = check_inputs(y_true, y_score)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.max(np.abs(tpr - fpr)))


def brier_score_loss(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Mean squared error of the PD against the 0/1 outcome."""
    y, s = check_inputs(y_true, y_score)
    return float(np.mean((s - y) ** 2))


def log_loss(y_true: ArrayLike, y_score: ArrayLike, eps: float = 1e-15) -> float:
    y, s = check_inputs(y_true, y_score)
    s = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))


def confusion_matrix(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> IntArray:
    """[[TN, FP], [FN, TP]] when predicting default for PD >= threshold."""
    y, s = check_inputs(y_true, y_score)
    pred = (s >= threshold).astype(np.int64)
    return np.array(
        [
            [int(((y == 0) & (pred == 0)).sum()), int(((y == 0) & (pred == 1)).sum())],
            [int(((y == 1) & (pred == 0)).sum()), int(((y == 1) & (pred == 1)).sum())],
        ]
    )


def average_precision_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """PR AUC as average precision: sum over thresholds of (R_n - R_(n-1)) * P_n; NaN without defaults."""
    y, s = check_inputs(y_true, y_score)
    if int(y.sum()) == 0:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    tps, fps = tpr[1:] * n_pos, fpr[1:] * n_neg
    precision = tps / np.maximum(tps + fps, 1)
    recall_steps = np.diff(tpr)
    return float(np.sum(recall_steps * precision))


def _uniform_bins(s: FloatArray, n_bins: int) -> IntArray:
    if n_bins < 1:
        raise DataError(f"n_bins must be >= 1, got {n_bins}")
    # as scikit-learn's calibration_curve(strategy="uniform"): bins (lo, hi], the first [0, hi]
    return np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], s, side="left")


def calibration_curve(
    y_true: ArrayLike, y_score: ArrayLike, n_bins: int = 10
) -> tuple[FloatArray, FloatArray, IntArray]:
    """Reliability curve over equal-width PD bins: (observed default rate, mean PD, rows) per
    non-empty bin, in increasing PD order."""
    y, s = check_inputs(y_true, y_score)
    ids = _uniform_bins(s, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    observed = np.bincount(ids, weights=y, minlength=n_bins)
    predicted = np.bincount(ids, weights=s, minlength=n_bins)
    keep = counts > 0
    return observed[keep] / counts[keep], predicted[keep] / counts[keep], counts[keep]


def expected_calibration_error(y_true: ArrayLike, y_score: ArrayLike, n_bins: int = 10) -> float:
    """Row-weighted mean |observed default rate - mean PD| over equal-width PD bins (a loss)."""
    observed, predicted, counts = calibration_curve(y_true, y_score, n_bins)
    return float(np.sum(counts * np.abs(observed - predicted)) / np.sum(counts))


def bootstrap_ci(
    y_true: ArrayLike,
    y_score: ArrayLike,
    metric: Callable[[IntArray, FloatArray], float],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y, s)`` over seeded row resamples.

    Resamples that draw a single class (metric NaN) are dropped; (NaN, NaN) if none is usable.
    """
    y, s = check_inputs(y_true, y_score)
    if n_resamples < 1 or not 0 < confidence < 1:
        raise DataError(f"need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples}, {confidence}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, y.size, y.size)
        if _both_classes(y[idx]):
            values.append(metric(y[idx], s[idx]))
    if not values:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def summary(y_true: ArrayLike, y_score: ArrayLike, n_bins: int = 10) -> dict[str, float]:
    """The headline metrics the gate reads (no intervals: see ``bootstrap_ci``)."""
    y, s = check_inputs(y_true, y_score)
    return {
        "auc": roc_auc_score(y, s),
        "gini": gini_score(y, s),
        "ks": ks_statistic(y, s),
        "pr_auc": average_precision_score(y, s),
        "brier": brier_score_loss(y, s),
        "ece": expected_calibration_error(y, s, n_bins),
        "log_loss": log_loss(y, s),
        "default_rate": float(y.mean()),
        "mean_pd": float(s.mean()),
        "rows": float(y.size),
    }
