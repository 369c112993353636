from credit_risk.components._base import component
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output


@component
def evaluate(
    model: Input[Model],
    eval_data: Input[Dataset],
    feature_spec_uri: str,
    gate_config_uri: str,
    gate_overrides: dict,
    champion_model_uri: str,
    override_approver: str,
    override_rationale: str,
    allow_override: bool,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    approval: Output[Artifact],
    model_card: Output[Markdown],
    report: Output[HTML],
):
    """Score held-out rows through the exported signature; approve or reject against the gate.

    Gate settings come from ``gate_config_uri`` (empty: the packaged defaults) with
    ``gate_overrides`` on top. ``champion_model_uri`` (optional) is the deployed model to beat: a
    model directory, a published ``gs://`` or ``s3://.../m-<version>``, or ``isvc://<ns>/<name>`` for the
    model that InferenceService serves to all traffic (needs ``get`` on inferenceservices, granted
    by manifests/base/rbac.yaml; none yet = a first model).
    A human override (approver + rationale) approves a rejected model only if ``allow_override``.

    Outputs:
      metrics: AUC, Gini, KS, PR AUC, Brier, ECE, log loss, bootstrap CIs, fairness ratios, the
        rating scale's Herfindahl index, grade inversions, Jeffreys p-value and observed default rate
        per grade, the worst monotonicity violation per declared feature and, with an origination
        date, the Jeffreys p-value and observed default rate per held-out cohort (scalars).
      classification_metrics: ROC curve and confusion matrix (rendered by the Kubeflow UI).
      approval: JSON approval record (decision, every check, fingerprints, champion, override).
      model_card: Markdown model card (intended use, data, metrics, fairness, limitations, approval).
      report: HTML evaluation report with ROC, KS, calibration, score histograms, fairness table,
        grade table, monotonicity sweep and vintage back-test.
    """
    import logging
    import math

    from credit_risk import steps
    from credit_risk.evidence import gate
    from credit_risk.evidence.evaluation import roc_points

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = gate.GateConfig.load(gate_config_uri or None, gate_overrides)
    result = steps.evaluate_step(
        model.path,
        eval_data.path,
        feature_spec_uri,
        config,
        approval.path,
        model_card.path,
        report.path,
        champion_model_uri or None,
        override_approver,
        override_rationale,
        allow_override,
    )
    for key, value in result.metrics.items():
        metrics.log_metric(key, round(value, 6))
    for key, (lo, hi) in result.intervals.items():
        metrics.log_metric(f"{key}_ci_low", round(lo, 6))
        metrics.log_metric(f"{key}_ci_high", round(hi, 6))
    for sl in result.fairness:
        for name in ("disparate_impact", "auc_gap"):
            value = getattr(sl, name)
            if not math.isnan(value):
                metrics.log_metric(f"{name}_{sl.slice}", round(value, 6))
    if result.grades is not None:
        metrics.log_metric("herfindahl", round(result.grades.herfindahl, 6))
        metrics.log_metric("grade_inversions", len(result.grades.inversions))
        for row in result.grades.populated():
            metrics.log_metric(f"jeffreys_p_{row.grade}", round(row.jeffreys_p, 6))
            metrics.log_metric(f"observed_rate_{row.grade}", round(row.observed_rate, 6))
    for sweep in result.sweeps:
        metrics.log_metric(f"monotone_violation_{sweep.feature}", round(sweep.worst_violation, 6))
    if result.vintage is not None:
        metrics.log_metric("vintage_flagged_cohorts", len(result.vintage.flagged))
        for cohort in result.vintage.cohorts:
            metrics.log_metric(f"cohort_jeffreys_p_{cohort.cohort}", round(cohort.jeffreys_p, 6))
            metrics.log_metric(f"cohort_observed_rate_{cohort.cohort}", round(cohort.observed_rate, 6))
    fpr, tpr, thr = zip(*roc_points(result.y_true, result.y_score), strict=True)
    classification_metrics.log_roc_curve(list(fpr), list(tpr), list(thr))
    classification_metrics.log_confusion_matrix(["non-default", "default"], result.confusion.tolist())
    approval.metadata.update(
        {
            "decision": result.decision.decision,
            "reasons": result.decision.reasons,
            "model_fingerprint": result.decision.model_fingerprint,
        }
    )
