"""Evaluate an exported model on held-out rows: metrics, intervals, calibration, fairness,
champion-challenger, and the gate's decision."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk.evidence import calibration, fairness, gate, metrics, monotonicity, vintage
from credit_risk.evidence.vintage import VintageReport
from credit_risk.lineage import fingerprint, model_fingerprint
from credit_risk.modeling.scoring import ExportedModel
from credit_risk.spec import contract, rating
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

CALIBRATION_BINS = 10


@dataclass
class EvaluationResult:
    metrics: dict[str, float]
    intervals: dict[str, list[float]]
    decision: gate.Decision
    y_true: np.ndarray
    y_score: np.ndarray
    confusion: np.ndarray
    operating_threshold: float
    calibration: tuple[np.ndarray, np.ndarray, np.ndarray]
    fairness: list[fairness.SliceReport]
    champion_metrics: dict[str, float] | None = None
    champion_score: np.ndarray | None = field(default=None, repr=False)
    model_info: dict = field(default_factory=dict)
    grades: rating.GradeReport | None = None
    sweeps: list[monotonicity.FeatureSweep] = field(default_factory=list)
    vintage: VintageReport | None = None


def _model_info(model_dir: str | Path) -> dict:
    path = Path(model_dir) / contract.MODEL_INFO_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def evaluate(
    model_dir: str,
    frame: pd.DataFrame,
    spec: FeatureSpec,
    config: gate.GateConfig,
    champion_dir: str | None = None,
    champion_uri: str = "",
) -> EvaluationResult:
    """Score ``frame`` (held-out rows) through the exported serving signature and apply the gate.

    ``frame`` must hold the model inputs, the label and every slice / protected column; with the
    spec's ``origination_date`` also that date, and the rows are tabulated by origination cohort
    (``vintage``; out of time when the split held out the latest dates).
    ``champion_dir``: a local copy of the model to beat; ``champion_uri``: where it came from, for
    the record (default ``champion_dir``).
    """
    start = time.perf_counter()
    model = ExportedModel(model_dir)
    if model.spec.model_features != spec.model_features:
        log.warning("the model was trained with a different feature spec than %s", spec.name)
    y_score = model.predict_frame(frame)
    y_true = frame[spec.label].to_numpy()
    scalars = metrics.summary(y_true, y_score, CALIBRATION_BINS)
    intervals = {
        name: list(
            metrics.bootstrap_ci(y_true, y_score, fn, config.bootstrap_resamples, config.bootstrap_seed)
        )
        for name, fn in (("auc", metrics.roc_auc_score), ("ks", metrics.ks_statistic))
    }
    slices = fairness.fairness_report(
        frame.reset_index(drop=True), y_true, y_score, spec, config.operating_threshold, config.min_group_rows
    )
    champion_metrics, champion_score, champion_id = None, None, None
    if champion_dir:
        champion = ExportedModel(champion_dir)
        champion_score = champion.predict_frame(frame)
        champion_metrics = metrics.summary(y_true, champion_score, CALIBRATION_BINS)
        champion_id = model_fingerprint(champion_dir)
    info = _model_info(model_dir)
    scale = info.get(contract.MASTER_SCALE_KEY)
    grades = rating.grade_report(y_true, y_score, rating.MasterScale.from_dict(scale)) if scale else None
    sweeps = monotonicity.sweep(model.predict_frame, frame, spec, seed=config.bootstrap_seed)
    cohorts = _vintage(frame, y_true, y_score, spec, config, model_fingerprint(model_dir))
    decision = gate.decide(
        scalars, config, slices, champion_metrics, model_uri=model_dir, grades=grades, sweeps=sweeps,
        vintage=cohorts,
    )  # fmt: skip
    decision.vintage = cohorts.to_dict() if cohorts else None
    decision.grades = grades.to_dict() if grades else None
    decision.monotonicity = [s.to_dict() for s in sweeps]
    ece_failed = any(c.name == "max_ece" and not c.passed for c in decision.checks)
    if ece_failed and config.recalibration:
        decision.recalibration = calibration.recalibrate(
            y_true, y_score, config.recalibration, config.bootstrap_seed, CALIBRATION_BINS
        ).to_dict()
    decision.intervals = intervals
    decision.model_fingerprint = model_fingerprint(model_dir)
    decision.data_fingerprint = info.get("training", {}).get("data_fingerprint", "")
    decision.eval_data_fingerprint = fingerprint(frame)
    if champion_metrics is not None:
        decision.champion = {
            "model_uri": champion_uri or champion_dir,
            "model_fingerprint": champion_id,
            "metrics": champion_metrics,
        }
    log.info(
        "evaluated %d held-out rows in %.2fs: %s -> %s",
        len(frame),
        time.perf_counter() - start,
        {k: round(v, 4) for k, v in scalars.items()},
        decision.decision,
    )
    return EvaluationResult(
        metrics=scalars,
        intervals=intervals,
        decision=decision,
        y_true=y_true,
        y_score=y_score,
        confusion=metrics.confusion_matrix(y_true, y_score, config.operating_threshold),
        operating_threshold=config.operating_threshold,
        calibration=metrics.calibration_curve(y_true, y_score, CALIBRATION_BINS),
        fairness=slices,
        champion_metrics=champion_metrics,
        champion_score=champion_score,
        model_info=info,
        grades=grades,
        sweeps=sweeps,
        vintage=cohorts,
    )


def _vintage(
    frame: pd.DataFrame,
    y_true: np.ndarray,
    y_score: np.ndarray,
    spec: FeatureSpec,
    config: gate.GateConfig,
    model_version: str,
) -> VintageReport | None:
    """The held-out rows per origination cohort, or None without an origination date. The
    cutoff recorded is the earliest held-out date (the out-of-time split holds out every row on
    or after it)."""
    if not spec.date_column:
        return None
    dates = vintage.parse_dates(frame[spec.date_column], where="held-out rows")
    acc = vintage.VintageAccumulator(spec.date_column, config.vintage_period)
    acc.add(vintage.cohort_labels(dates, config.vintage_period), y_true, y_score)
    alpha = config.min_cohort_p_value if config.min_cohort_p_value is not None else 0.01
    cutoff = str(dates.min().date())
    return acc.report(alpha, model_version=model_version, cutoff=cutoff)


def roc_points(
    y_true: np.ndarray, y_score: np.ndarray, max_points: int = 200
) -> list[tuple[float, float, float]]:
    """(fpr, tpr, threshold) rows for the KFP ROC plot, thinned to at most ``max_points``."""
    fpr, tpr, thr = metrics.roc_curve(y_true, y_score)
    thr = np.where(np.isinf(thr), 1.0, thr)  # KFP wants finite thresholds
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    return [(float(fpr[i]), float(tpr[i]), float(thr[i])) for i in idx]


def write_decision(decision: gate.Decision, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(decision.to_json())
