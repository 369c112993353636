from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from credit_risk.components._base import component


@component
def evaluate(
    model: Input[Model],
    eval_data: Input[Dataset],
    feature_spec_uri: str,
    min_auc: float,
    min_ks: float,
    max_brier: float,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    approval: Output[Artifact],
    report: Output[Markdown],
):
    """Score held-out rows through the exported signature; approve or reject against thresholds.

    A threshold < 0 disables that check; with every check disabled the gate rejects (fail closed).

    Outputs:
      metrics: AUC, Gini, KS, Brier, log loss, default rate, mean PD (KFP scalar metrics).
      classification_metrics: ROC curve and confusion matrix (rendered by the Kubeflow UI).
      approval: JSON decision record (``approved``/``rejected``, every check, reasons).
      report: Markdown summary of the decision and metrics.
    """
    import logging

    from credit_risk import gate, steps
    from credit_risk.evaluation import roc_points

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    thresholds = gate.Thresholds(
        min_auc=min_auc if min_auc >= 0 else None,
        min_ks=min_ks if min_ks >= 0 else None,
        max_brier=max_brier if max_brier >= 0 else None,
    )
    result = steps.evaluate_step(model.path, eval_data.path, feature_spec_uri, thresholds,
                                 approval.path, report.path)
    for key, value in result.metrics.items():
        metrics.log_metric(key, round(value, 6))
    fpr, tpr, thr = zip(*roc_points(result.y_true, result.y_score))
    classification_metrics.log_roc_curve(list(fpr), list(tpr), list(thr))
    classification_metrics.log_confusion_matrix(["non-default", "default"], result.confusion.tolist())
    approval.metadata.update({"decision": result.decision.decision, "reasons": result.decision.reasons})
