"""Monotone risk drivers: sweep each declared feature over a grid for sampled applicants and
measure the worst move of the PD against the declared direction.

For a feature declared ``monotone: increasing`` the PD must never fall as the feature grows: over
the grid x_1 < ... < x_g an applicant's violation is max over i < j of PD(x_i) - PD(x_j), the
largest drop after any earlier point (0 for a monotone curve); ``decreasing`` mirrors it. The
grid is the feature's quantiles in the evaluated rows (its observed range, not extrapolation);
every other input keeps the applicant's own value. Pure: the model comes in as a scoring function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from credit_risk.spec.feature_spec import FeatureSpec

DEFAULT_SAMPLE, DEFAULT_GRID = 200, 25


@dataclass(frozen=True)
class FeatureSweep:
    feature: str
    monotone: str
    grid: tuple[float, ...]
    applicants: int
    violating: int  # applicants whose PD moved against the direction by more than 1e-6
    worst_violation: float  # largest PD move against the direction, in PD units (0 = monotone)
    worst_row: int  # index (in the evaluated frame) of that applicant, -1 if none
    worst_from: float  # the feature values between which it happened
    worst_to: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d


def sweep(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    spec: FeatureSpec,
    sample: int = DEFAULT_SAMPLE,
    grid_points: int = DEFAULT_GRID,
    seed: int = 0,
) -> list[FeatureSweep]:
    """One ``FeatureSweep`` per ``spec.monotone_features`` (one scoring call per feature)."""
    rng = np.random.default_rng(seed)
    frame = frame.reset_index(drop=True)
    rows = np.sort(rng.choice(len(frame), size=min(sample, len(frame)), replace=False))
    base = frame.iloc[rows].reset_index(drop=True)
    out = []
    for f in spec.monotone_features:
        observed = frame[f.name].dropna().to_numpy(dtype=np.float64)
        if len(observed) == 0:
            continue
        grid = np.unique(np.quantile(observed, np.linspace(0, 1, grid_points)))
        tiled = base.loc[base.index.repeat(len(grid))].reset_index(drop=True)
        tiled[f.name] = np.tile(grid, len(base)).astype(frame[f.name].dtype, copy=False)
        pds = np.asarray(predict(tiled), dtype=np.float64).reshape(len(base), len(grid))
        oriented = pds * f.direction  # increasing: the curve must not fall
        running_max = np.maximum.accumulate(oriented, axis=1)
        drops = running_max - oriented
        per_applicant = drops.max(axis=1)
        worst = int(per_applicant.argmax())
        k = int(drops[worst].argmax())
        start = int(np.argmax(oriented[worst, : k + 1] == running_max[worst, k]))
        bad = float(per_applicant[worst])
        out.append(
            FeatureSweep(
                f.name,
                str(f.monotone),
                tuple(float(x) for x in grid),
                len(base),
                int((per_applicant > 1e-6).sum()),
                bad,
                int(rows[worst]) if bad > 0 else -1,
                float(grid[start]) if bad > 0 else float("nan"),
                float(grid[k]) if bad > 0 else float("nan"),
            )
        )
    return out
