"""Credit-grade binary metrics in plain numpy, each checked against scikit-learn in the tests.

Conventions (as scikit-learn): ``*_score`` is maximised, ``*_loss`` minimised. ``y_true`` is 0/1 with
1 = default; ``y_score`` is the predicted PD. Both are 1-D of equal length. Undefined cases (a single
class) return NaN, never a guess; the approval gate treats NaN as a failure.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from credit_risk.errors import DataError


def check_inputs(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
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


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def roc_auc_score(y_true, y_score) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN for one class."""
    y, s = check_inputs(y_true, y_score)
    if not _both_classes(y):
        return float("nan")
    ranks = rankdata(s)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gini_score(y_true, y_score) -> float:
    """Accuracy ratio / Gini = 2 * AUC - 1."""
    return 2.0 * roc_auc_score(y_true, y_score) - 1.0


def roc_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def ks_statistic(y_true, y_score) -> float:
    """Kolmogorov-Smirnov: max distance between the score CDFs of defaults and non-defaults."""
    y, s = check_inputs(y_true, y_score)
    if not _both_classes(y):
        return float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    return float(np.max(np.abs(tpr - fpr)))


def brier_score_loss(y_true, y_score) -> float:
    """Mean squared error of the PD against the 0/1 outcome."""
    y, s = check_inputs(y_true, y_score)
    return float(np.mean((s - y) ** 2))


def log_loss(y_true, y_score, eps: float = 1e-15) -> float:
    y, s = check_inputs(y_true, y_score)
    s = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1 - s)))


def confusion_matrix(y_true, y_score, threshold: float) -> np.ndarray:
    """[[TN, FP], [FN, TP]] when predicting default for PD >= threshold."""
    y, s = check_inputs(y_true, y_score)
    pred = (s >= threshold).astype(np.int64)
    return np.array([[int(((y == 0) & (pred == 0)).sum()), int(((y == 0) & (pred == 1)).sum())],
                     [int(((y == 1) & (pred == 0)).sum()), int(((y == 1) & (pred == 1)).sum())]])


def summary(y_true, y_score) -> dict[str, float]:
    """The headline metrics the gate reads."""
    y, s = check_inputs(y_true, y_score)
    return {
        "auc": roc_auc_score(y, s),
        "gini": gini_score(y, s),
        "ks": ks_statistic(y, s),
        "brier": brier_score_loss(y, s),
        "log_loss": log_loss(y, s),
        "default_rate": float(y.mean()),
        "mean_pd": float(s.mean()),
        "rows": float(y.size),
    }
