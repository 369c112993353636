import math

import pytest

from credit_risk.errors import ConfigError
from credit_risk.evidence import gate
from credit_risk.evidence.fairness import SliceReport

GOOD = {"auc": 0.80, "ks": 0.45, "brier": 0.15, "ece": 0.03}
CFG = gate.GateConfig()


def _slice(name, di, gap, note=""):
    return SliceReport(
        slice=name, feature=name, protected=True, groups=[], disparate_impact=di, auc_gap=gap, note=note
    )


def _failed(d):
    return [(c.name, c.group) for c in d.checks if not c.passed and not c.note]


def test_good_model_is_approved_with_every_check_recorded():
    d = gate.decide(GOOD, CFG, [_slice("sex", 0.95, 0.05)])
    assert d.approved and d.reasons == []
    assert [c.name for c in d.checks] == [
        "min_auc",
        "min_ks",
        "max_brier",
        "max_ece",
        "min_disparate_impact",
        "max_auc_gap",
        "champion_challenger",
        "master_scale",
        "max_monotone_violation",
        "min_cohort_p_value",
    ]
    assert "first model" in d.checks[-4].note
    # no rating scale, no declared monotone feature, no origination date: recorded as such, never judged
    assert "no master scale" in d.checks[-3].note and "nothing swept" in d.checks[-2].note
    assert "no origination date" in d.checks[-1].note
    assert d.metrics == GOOD and d.gate_config["min_auc"] == 0.70


@pytest.mark.parametrize(
    "metric, value, check",
    [("auc", 0.65, "min_auc"), ("ks", 0.2, "min_ks"), ("brier", 0.25, "max_brier"), ("ece", 0.2, "max_ece")],
)
def test_each_absolute_check_alone_can_reject(metric, value, check):
    d = gate.decide({**GOOD, metric: value}, CFG)
    assert d.decision == gate.REJECTED and _failed(d) == [(check, "")]
    assert metric in d.reasons[0] and "FAIL" in d.reasons[0]


@pytest.mark.parametrize("di, gap, check", [(0.7, 0.05, "min_disparate_impact"), (0.9, 0.3, "max_auc_gap")])
def test_each_fairness_check_alone_can_reject(di, gap, check):
    d = gate.decide(GOOD, CFG, [_slice("sex", di, gap)])
    assert not d.approved and _failed(d) == [(check, "sex")]


def test_report_only_slice_is_recorded_not_judged():
    cfg = CFG.with_overrides({"fairness_report_only": ["age_band"]})
    d = gate.decide(GOOD, cfg, [_slice("age_band", 0.5, 0.05)])
    assert d.approved
    di = next(c for c in d.checks if c.group == "age_band" and c.metric == "disparate_impact")
    assert di.value == 0.5 and "would FAIL" in di.note


def test_unassessable_slice_is_recorded_and_does_not_reject():
    d = gate.decide(GOOD, CFG, [_slice("foreign", math.nan, math.nan, "too few rows")])
    assert d.approved and any("not assessable" in c.note for c in d.checks)


def test_champion_better_than_challenger_rejects():
    d = gate.decide(GOOD, CFG, champion_metrics={"auc": 0.83, "brier": 0.15})
    assert not d.approved and _failed(d) == [("max_auc_drop", "vs champion")]
    d = gate.decide(GOOD, CFG, champion_metrics={"auc": 0.805, "brier": 0.14})
    assert not d.approved and _failed(d) == [("max_brier_increase", "vs champion")]


def test_challenger_within_tolerance_of_champion_is_approved():
    assert gate.decide(GOOD, CFG, champion_metrics={"auc": 0.805, "brier": 0.148}).approved


def test_nan_metric_fails_closed():
    d = gate.decide({**GOOD, "auc": math.nan}, CFG)
    assert not d.approved and "undefined (NaN)" in d.reasons[0]


def test_no_thresholds_rejects():
    off = {k: None for k in gate.CHECK_NAMES}  # every check the gate knows, disabled
    d = gate.decide(GOOD, CFG.with_overrides(off))
    assert not d.approved and "no thresholds" in d.reasons[0]


def test_override_disabled_cannot_approve_a_failed_gate():
    d = gate.apply_override(gate.decide({**GOOD, "auc": 0.6}, CFG), "j.doe", "board approved", False)
    assert not d.approved and "overrides are disabled" in d.reasons[-1]
    assert d.override == gate.Override("j.doe", "board approved", allowed=False, applied=False)


def test_override_enabled_approves_and_is_recorded():
    d = gate.apply_override(
        gate.decide({**GOOD, "auc": 0.6}, CFG), "j.doe", "interim model, ticket RISK-12", True
    )
    assert d.approved and d.override.applied and d.override.approver == "j.doe"
    assert any("OVERRIDDEN by j.doe" in r for r in d.reasons)
    assert gate.Decision.from_json(d.to_json()).override == d.override


def test_override_needs_approver_and_rationale():
    with pytest.raises(ConfigError, match="both an approver and a rationale"):
        gate.apply_override(gate.decide(GOOD, CFG), "j.doe", "", True)


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("min_auc: 0.75\nmax_ece: null\n")
    cfg = gate.GateConfig.load(str(path), {"min_ks": 0.4})
    assert (cfg.min_auc, cfg.max_ece, cfg.min_ks, cfg.max_brier) == (0.75, None, 0.4, 0.20)
    assert gate.GateConfig.load().fairness_report_only == ("age_band",)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"min_auc": 7}, "min_auc must be a number in \\[0, 1\\] or null, got 7"),
        ({"min_acu": 0.7}, "unknown gate setting\\(s\\) \\['min_acu'\\]"),
        ({"operating_threshold": 1.0}, "operating_threshold must be in \\(0, 1\\)"),
        ({"min_group_rows": 0}, "min_group_rows must be a positive integer"),
    ],
)
def test_bad_gate_config_names_the_setting(overrides, message):
    with pytest.raises(ConfigError, match=message):
        gate.GateConfig.load(None, overrides)


def test_decision_json_round_trip_is_strict_json():
    import json

    d = gate.decide(
        GOOD,
        CFG,
        [_slice("sex", 0.9, 0.1), _slice("x", math.nan, math.nan, "few")],
        {"auc": 0.79, "brier": 0.16},
        model_uri="gs://b/m",
    )
    text = d.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    again = gate.Decision.from_json(text)
    assert again.to_json() == text and again.decision == d.decision
    assert [c.describe() for c in again.checks] == [c.describe() for c in d.checks]


def test_off_in_overrides_disables_a_check_like_null():
    """KFP cannot pass a null inside a dict parameter, so gate_overrides says "off"."""
    cfg = CFG.with_overrides({"max_ece": "off", "min_ks": None})
    assert cfg.max_ece is None and cfg.min_ks is None and cfg.min_auc == CFG.min_auc
