"""The approval gate: metrics vs thresholds -> an auditable decision. Fails closed.

No thresholds, a NaN metric or a failed check means "rejected", always with the reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from credit_risk.errors import ConfigError

APPROVED = "approved"
REJECTED = "rejected"
APPROVAL_FILE = "approval.json"


@dataclass(frozen=True)
class Thresholds:
    """Absolute bars a model must clear. ``None`` disables a check; all None -> rejected."""

    min_auc: float | None = 0.70
    min_ks: float | None = 0.30
    max_brier: float | None = 0.20

    def __post_init__(self) -> None:
        for name in ("min_auc", "min_ks", "max_brier"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value <= 1.0):
                raise ConfigError(f"threshold {name} must be in [0, 1], got {value}")

    def checks(self) -> list[tuple[str, str, str, float]]:
        """(check name, metric key, comparison, bar) for each enabled threshold."""
        out = []
        if self.min_auc is not None:
            out.append(("min_auc", "auc", ">=", self.min_auc))
        if self.min_ks is not None:
            out.append(("min_ks", "ks", ">=", self.min_ks))
        if self.max_brier is not None:
            out.append(("max_brier", "brier", "<=", self.max_brier))
        return out


@dataclass(frozen=True)
class Check:
    name: str
    metric: str
    value: float
    comparison: str
    threshold: float
    passed: bool

    def describe(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.metric} = {self.value:.4f} (required {self.comparison} {self.threshold}): {verdict}"


@dataclass
class Decision:
    decision: str
    checks: list[Check]
    reasons: list[str]
    model_uri: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    @property
    def approved(self) -> bool:
        return self.decision == APPROVED

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Decision":
        raw = json.loads(text)
        raw["checks"] = [Check(**c) for c in raw.get("checks", [])]
        return cls(**raw)


def decide(metrics: dict[str, float], thresholds: Thresholds, model_uri: str = "") -> Decision:
    planned = thresholds.checks()
    if not planned:
        return Decision(REJECTED, [], ["no thresholds configured: the gate refuses to approve blind"],
                        model_uri, dict(metrics))
    checks, reasons = [], []
    for name, key, op, bar in planned:
        value = float(metrics.get(key, math.nan))
        ok = not math.isnan(value) and (value >= bar if op == ">=" else value <= bar)
        check = Check(name, key, value, op, bar, ok)
        checks.append(check)
        if not ok:
            reasons.append(check.describe() if not math.isnan(value)
                           else f"{key} is undefined (NaN) on the evaluation data: fail closed")
    return Decision(APPROVED if not reasons else REJECTED, checks, reasons, model_uri, dict(metrics))
