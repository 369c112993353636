"""Evaluate an exported model on held-out rows and decide approval."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk import gate, metrics
from credit_risk.feature_spec import FeatureSpec
from credit_risk.scoring import ExportedModel

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    metrics: dict[str, float]
    decision: gate.Decision
    y_true: np.ndarray
    y_score: np.ndarray
    confusion: np.ndarray
    operating_threshold: float


def evaluate(model_dir: str, frame: pd.DataFrame, spec: FeatureSpec, thresholds: gate.Thresholds,
             operating_threshold: float = 0.5) -> EvaluationResult:
    """Score ``frame`` (held-out rows) through the exported serving signature and apply the gate."""
    start = time.perf_counter()
    model = ExportedModel(model_dir)
    if model.spec.model_features != spec.model_features:
        log.warning("the model was trained with a different feature spec than %s", spec.name)
    y_score = model.predict_frame(frame)
    y_true = frame[spec.label].to_numpy()
    scalars = metrics.summary(y_true, y_score)
    decision = gate.decide(scalars, thresholds, model_uri=model_dir)
    confusion = metrics.confusion_matrix(y_true, y_score, operating_threshold)
    log.info("evaluated %d held-out rows in %.2fs: %s -> %s", len(frame), time.perf_counter() - start,
             {k: round(v, 4) for k, v in scalars.items()}, decision.decision)
    return EvaluationResult(scalars, decision, y_true, y_score, confusion, operating_threshold)


def roc_points(y_true: np.ndarray, y_score: np.ndarray, max_points: int = 200) -> list[tuple[float, float, float]]:
    """(fpr, tpr, threshold) rows for the KFP ROC plot, thinned to at most ``max_points``."""
    fpr, tpr, thr = metrics.roc_curve(y_true, y_score)
    thr = np.where(np.isinf(thr), 1.0, thr)  # KFP wants finite thresholds
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    return [(float(fpr[i]), float(tpr[i]), float(thr[i])) for i in idx]


def markdown_report(result: EvaluationResult, spec: FeatureSpec) -> str:
    d = result.decision
    lines = [f"# Evaluation: {spec.name}", "", f"**Decision: {d.decision.upper()}**", ""]
    for r in d.reasons:
        lines.append(f"- {r}")
    lines += ["", "| check | metric | value | required | result |", "|---|---|---|---|---|"]
    for c in d.checks:
        lines.append(f"| {c.name} | {c.metric} | {c.value:.4f} | {c.comparison} {c.threshold} | "
                     f"{'pass' if c.passed else 'FAIL'} |")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in result.metrics.items()]
    (tn, fp), (fn, tp) = result.confusion.tolist()
    lines += ["", f"Confusion matrix at PD >= {result.operating_threshold}: "
              f"TN {tn}, FP {fp}, FN {fn}, TP {tp}"]
    return "\n".join(lines) + "\n"


def write_decision(decision: gate.Decision, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(decision.to_json())
