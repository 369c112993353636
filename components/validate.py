from credit_risk.components._base import component
from kfp.dsl import HTML, Artifact, Dataset, Output


@component
def validate(
    data_uri: str,
    feature_spec_uri: str,
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    stats_report: Output[HTML],
    validated_data: Output[Dataset],
):
    """Validate raw data with TFDV against the feature spec; fail the step on any anomaly.

    Outputs:
      statistics: TFDV DatasetFeatureStatisticsList (text proto).
      schema: schema inferred from the data and tightened by the feature spec (schema.pbtxt).
      anomalies: JSON report of every anomaly (TFDV's and the row-level spec checks). Written even
        when the step fails, for diagnosis; a failed step's outputs are never passed downstream.
      stats_report: Facets statistics overview (HTML, rendered by the Kubeflow UI).
      validated_data: the validated snapshot (CSV) - the only data later steps read.
    """
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    from credit_risk import steps, validation
    from credit_risk.errors import DataValidationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = tempfile.mkdtemp(prefix="validate-")
    try:
        result = steps.validate_step(data_uri, feature_spec_uri, work, validated_data.path)
    except DataValidationError:
        shutil.copyfile(Path(work) / validation.REPORT_FILE, anomalies.path)
        raise
    for artifact, name in (
        (statistics, validation.STATS_FILE),
        (schema, validation.SCHEMA_FILE),
        (anomalies, validation.REPORT_FILE),
        (stats_report, validation.STATS_HTML_FILE),
    ):
        shutil.copyfile(Path(work) / name, artifact.path)
    validated_data.metadata.update({"rows": result.num_rows, "source_uri": data_uri})
    statistics.metadata["rows"] = result.num_rows
    anomalies.metadata["count"] = 0
