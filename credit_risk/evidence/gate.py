"""The approval gate: evidence vs a gate config -> an auditable decision. Fails closed.

Checks: absolute (AUC, KS, Brier, calibration error), fairness (disparate impact and AUC gap per
protected attribute / slice), champion-challenger (relative to the deployed model), the rating
scale (a Jeffreys test per grade, observed default rates in grade order, Herfindahl concentration)
monotone risk drivers (the worst PD move against a declared direction) and, when the data has
origination dates, the out-of-time back-test (a Jeffreys test per held-out cohort). A check named in
``report_only`` is measured and recorded but does not decide. No enabled check, a NaN value or any
failed check means "rejected", always with every reason. A human override can approve a rejected
model only when explicitly allowed, and is always recorded.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from credit_risk import storage
from credit_risk.errors import ConfigError
from credit_risk.evidence.fairness import SliceReport
from credit_risk.evidence.monotonicity import FeatureSweep
from credit_risk.evidence.vintage import PERIODS, VintageReport
from credit_risk.spec.contract import DEFAULT_OPERATING_THRESHOLD
from credit_risk.spec.rating import GradeReport

APPROVED = "approved"
REJECTED = "rejected"
DEFAULT_CONFIG = Path(__file__).parents[1] / "config" / "gate.yaml"

_UNIT_INTERVAL = {
    "min_auc",
    "min_ks",
    "max_brier",
    "max_ece",
    "operating_threshold",
    "min_disparate_impact",
    "max_auc_gap",
    "max_auc_drop",
    "max_brier_increase",
    "min_grade_p_value",
    "max_herfindahl",
    "max_monotone_violation",
    "min_cohort_p_value",
}
# every check a gate config can name in report_only
CHECK_NAMES = (
    "min_auc",
    "min_ks",
    "max_brier",
    "max_ece",
    "min_disparate_impact",
    "max_auc_gap",
    "max_auc_drop",
    "max_brier_increase",
    "min_grade_p_value",
    "max_grade_inversions",
    "max_herfindahl",
    "max_monotone_violation",
    "min_cohort_p_value",
)


OFF = "off"  # an override value that disables a check


@dataclass(frozen=True)
class GateConfig:
    """Bars a model must clear. A ``None`` bar (``"off"`` in overrides) disables its check."""

    min_auc: float | None = 0.70
    min_ks: float | None = 0.30
    max_brier: float | None = 0.20
    max_ece: float | None = 0.06
    operating_threshold: float = DEFAULT_OPERATING_THRESHOLD
    min_disparate_impact: float | None = 0.80
    max_auc_gap: float | None = 0.20
    min_group_rows: int = 30
    fairness_report_only: tuple[str, ...] = ("age_band",)  # slices measured and recorded, not judged
    max_auc_drop: float | None = 0.01
    max_brier_increase: float | None = 0.005
    min_grade_p_value: float | None = 0.01  # one-sided Jeffreys test per populated grade
    max_grade_inversions: int | None = 0  # grades whose observed default rate exceeds the next one's
    max_herfindahl: float | None = 0.25  # concentration of held-out rows across grades
    max_monotone_violation: float | None = 0.005  # worst PD move against a declared direction
    min_cohort_p_value: float | None = 0.01  # Jeffreys test per origination cohort (spec origination_date)
    vintage_period: str = "quarter"  # cohorts of the held-out rows: month | quarter | year
    report_only: tuple[str, ...] = ("max_grade_inversions", "max_monotone_violation")  # measured, not judged
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 42
    recalibration: str | None = "platt"  # when max_ece fails: platt | isotonic | null (off)

    def __post_init__(self) -> None:
        for name in _UNIT_INTERVAL:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0
            ):
                raise ConfigError(f"gate setting {name} must be a number in [0, 1] or null, got {value!r}")
        if self.operating_threshold is None or not 0 < self.operating_threshold < 1:
            raise ConfigError(f"operating_threshold must be in (0, 1), got {self.operating_threshold!r}")
        for name in ("fairness_report_only", "report_only"):
            value = getattr(self, name)
            if isinstance(value, (list, str)):
                object.__setattr__(self, name, tuple([value] if isinstance(value, str) else value))
        unknown = sorted(set(self.report_only) - set(CHECK_NAMES))
        if unknown:
            raise ConfigError(f"report_only names unknown check(s) {unknown}; checks: {list(CHECK_NAMES)}")
        inversions = self.max_grade_inversions
        if inversions is not None and (
            isinstance(inversions, bool) or not isinstance(inversions, int) or inversions < 0
        ):
            raise ConfigError(
                f"max_grade_inversions must be a non-negative integer or null, got {inversions!r}"
            )
        if self.vintage_period not in PERIODS:
            raise ConfigError(f"vintage_period must be one of {list(PERIODS)}, got {self.vintage_period!r}")
        if self.recalibration not in (None, "platt", "isotonic"):
            raise ConfigError(f"recalibration must be platt, isotonic or null, got {self.recalibration!r}")
        for name in ("min_group_rows", "bootstrap_resamples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(
                    f"gate setting {name} must be a positive integer, got {getattr(self, name)!r}"
                )

    def with_overrides(self, overrides: dict[str, Any] | None) -> GateConfig:
        overrides = overrides or {}
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown gate setting(s) {unknown}; known: {sorted(known)}")
        # "off" = null: KFP pipeline parameters cannot carry a null inside a dict
        cleaned: dict[str, Any] = {k: None if v == OFF else v for k, v in overrides.items()}
        return replace(self, **cleaned)

    @classmethod
    def load(cls, uri: str | None = None, overrides: dict[str, Any] | None = None) -> GateConfig:
        """The config file at ``uri`` (default: the packaged one), then ``overrides`` on top."""
        source = str(uri or DEFAULT_CONFIG)
        try:
            raw = yaml.safe_load(storage.read_text(source)) or {}
        except FileNotFoundError as e:
            raise ConfigError(f"gate config not found: {source}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"gate config {source} is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"gate config {source} must be a mapping, got {type(raw).__name__}")
        return cls().with_overrides(raw).with_overrides(overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fairness_report_only"] = list(self.fairness_report_only)
        d["report_only"] = list(self.report_only)
        return d


@dataclass(frozen=True)
class Check:
    name: str
    metric: str
    value: float
    comparison: str
    threshold: float
    passed: bool
    group: str = ""  # which slice / comparison the check is about
    note: str = ""

    def describe(self) -> str:
        where = f" [{self.group}]" if self.group else ""
        if self.note:
            if math.isnan(self.value):
                return f"{self.name}: {self.note}"
            return f"{self.metric}{where} = {self.value:.4f}: {self.note}"
        verdict = "pass" if self.passed else "FAIL"
        required = f"required {self.comparison} {self.threshold:g}"
        return f"{self.metric}{where} = {self.value:.4f} ({required}): {verdict}"


@dataclass(frozen=True)
class Override:
    approver: str
    rationale: str
    allowed: bool
    applied: bool


@dataclass
class Decision:
    decision: str
    checks: list[Check]
    reasons: list[str]
    model_uri: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, list[float]] = field(default_factory=dict)
    champion: dict[str, Any] | None = None
    recalibration: dict[str, Any] | None = None
    grades: dict[str, Any] | None = None  # rating.GradeReport.to_dict(): the grade table
    monotonicity: list[dict[str, Any]] | None = None  # monotonicity.FeatureSweep.to_dict() per feature
    vintage: dict[str, Any] | None = None  # vintage.VintageReport.to_dict(): the held-out cohorts
    model_fingerprint: str = ""
    data_fingerprint: str = ""
    eval_data_fingerprint: str = ""
    override: Override | None = None
    gate_config: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED

    def to_json(self) -> str:
        """Strict JSON: an undefined (NaN) number is written as null."""
        return json.dumps(_nan_to_none(asdict(self)), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Decision:
        raw = json.loads(text)
        raw["checks"] = [
            Check(**{**c, "value": _none_to_nan(c["value"]), "threshold": _none_to_nan(c["threshold"])})
            for c in raw.get("checks", [])
        ]
        if raw.get("override"):
            raw["override"] = Override(**raw["override"])
        return cls(**raw)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _compare(name: str, metric: str, value: float, op: str, bar: float, group: str = "") -> Check:
    ok = not math.isnan(value) and (value >= bar if op == ">=" else value <= bar)
    return Check(name, metric, float(value), op, float(bar), ok, group)


def absolute_checks(metrics: dict[str, float], config: GateConfig) -> list[Check]:
    plan = [
        ("min_auc", "auc", ">="),
        ("min_ks", "ks", ">="),
        ("max_brier", "brier", "<="),
        ("max_ece", "ece", "<="),
    ]
    return [
        _compare(name, key, float(metrics.get(key, math.nan)), op, getattr(config, name))
        for name, key, op in plan
        if getattr(config, name) is not None
    ]


def fairness_checks(reports: list[SliceReport], config: GateConfig) -> list[Check]:
    """One disparate-impact and one AUC-gap check per slice; a slice that cannot be assessed (too
    few rows per group) is recorded as such and does not fail the gate."""
    checks = []
    for r in reports:
        for name, metric, value, op in (
            ("min_disparate_impact", "disparate_impact", r.disparate_impact, ">="),
            ("max_auc_gap", "auc_gap", r.auc_gap, "<="),
        ):
            bar = getattr(config, name)
            if bar is None:
                continue
            if math.isnan(value):
                checks.append(
                    Check(
                        name,
                        metric,
                        math.nan,
                        op,
                        bar,
                        True,
                        r.slice,
                        f"[{r.slice}] not assessable: {r.note or 'undefined for these groups'}",
                    )
                )
            elif r.slice in config.fairness_report_only:
                check = _compare(name, metric, value, op, bar, r.slice)
                checks.append(
                    replace(
                        check,
                        note=f"reported, not judged (gate config fairness_report_only); "
                        f"would {'pass' if check.passed else 'FAIL'} {op} {bar:g}",
                    )
                )
            else:
                checks.append(_compare(name, metric, value, op, bar, r.slice))
    return checks


def champion_checks(
    metrics: dict[str, float], champion: dict[str, float] | None, config: GateConfig
) -> list[Check]:
    if champion is None:
        return [
            Check(
                "champion_challenger",
                "auc",
                math.nan,
                ">=",
                math.nan,
                True,
                "",
                "no champion model given: first model, relative checks skipped",
            )
        ]
    # (setting, metric, comparison, sign): challenger AUC >= champion - drop; Brier <= champion + increase
    plan = [("max_auc_drop", "auc", ">=", -1.0), ("max_brier_increase", "brier", "<=", 1.0)]
    checks = []
    for name, key, op, sign in plan:
        tolerance = getattr(config, name)
        if tolerance is not None:
            value = float(metrics.get(key, math.nan))
            checks.append(_compare(name, key, value, op, champion[key] + sign * tolerance, "vs champion"))
    return checks


def grade_checks(grades: GradeReport | None, config: GateConfig) -> list[Check]:
    """A Jeffreys check per populated grade, the count of grade-order inversions of the observed
    default rate and the Herfindahl index; one noted check when the model has no rating scale."""
    if grades is None:
        return [
            Check(
                "master_scale",
                "grades",
                math.nan,
                "",
                math.nan,
                True,
                "",
                "the model has no master scale (spec master_scale): no grade checks",
            )
        ]
    checks = []
    if config.min_grade_p_value is not None:
        checks += [
            _compare("min_grade_p_value", "jeffreys_p", r.jeffreys_p, ">=", config.min_grade_p_value, r.grade)
            for r in grades.populated()
        ]
    if config.max_grade_inversions is not None:
        checks.append(
            _compare(
                "max_grade_inversions",
                "grade_inversions",
                float(len(grades.inversions)),
                "<=",
                config.max_grade_inversions,
                ",".join(grades.inversions),
            )
        )
    if config.max_herfindahl is not None:
        checks.append(
            _compare("max_herfindahl", "herfindahl", grades.herfindahl, "<=", config.max_herfindahl)
        )
    return checks


def monotonicity_checks(sweeps: list[FeatureSweep] | None, config: GateConfig) -> list[Check]:
    """The worst PD move against its declared direction, per monotone feature."""
    if config.max_monotone_violation is None:
        return []
    if not sweeps:
        return [
            Check(
                "max_monotone_violation",
                "monotone_violation",
                math.nan,
                "<=",
                config.max_monotone_violation,
                True,
                "",
                "no feature declares a monotone direction (spec monotone): nothing swept",
            )
        ]
    return [
        _compare(
            "max_monotone_violation",
            "monotone_violation",
            s.worst_violation,
            "<=",
            config.max_monotone_violation,
            s.feature,
        )
        for s in sweeps
    ]


def vintage_checks(report: VintageReport | None, config: GateConfig) -> list[Check]:
    """A Jeffreys check per origination cohort of the held-out rows (an out-of-time back-test);
    one noted check when the data has no origination date."""
    if config.min_cohort_p_value is None:
        return []
    if report is None:
        return [
            Check(
                "min_cohort_p_value",
                "jeffreys_p",
                math.nan,
                ">=",
                config.min_cohort_p_value,
                True,
                "",
                "the data has no origination date (spec origination_date): no vintage checks",
            )
        ]
    return [
        _compare("min_cohort_p_value", "jeffreys_p", c.jeffreys_p, ">=", config.min_cohort_p_value, c.cohort)
        for c in report.cohorts
    ]


def _report_only(checks: list[Check], config: GateConfig) -> list[Check]:
    out = []
    for check in checks:
        if check.name in config.report_only and not check.note:
            verdict = "pass" if check.passed else "FAIL"
            note = f"reported, not judged (gate config report_only); would {verdict} "
            out.append(replace(check, note=f"{note}{check.comparison} {check.threshold:g}"))
        else:
            out.append(check)
    return out


def decide(
    metrics: dict[str, float],
    config: GateConfig,
    fairness: list[SliceReport] | None = None,
    champion_metrics: dict[str, float] | None = None,
    model_uri: str = "",
    grades: GradeReport | None = None,
    sweeps: list[FeatureSweep] | None = None,
    vintage: VintageReport | None = None,
) -> Decision:
    checks = absolute_checks(metrics, config) + fairness_checks(fairness or [], config)
    checks += champion_checks(metrics, champion_metrics, config)
    checks += grade_checks(grades, config) + monotonicity_checks(sweeps, config)
    checks += vintage_checks(vintage, config)
    checks = _report_only(checks, config)
    judged = [c for c in checks if not c.note]  # noted checks were skipped / not assessable
    if not judged:
        return Decision(
            REJECTED,
            checks,
            ["no thresholds configured: the gate refuses to approve blind"],
            model_uri,
            dict(metrics),
            gate_config=config.to_dict(),
        )
    reasons = []
    for c in judged:
        if not c.passed:
            reasons.append(
                c.describe()
                if not math.isnan(c.value)
                else f"{c.metric} is undefined (NaN) on the evaluation data: fail closed"
            )
    return Decision(
        APPROVED if not reasons else REJECTED,
        checks,
        reasons,
        model_uri,
        dict(metrics),
        gate_config=config.to_dict(),
    )


def apply_override(decision: Decision, approver: str, rationale: str, allow_override: bool) -> Decision:
    """Record a human override. It approves a rejected model only when ``allow_override``."""
    approver, rationale = approver.strip(), rationale.strip()
    if not approver and not rationale:
        return decision
    if not approver or not rationale:
        raise ConfigError(
            "an override needs both an approver and a rationale "
            f"(got approver={approver!r}, rationale={rationale!r})"
        )
    applies = allow_override and not decision.approved
    decision.override = Override(approver, rationale, allowed=allow_override, applied=applies)
    if applies:
        decision.reasons.append(f"OVERRIDDEN by {approver}: {rationale}")
        decision.decision = APPROVED
    elif not decision.approved:
        decision.reasons.append(
            f"override requested by {approver} but overrides are disabled "
            "(allow_override=false): the rejection stands"
        )
    return decision
