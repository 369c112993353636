import math

import numpy as np
import pandas as pd
import pytest

from credit_risk.errors import DataError
from credit_risk.evidence import fairness
from credit_risk.spec.feature_spec import from_dict

SPEC = from_dict(
    {
        "name": "toy",
        "label": "default",
        "features": [
            {"name": "income", "type": "numeric"},
            {"name": "sex", "type": "categorical", "protected": True, "model_input": False},
            {"name": "age", "type": "numeric", "protected": True},
        ],
        "slices": [{"name": "age_band", "feature": "age", "bins": [18, 30, 120]}],
    }
)


def _frame():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "income": rng.random(n),
            "sex": np.where(np.arange(n) < 300, "m", "f"),
            "age": np.where(np.arange(n) % 2 == 0, 25.0, 45.0),
        }
    )
    y = rng.integers(0, 2, n)
    s = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    return frame, y, s


def test_groups_rates_and_ratios_against_hand_computation():
    frame, y, s = _frame()
    reports = {r.slice: r for r in fairness.fairness_report(frame, y, s, SPEC, 0.5, min_group_rows=30)}
    assert set(reports) == {"sex", "age_band"} and reports["sex"].protected
    approve = s < 0.5
    m, f = (frame["sex"] == "m").to_numpy(), (frame["sex"] == "f").to_numpy()
    rates = {"m": approve[m].mean(), "f": approve[f].mean()}
    assert reports["sex"].disparate_impact == pytest.approx(min(rates.values()) / max(rates.values()))
    groups = {g.group: g for g in reports["sex"].groups}
    assert groups["f"].rows == 100 and groups["f"].approval_rate == pytest.approx(rates["f"])
    assert {g.group for g in reports["age_band"].groups} == {"[18, 30)", "[30, 120)"}


def test_small_groups_are_reported_but_not_judged():
    frame, y, s = _frame()
    (r,) = [
        r for r in fairness.fairness_report(frame, y, s, SPEC, 0.5, min_group_rows=150) if r.slice == "sex"
    ]
    assert [g.included for g in r.groups] == [False, True]  # f has 100 rows, m 300
    assert math.isnan(r.disparate_impact) and "fewer than two groups" in r.note


def test_missing_slice_column_is_a_clear_error():
    frame, y, s = _frame()
    with pytest.raises(DataError, match="slice 'age_band' needs column 'age'"):
        fairness.fairness_report(frame.drop(columns=["age"]), y, s, SPEC, 0.5)


def test_length_mismatch_and_nan_scores_are_clear_errors():
    frame, y, s = _frame()
    with pytest.raises(DataError, match="400 rows but there are 399 scores"):
        fairness.fairness_report(frame, y[:-1], s[:-1], SPEC, 0.5)
    s = s.copy()
    s[3] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        fairness.fairness_report(frame, y, s, SPEC, 0.5)
