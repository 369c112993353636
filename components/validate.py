from credit_risk.components._base import component
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output


@component
def validate(
    data: Input[Dataset],
    feature_spec_uri: str,
    schema_uri: str,
    baseline_stats_uri: str,
    serving_data_uri: str,
    warn_only_anomalies: list,
    beam_args: list,
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    anomalies_table: Output[Markdown],
    stats_report: Output[HTML],
    drift: Output[Metrics],
    validated_data: Output[Dataset],
):
    """Validate the ingested snapshot ``data`` with TFDV against the curated schema and the
    feature spec; a blocking anomaly fails the step.

    ``schema_uri``: curated schema ("" = ``<name>.schema.pbtxt`` beside the spec). Drift is judged
    against ``baseline_stats_uri`` (statistics of the deployed model's training data), skew against
    ``serving_data_uri`` (a sample of serving requests); both optional. ``warn_only_anomalies``:
    anomaly kinds (TFDV's, e.g. ``ENUM_TYPE_UNEXPECTED_STRING_VALUES``, or ours, e.g.
    ``duplicate_rows``) reported without failing. ``beam_args``: compute statistics on Beam with
    these pipeline options (e.g. ``--runner=DataflowRunner``) instead of in-process.

    Outputs:
      statistics: TFDV DatasetFeatureStatisticsList (text proto) - a baseline for later runs.
      schema: the schema the data was validated against.
      anomalies: JSON report of every anomaly. Written even when the step fails, for diagnosis;
        a failed step's outputs are never passed downstream.
      anomalies_table: the anomalies (and drift values) as a Markdown table.
      stats_report: Facets statistics (HTML), side by side with the baseline when there is one.
      drift: every drift/skew measurement, also under threshold (KFP Metrics).
      validated_data: the validated snapshot, typed by the spec (one Parquet file) - the only data
        later steps read.
    """
    import json
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    from credit_risk import steps
    from credit_risk.dataset import validation
    from credit_risk.errors import DataValidationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = validation.ValidationConfig(
        schema_uri=schema_uri,
        baseline_stats_uri=baseline_stats_uri,
        serving_data_uri=serving_data_uri,
        warn_only=tuple(str(k) for k in warn_only_anomalies),
        beam_args=tuple(str(a) for a in beam_args),
    )
    from credit_risk import storage

    storage.require_published(data.path)  # never a half-written snapshot
    work = Path(tempfile.mkdtemp(prefix="validate-"))
    try:
        result = steps.validate_step(data.path, feature_spec_uri, str(work), validated_data.path, config)
    except DataValidationError:
        shutil.copyfile(work / validation.REPORT_FILE, anomalies.path)
        shutil.copyfile(work / validation.ANOMALIES_MD_FILE, anomalies_table.path)
        raise
    for artifact, name in (
        (statistics, validation.STATS_FILE),
        (schema, validation.SCHEMA_FILE),
        (anomalies, validation.REPORT_FILE),
        (anomalies_table, validation.ANOMALIES_MD_FILE),
        (stats_report, validation.STATS_HTML_FILE),
    ):
        shutil.copyfile(work / name, artifact.path)
    for key, value in json.loads((work / validation.DRIFT_FILE).read_text()).items():
        drift.log_metric(key.replace(":", "_"), round(float(value["value"]), 6))
    validated_data.metadata.update({"rows": result.num_rows, "source_uri": data.uri})
    statistics.metadata["rows"] = result.num_rows
    anomalies.metadata["count"] = len(result.anomalies)
    anomalies.metadata["warnings"] = len(result.anomalies) - len(result.blocking)
