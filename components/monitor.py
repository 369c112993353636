from credit_risk.components._base import component
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output


@component
def monitor(
    model: Input[Model],
    scores: Input[Dataset],
    baseline_data_uri: str,
    current_data_uri: str,
    baseline_sample_rows: int,
    drift_threshold: float,
    fail_on_act: bool,
    metrics: Output[Metrics],
    report: Output[HTML],
    verdict: Output[Markdown],
    result: Output[Artifact],
):
    """Population stability of the model on ``current_data_uri`` against its training data
    ``baseline_data_uri``: PSI of the score (from ``scores``) and of every model input, bands
    < 0.1 stable, 0.1-0.25 watch, > 0.25 act, plus TFDV drift (thresholds from the feature spec,
    else ``drift_threshold``). ``fail_on_act``: fail the run when the verdict is "act" (alerting).

    Outputs:
      metrics: score PSI, PSI per feature, TFDV drift values and the verdict as a number
        (0 stable, 1 watch, 2 act) - KFP Metrics, comparable across recurring runs.
      report: HTML with PSI bars against the bands and the score distributions.
      verdict: Markdown table of every column's PSI, band and drift.
      result: the full result JSON (distributions per bin included).
    """
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    from credit_risk import steps
    from credit_risk.errors import ModelRejectedError
    from credit_risk.release import monitoring

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = monitoring.MonitoringConfig(
        baseline_sample_rows=baseline_sample_rows, drift_threshold=drift_threshold
    )
    work = Path(tempfile.mkdtemp(prefix="monitor-"))
    outcome = steps.monitor_step(
        model.path, baseline_data_uri, current_data_uri, scores.path, str(work), config
    )
    for artifact, name in (
        (report, monitoring.REPORT_FILE),
        (verdict, monitoring.VERDICT_FILE),
        (result, monitoring.RESULT_FILE),
    ):
        shutil.copyfile(work / name, artifact.path)
    metrics.log_metric("score_psi", round(outcome.score_psi, 6))
    metrics.log_metric(
        "verdict_level", [monitoring.STABLE, monitoring.WATCH, monitoring.ACT].index(outcome.verdict)
    )
    for name, value in outcome.feature_psi.items():
        metrics.log_metric(f"psi_{name}", round(value, 6))
    for name, drift in outcome.tfdv_drift.items():
        metrics.log_metric(f"drift_{name}", round(float(drift["value"]), 6))
    result.metadata.update({"verdict": outcome.verdict, "model_version": outcome.model_version})
    if fail_on_act and outcome.verdict == monitoring.ACT:
        raise ModelRejectedError(f"population stability: {outcome.summary()}")
