"""The rating scale, its per-grade tests and the gate's grade and monotonicity checks, against
hand-computed values (no scipy in the expected side) and a seeded under-estimated grade."""

import math

import numpy as np
import pandas as pd
import pytest

from credit_risk.errors import FeatureSpecError
from credit_risk.evidence import gate, monotonicity
from credit_risk.spec import feature_spec, rating


def _beta_cdf(x, a, b, steps=200_000):
    """Midpoint-rule integral of the Beta(a, b) density on [0, x] (independent of scipy)."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    h = x / steps
    return (
        sum(
            math.exp(log_norm + (a - 1) * math.log(t) + (b - 1) * math.log1p(-t))
            for t in ((i + 0.5) * h for i in range(steps))
        )
        * h
    )


def test_jeffreys_and_binomial_p_values_against_hand_computed_ones():
    # 5 defaults among 20 obligors of a grade with PD 10 %
    assert rating.jeffreys_p_value(5, 20, 0.10) == pytest.approx(_beta_cdf(0.10, 5.5, 15.5), rel=1e-5)
    tail = 1 - sum(math.comb(20, k) * 0.1**k * 0.9 ** (20 - k) for k in range(5))
    assert rating.binomial_p_value(5, 20, 0.10) == pytest.approx(tail, rel=1e-9)  # = 0.0431...
    assert rating.binomial_p_value(0, 20, 0.10) == 1.0  # P(X >= 0)
    # no defaults can never show underestimation; many defaults must
    assert rating.jeffreys_p_value(0, 50, 0.02) > 0.3
    assert rating.jeffreys_p_value(10, 50, 0.02) < 1e-4
    assert math.isnan(rating.jeffreys_p_value(0, 0, 0.1))


def test_herfindahl_of_shares():
    assert rating.herfindahl(np.array([50, 30, 20])) == pytest.approx(0.25 + 0.09 + 0.04)
    assert rating.herfindahl(np.array([10, 10, 10, 10])) == pytest.approx(0.25)
    assert rating.herfindahl(np.array([0, 7, 0])) == 1.0


def test_grade_table_by_hand():
    scale = rating.MasterScale((0.1, 0.3))
    y = np.array([0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.05, 0.09, 0.1, 0.2, 0.29, 0.5, 0.9])  # 0.1 falls in G2: bands are [lo, hi)
    report = rating.grade_report(y, p, scale)
    assert [(r.grade, r.n, r.defaults) for r in report.rows] == [("G1", 2, 0), ("G2", 3, 2), ("G3", 2, 2)]
    g2 = report.rows[1]
    assert (g2.pd_low, g2.pd_high) == (0.1, 0.3)
    assert g2.mean_pd == pytest.approx((0.1 + 0.2 + 0.29) / 3)
    assert g2.observed_rate == pytest.approx(2 / 3)
    assert g2.jeffreys_p == pytest.approx(_beta_cdf(g2.mean_pd, 2.5, 1.5), rel=1e-4)
    assert report.herfindahl == pytest.approx((4 + 9 + 4) / 49)
    assert report.monotone_observed and report.inversions == ()
    inverted = rating.grade_report(np.array([1, 1, 0, 0, 0, 0, 1]), p, scale)
    assert inverted.inversions == ("G1>G2",) and not inverted.monotone_observed


def test_scale_validation_and_quantile_fit():
    with pytest.raises(FeatureSpecError, match="strictly"):
        rating.MasterScale((0.2, 0.1))
    with pytest.raises(FeatureSpecError, match="inside"):
        rating.MasterScale((0.0, 0.5))
    scale = rating.fit_scale(np.linspace(0.01, 0.99, 1000), 4)
    assert scale.boundaries == pytest.approx((0.255, 0.5, 0.745), abs=1e-3)
    assert scale.labels == ["G1", "G2", "G3", "G4"] and "quantile" in scale.source
    assert scale.grades(np.array([0.0, 0.3, 0.99])) == ["G1", "G2", "G4"]
    assert rating.MasterScale.from_dict(scale.to_dict()) == scale


def test_spec_master_scale_and_monotone_keys_are_validated():
    base = {
        "name": "t",
        "label": "y",
        "features": [
            {"name": "x", "type": "numeric", "monotone": "increasing"},
            {"name": "c", "type": "categorical"},
        ],
    }
    spec = feature_spec.from_dict({**base, "master_scale": {"grades": 5}})
    assert spec.master_scale.grades == 5 and [f.name for f in spec.monotone_features] == ["x"]
    assert feature_spec.from_dict(spec.to_dict()) == spec
    for bad, message in (
        ({"master_scale": {"boundaries": [0.5, 0.2]}}, "master_scale.boundaries"),
        ({"master_scale": {"grades": 1}}, "master_scale.grades"),
        ({"master_scale": {"grades": 5, "boundaries": [0.1]}}, "expected {boundaries"),
    ):
        with pytest.raises(FeatureSpecError, match=message):
            feature_spec.from_dict({**base, **bad})
    wrong = {**base, "features": [{"name": "c", "type": "categorical", "monotone": "increasing"}]}
    with pytest.raises(FeatureSpecError, match="numeric features only"):
        feature_spec.from_dict(wrong)
    sideways = {**base, "features": [{"name": "x", "type": "numeric", "monotone": "up"}]}
    with pytest.raises(FeatureSpecError, match="increasing"):
        feature_spec.from_dict(sideways)


def test_bundled_specs_declare_a_scale_directions_and_a_reason_for_every_reason_feature():
    from credit_risk.spec.contract import reason_features
    from tests.helpers import CREDIT_SPEC

    for path in (CREDIT_SPEC, CREDIT_SPEC.parent / "german_credit.spec.yaml"):
        spec = feature_spec.load(path)
        assert spec.master_scale is not None and spec.monotone_features
        assert all(f.reason_text for f in reason_features(spec)), path


def test_a_seeded_underestimated_grade_fails_its_check_and_only_it():
    """PDs honest everywhere except G3, where defaults happen at 2.5x the PD: the Jeffreys check of
    G3 (and no other grade) fails and the gate rejects, naming G3."""
    rng = np.random.default_rng(7)
    scale = rating.MasterScale((0.03, 0.06, 0.10, 0.15, 0.25, 0.40, 0.60))
    pd_ = rng.uniform(0.005, 0.9, 6000)
    truth = np.where(scale.grade_index(pd_) == 2, np.minimum(pd_ * 2.5, 1.0), pd_)
    y = (rng.uniform(size=pd_.size) < truth).astype(int)
    report = rating.grade_report(y, pd_, scale)
    checks = gate.grade_checks(report, gate.GateConfig())
    failed = [c.group for c in checks if c.name == "min_grade_p_value" and not c.passed]
    assert failed == ["G3"]
    d = gate.decide({"auc": 0.8, "ks": 0.45, "brier": 0.15, "ece": 0.03}, gate.GateConfig(), grades=report)
    assert not d.approved and any("[G3]" in r and "jeffreys_p" in r for r in d.reasons)
    # honest PDs pass every grade
    honest = rating.grade_report((rng.uniform(size=pd_.size) < pd_).astype(int), pd_, scale)
    assert all(c.passed for c in gate.grade_checks(honest, gate.GateConfig()))


def _toy_spec():
    return feature_spec.from_dict(
        {
            "name": "t",
            "label": "y",
            "features": [
                {"name": "debt", "type": "numeric", "monotone": "increasing"},
                {"name": "income", "type": "numeric", "monotone": "decreasing"},
                {"name": "c", "type": "categorical"},
            ],
        }
    )


def test_sweep_finds_the_worst_move_against_the_direction():
    frame = pd.DataFrame(
        {"debt": np.linspace(0, 10, 50), "income": np.linspace(1, 5, 50), "c": ["a"] * 50, "y": 0}
    )

    def bumpy(rows):  # rises with debt except a 0.2 dip at debt in [4, 6); falls with income
        dip = ((rows["debt"] >= 4) & (rows["debt"] < 6)) * 0.2
        return (0.3 + 0.04 * rows["debt"] - dip - 0.05 * rows["income"]).to_numpy()

    by_feature = {
        s.feature: s for s in monotonicity.sweep(bumpy, frame, _toy_spec(), sample=20, grid_points=51)
    }
    debt, income = by_feature["debt"], by_feature["income"]
    assert debt.violating == 20 and debt.worst_violation == pytest.approx(
        0.2 - 0.04 * (4 - debt.worst_from), abs=0.01
    )
    assert debt.worst_from < 4 <= debt.worst_to < 6
    assert income.worst_violation == 0.0 and income.violating == 0 and income.worst_row == -1
    checks = gate.monotonicity_checks(list(by_feature.values()), gate.GateConfig(report_only=()))
    assert [(c.group, c.passed) for c in checks] == [("debt", False), ("income", True)]
    # report-only by default: measured, recorded, not deciding
    d = gate.decide(
        {"auc": 0.8, "ks": 0.45, "brier": 0.15, "ece": 0.03},
        gate.GateConfig(),
        sweeps=list(by_feature.values()),
    )
    assert d.approved and any(c.group == "debt" and "would FAIL" in c.note for c in d.checks)


def test_report_only_names_must_be_checks_and_the_yaml_holds_the_dataclass_defaults():
    import yaml

    with pytest.raises(Exception, match="unknown check"):
        gate.GateConfig(report_only=("max_typo",))
    packaged = yaml.safe_load(gate.DEFAULT_CONFIG.read_text())
    assert packaged == gate.GateConfig().to_dict()  # gate defaults declared once, mirrored in the file
