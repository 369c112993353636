"""The monitoring pipeline: score the recent applications, then measure population stability.

Meant as a KFP recurring run (``credit-risk schedule``): each run scores ``current_data_uri``
with the deployed model version and compares data and scores to the model's training data.
"""

from typing import Any

from credit_risk.components import batch_score, monitor
from credit_risk.pipelines import policy
from kfp import dsl

from credit_risk.release.monitoring import MonitoringConfig
from credit_risk.spec.contract import DEFAULT_OPERATING_THRESHOLD

MONITORING_PIPELINE_NAME = "credit-risk-monitoring"
_DEFAULTS = MonitoringConfig()


def build_monitoring_pipeline(
    policies: dict[str, policy.StepPolicy] | None = None, s3: policy.S3Access | None = None
) -> Any:
    """The monitoring pipeline with each step's caching, resources and retries from ``policies``."""

    def monitoring_pipeline(
        model_uri: str,
        baseline_data_uri: str,
        current_data_uri: str,
        threshold: float = DEFAULT_OPERATING_THRESHOLD,
        id_columns: list = [],  # noqa: B006 - KFP needs a literal default; never mutated
        chunk_rows: int = 131_072,
        baseline_sample_rows: int = _DEFAULTS.baseline_sample_rows,
        drift_threshold: float = _DEFAULTS.drift_threshold,
        fail_on_act: bool = False,
    ):
        """``model_uri``: a published model version (``serving_root``/m-...) or a model artifact
        directory; ``baseline_data_uri``: its training snapshot; ``current_data_uri``: the recent
        applications (file, directory or glob; CSV/Parquet; local, gs:// or s3://)."""
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model, reimport=False)
        model.set_display_name("deployed model")
        scored = batch_score(
            model=model.output,
            data_uri=current_data_uri,
            threshold=threshold,
            id_columns=id_columns,
            chunk_rows=chunk_rows,
        ).set_display_name("batch score")
        policy.apply(scored, "batch_score", policies, s3)
        monitored = monitor(
            model=model.output,
            scores=scored.outputs["scores"],
            baseline_data_uri=baseline_data_uri,
            current_data_uri=current_data_uri,
            baseline_sample_rows=baseline_sample_rows,
            drift_threshold=drift_threshold,
            fail_on_act=fail_on_act,
        ).set_display_name("population stability (PSI + TFDV drift)")
        policy.apply(monitored, "monitor", policies, s3)

    return dsl.pipeline(
        name=MONITORING_PIPELINE_NAME,
        description="Score a recent batch with the deployed PD model and report the population stability "
        "index (score and features, bands stable/watch/act) and TFDV drift against the training data.",
    )(monitoring_pipeline)


monitoring_pipeline = build_monitoring_pipeline()
