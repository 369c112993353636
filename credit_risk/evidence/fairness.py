"""Slices and fairness: metrics per group of each protected attribute and each spec slice.

Approval means the credit decision: an applicant is approved when PD < the operating threshold.
The disparate impact ratio is the lowest group approval rate over the highest (four-fifths rule:
>= 0.8); the AUC gap is the highest group AUC minus the lowest. Groups with fewer than
``min_group_rows`` rows are reported but left out of both, since their rates are noise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from numpy.typing import ArrayLike

from credit_risk.errors import DataError
from credit_risk.evidence import metrics
from credit_risk.spec.feature_spec import FeatureSpec

MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class GroupMetrics:
    group: str
    rows: int
    default_rate: float
    mean_pd: float
    approval_rate: float
    auc: float
    included: bool  # counted in the disparate impact / AUC gap


@dataclass
class SliceReport:
    slice: str
    feature: str
    protected: bool
    groups: list[GroupMetrics] = field(default_factory=list)
    disparate_impact: float = math.nan
    auc_gap: float = math.nan
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _band_labels(values: pd.Series, bins: list[float]) -> pd.Series:
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(bins)]
    banded = pd.cut(values, bins=bins, right=False, labels=labels)
    return banded.astype(object).where(banded.notna(), MISSING_GROUP).astype(str)


def slice_groups(frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, tuple[str, bool, pd.Series]]:
    """slice name -> (feature, protected?, group label per row). Protected categoricals are sliced
    by value; spec ``slices`` by their bins (numerics) or values (categoricals)."""
    out: dict[str, tuple[str, bool, pd.Series]] = {}
    needed: list[tuple[str, str, tuple[float, ...] | None, bool]] = [
        (f.name, f.name, None, True) for f in spec.protected_features if not f.is_numeric
    ]
    needed += [(s.name, s.feature, s.bins, spec.feature(s.feature).protected) for s in spec.slices]
    for name, feature, bins, protected in needed:
        if feature not in frame.columns:
            raise DataError(
                f"slice {name!r} needs column {feature!r}, which the evaluation data lacks; "
                f"it has {list(frame.columns)}"
            )
        col = frame[feature]
        labels = (
            _band_labels(col.astype(float), list(bins))
            if bins
            else col.astype(object).where(col.notna(), MISSING_GROUP).astype(str)
        )
        out[name] = (feature, protected, labels.reset_index(drop=True))
    return out


def fairness_report(
    frame: pd.DataFrame,
    y_true: ArrayLike,
    y_score: ArrayLike,
    spec: FeatureSpec,
    operating_threshold: float,
    min_group_rows: int = 30,
) -> list[SliceReport]:
    y, s = metrics.check_inputs(y_true, y_score)
    if len(frame) != y.size:
        raise DataError(f"the evaluation frame has {len(frame)} rows but there are {y.size} scores")
    reports = []
    for name, (feature, protected, labels) in slice_groups(frame, spec).items():
        report = SliceReport(slice=name, feature=feature, protected=protected)
        for group in sorted(labels.unique()):
            mask = (labels == group).to_numpy()
            gy, gs = y[mask], s[mask]
            report.groups.append(
                GroupMetrics(
                    group=group,
                    rows=int(mask.sum()),
                    default_rate=float(gy.mean()),
                    mean_pd=float(gs.mean()),
                    approval_rate=float((gs < operating_threshold).mean()),
                    auc=metrics.roc_auc_score(gy, gs),
                    included=bool(mask.sum() >= min_group_rows),
                )
            )
        counted = [g for g in report.groups if g.included]
        if len(counted) >= 2:
            rates = [g.approval_rate for g in counted]
            report.disparate_impact = min(rates) / max(rates) if max(rates) > 0 else math.nan
            aucs = [g.auc for g in counted if not math.isnan(g.auc)]
            report.auc_gap = max(aucs) - min(aucs) if len(aucs) >= 2 else math.nan
        else:
            report.note = f"fewer than two groups with >= {min_group_rows} rows: not assessable"
        reports.append(report)
    return reports
