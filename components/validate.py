from kfp.dsl import HTML, Artifact, Dataset, Output

from credit_risk.components._base import component


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
      anomalies: TFDV anomalies (text proto); empty when the step succeeds.
      stats_report: Facets statistics overview (HTML, rendered by the Kubeflow UI).
      validated_data: the validated snapshot (CSV) - the only data later steps read.
    """
    import logging
    import shutil
    import tempfile
    from pathlib import Path

    from credit_risk import steps

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = tempfile.mkdtemp(prefix="validate-")
    result = steps.validate_step(data_uri, feature_spec_uri, work, validated_data.path)
    for artifact, name in ((statistics, "stats.pbtxt"), (schema, "schema.pbtxt"),
                           (anomalies, "anomalies.pbtxt"), (stats_report, "stats.html")):
        shutil.copyfile(Path(work) / name, artifact.path)
    validated_data.metadata.update({"rows": result.num_rows, "source_uri": data_uri})
    statistics.metadata["rows"] = result.num_rows
    anomalies.metadata["count"] = 0
