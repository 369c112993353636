import math

import pytest

from credit_risk import gate
from credit_risk.errors import ConfigError

GOOD = {"auc": 0.80, "ks": 0.45, "brier": 0.15}


def test_good_model_is_approved_with_every_check_recorded():
    d = gate.decide(GOOD, gate.Thresholds(min_auc=0.7, min_ks=0.3, max_brier=0.2))
    assert d.approved and d.reasons == []
    assert [(c.name, c.passed) for c in d.checks] == [("min_auc", True), ("min_ks", True), ("max_brier", True)]
    assert d.metrics == GOOD


@pytest.mark.parametrize("metric, value, check", [
    ("auc", 0.65, "min_auc"), ("ks", 0.2, "min_ks"), ("brier", 0.25, "max_brier")])
def test_each_check_alone_can_reject(metric, value, check):
    d = gate.decide({**GOOD, metric: value}, gate.Thresholds())
    assert d.decision == gate.REJECTED
    assert [c.name for c in d.checks if not c.passed] == [check]
    assert metric in d.reasons[0] and "FAIL" in d.reasons[0]


def test_nan_metric_fails_closed():
    d = gate.decide({**GOOD, "auc": math.nan}, gate.Thresholds())
    assert not d.approved and "undefined (NaN)" in d.reasons[0]


def test_missing_metric_fails_closed():
    d = gate.decide({"auc": 0.9}, gate.Thresholds())
    assert not d.approved and len(d.reasons) == 2


def test_no_thresholds_rejects():
    d = gate.decide(GOOD, gate.Thresholds(min_auc=None, min_ks=None, max_brier=None))
    assert not d.approved and "no thresholds" in d.reasons[0]


def test_threshold_out_of_range_is_a_config_error():
    with pytest.raises(ConfigError, match="min_auc must be in \\[0, 1\\], got 7"):
        gate.Thresholds(min_auc=7)


def test_decision_json_round_trip():
    d = gate.decide(GOOD, gate.Thresholds(), model_uri="gs://b/m")
    again = gate.Decision.from_json(d.to_json())
    assert again == d
