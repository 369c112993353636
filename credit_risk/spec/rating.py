"""The rating (master) scale and its per-grade back-test: what a PD-model validator reads first.

A master scale cuts the PD axis into grades whose PDs strictly increase (grade 1 = lowest risk).
Each grade is tested for calibration on held-out rows, one-sided for underestimation (the
supervisor's concern: the model says a grade is safer than it is):

* **Jeffreys test** (ECB IRB validation reporting instructions, 2019): the p-value is the CDF of
  Beta(D + 1/2, N - D + 1/2) at the grade's PD, D defaults among N obligors. A small p-value means
  the observed default rate is too high for the PD.
* **Binomial test**: P(X >= D) for X ~ Binomial(N, PD), the exact one-sided tail.

The grade's PD is the mean PD the model gave its rows. Concentration across grades is the
Herfindahl index of the grades' shares of rows (1/number of grades when even, 1 when all rows sit
in one grade). Pure numpy/scipy: no model, no I/O. scipy is imported by the tests only, so the
predictor (which grades PDs, never tests them) does not need it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from credit_risk.errors import FeatureSpecError

MIN_GRADES, MAX_GRADES = 2, 30


@dataclass(frozen=True)
class MasterScale:
    """Grades cut by PD ``boundaries`` (strictly increasing, inside (0, 1)): grade i holds PDs in
    [boundaries[i-1], boundaries[i]), the first from 0, the last up to 1."""

    boundaries: tuple[float, ...]
    source: str = "spec"  # how the boundaries were chosen, for the record

    def __post_init__(self) -> None:
        b = self.boundaries
        if not MIN_GRADES - 1 <= len(b) <= MAX_GRADES - 1:
            raise FeatureSpecError(
                f"a master scale needs {MIN_GRADES - 1} to {MAX_GRADES - 1} boundaries, got {len(b)}"
            )
        if not all(0.0 < x < 1.0 for x in b) or not all(x < y for x, y in itertools.pairwise(b)):
            raise FeatureSpecError(
                f"master scale boundaries must increase strictly inside (0, 1), got {list(b)}"
            )

    @property
    def labels(self) -> list[str]:
        return [grade_label(i) for i in range(len(self.boundaries) + 1)]

    def grade_index(self, pds: np.ndarray) -> np.ndarray:
        """0-based grade of each PD."""
        return np.searchsorted(np.asarray(self.boundaries), np.asarray(pds, dtype=np.float64), side="right")

    def grades(self, pds: np.ndarray) -> list[str]:
        labels = self.labels
        return [labels[i] for i in self.grade_index(pds).tolist()]

    def band(self, index: int) -> tuple[float, float]:
        edges = (0.0, *self.boundaries, 1.0)
        return edges[index], edges[index + 1]

    def to_dict(self) -> dict[str, Any]:
        return {"boundaries": list(self.boundaries), "labels": self.labels, "source": self.source}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MasterScale:
        return cls(tuple(float(x) for x in raw["boundaries"]), str(raw.get("source", "spec")))


def grade_label(index: int) -> str:
    """``G1`` (lowest risk), ``G2``, ..."""
    return f"G{index + 1}"


def fit_scale(pds: np.ndarray, n_grades: int) -> MasterScale:
    """A scale of up to ``n_grades`` grades holding equal shares of ``pds`` (quantile cuts, rounded
    to 4 decimals and de-duplicated, so a lumpy PD distribution can give fewer grades)."""
    pds = np.asarray(pds, dtype=np.float64)
    if not MIN_GRADES <= n_grades <= MAX_GRADES:
        raise FeatureSpecError(f"master_scale.grades must be {MIN_GRADES} to {MAX_GRADES}, got {n_grades}")
    if len(pds) < n_grades:
        raise FeatureSpecError(f"cannot fit {n_grades} grades on {len(pds)} PDs")
    cuts = np.quantile(pds, np.linspace(0, 1, n_grades + 1)[1:-1])
    bounds = sorted({round(float(c), 4) for c in cuts if 0.0 < round(float(c), 4) < 1.0})
    if not bounds:
        raise FeatureSpecError("the PDs are too concentrated to cut into grades")
    return MasterScale(tuple(bounds), f"{n_grades} quantile grades of {len(pds)} training PDs")


# --- tests -----------------------------------------------------------------------------------------
def jeffreys_p_value(defaults: int, n: int, pd: float) -> float:
    """One-sided Jeffreys test: Beta(D + 1/2, N - D + 1/2) CDF at ``pd``; small = PD too low."""
    if n < 1:
        return math.nan
    from scipy import stats

    return float(stats.beta.cdf(pd, defaults + 0.5, n - defaults + 0.5))


def binomial_p_value(defaults: int, n: int, pd: float) -> float:
    """One-sided exact binomial test: P(X >= D) for X ~ Binomial(N, pd); small = PD too low."""
    if n < 1:
        return math.nan
    from scipy import stats

    return float(stats.binom.sf(defaults - 1, n, pd))


def herfindahl(counts: np.ndarray) -> float:
    """Herfindahl index of shares: sum of squared shares (1/k when even over k, 1 when one)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return float(((counts / total) ** 2).sum()) if total > 0 else math.nan


@dataclass(frozen=True)
class GradeRow:
    grade: str
    pd_low: float
    pd_high: float
    n: int
    defaults: int
    mean_pd: float  # the grade's PD: mean model PD of its rows (NaN when empty)
    observed_rate: float
    jeffreys_p: float
    binomial_p: float


@dataclass(frozen=True)
class GradeReport:
    scale: MasterScale
    rows: tuple[GradeRow, ...]
    herfindahl: float
    monotone_observed: bool  # observed default rates never fall from one populated grade to the next
    inversions: tuple[str, ...]  # "G3>G4": observed rate of G3 above G4's

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale.to_dict(),
            "rows": [asdict(r) for r in self.rows],
            "herfindahl": self.herfindahl,
            "monotone_observed": self.monotone_observed,
            "inversions": list(self.inversions),
        }

    def populated(self) -> list[GradeRow]:
        return [r for r in self.rows if r.n > 0]


def grade_report(y_true: np.ndarray, y_score: np.ndarray, scale: MasterScale) -> GradeReport:
    """The grade table of held-out rows (labels 0/1, model PDs) on ``scale``."""
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(y_score, dtype=np.float64)
    index = scale.grade_index(p)
    rows = []
    for i, label in enumerate(scale.labels):
        mask = index == i
        n, d = int(mask.sum()), int(y[mask].sum())
        mean_pd = float(p[mask].mean()) if n else math.nan
        lo, hi = scale.band(i)
        rows.append(
            GradeRow(
                label,
                lo,
                hi,
                n,
                d,
                mean_pd,
                d / n if n else math.nan,
                jeffreys_p_value(d, n, mean_pd) if n else math.nan,
                binomial_p_value(d, n, mean_pd) if n else math.nan,
            )
        )
    populated = [r for r in rows if r.n > 0]
    inversions = tuple(
        f"{a.grade}>{b.grade}" for a, b in itertools.pairwise(populated) if a.observed_rate > b.observed_rate
    )
    return GradeReport(
        scale,
        tuple(rows),
        herfindahl(np.array([r.n for r in rows])),
        not inversions,
        inversions,
    )
