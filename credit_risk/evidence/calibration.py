"""Post-hoc calibration evidence: fit Platt or isotonic scaling on one half of the held-out rows and
report calibration before/after on the other half.

This is evidence for the validator (would recalibration fix a failed calibration check, and by how
much?), not a silent change: the gate still judges the model as exported, and a recalibrated model
would be a new model going through the gate again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from credit_risk.errors import ConfigError
from credit_risk.evidence import metrics

METHODS = ("platt", "isotonic")


@dataclass(frozen=True)
class RecalibrationReport:
    method: str
    fit_rows: int
    test_rows: int
    ece_before: float
    ece_after: float
    brier_before: float
    brier_after: float
    auc_before: float
    auc_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64).reshape(-1, 1)


def recalibrate(
    y_true: ArrayLike, y_score: ArrayLike, method: str = "platt", seed: int = 0, n_bins: int = 10
) -> RecalibrationReport:
    """Fit ``method`` on a stratified half of the rows, measure on the other half."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    if method not in METHODS:
        raise ConfigError(f"recalibration method must be one of {METHODS}, got {method!r}")
    y, s = metrics.check_inputs(y_true, y_score)
    idx_fit, idx_test = train_test_split(np.arange(y.size), test_size=0.5, random_state=seed, stratify=y)
    if method == "platt":
        model = LogisticRegression(C=1e6).fit(_logit(s[idx_fit]), y[idx_fit])
        after = model.predict_proba(_logit(s[idx_test]))[:, 1]
    else:
        model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s[idx_fit], y[idx_fit])
        after = model.predict(s[idx_test])
    yt, before = y[idx_test], s[idx_test]
    return RecalibrationReport(
        method=method,
        fit_rows=int(idx_fit.size),
        test_rows=int(idx_test.size),
        ece_before=metrics.expected_calibration_error(yt, before, n_bins),
        ece_after=metrics.expected_calibration_error(yt, after, n_bins),
        brier_before=metrics.brier_score_loss(yt, before),
        brier_after=metrics.brier_score_loss(yt, after),
        auc_before=metrics.roc_auc_score(yt, before),
        auc_after=metrics.roc_auc_score(yt, after),
    )
