from typing import NamedTuple

from credit_risk.components._base import component
from kfp.dsl import Dataset, Output


@component
def history_features(
    raw_history_uri: str,
    data_uri: str,
    feature_spec_uri: str,
    lag_months: int,
    engine: str,
    spark_master: str,
    driver_memory: str,
    cluster_namespace: str,
    spark_image: str,
    emr_application_id: str,
    emr_role_arn: str,
    executor_instances: int,
    timeout_seconds: int,
    features: Output[Dataset],
) -> NamedTuple("HistorySource", [("data_uri", str), ("feature_spec_uri", str)]):  # type: ignore[valid-type]
    """The training data's source. With ``raw_history_uri`` (applications/, repayments/,
    inquiries/ as Parquet): point-in-time applicant features computed by the PySpark job on
    ``spark_master`` (``local[N]`` in this pod; its shuffle spills to the pod's disk) or by the pandas
    reference (``engine: pandas``), published with their feature spec; or, for data too large for
    the pod, by the same job on a Spark cluster, followed to completion and cancelled after
    ``timeout_seconds``: ``engine: spark-operator`` (a SparkApplication of ``spark_image`` in
    ``cluster_namespace``, "" = this pod's; the step's service account needs create/get/delete on
    sparkapplications, manifests/base/rbac.yaml) or ``engine: emr-serverless``
    (``emr_application_id`` as ``emr_role_arn``, s3:// only), writing straight to the output
    artifact's URI. Without it: ``data_uri`` and
    ``feature_spec_uri`` pass through unchanged and no Spark starts (the kfp 2.13 local runner cannot
    run ``dsl.If``, so the step always runs).

    Outputs:
      features: the typed snapshot (``data/``), ``feature_spec.yaml`` and ``etl.json``; or, passed
        through, ``source.json`` naming the applicant rows used.
      data_uri, feature_spec_uri: what ingest and every later step read.
    """
    import logging
    from collections import namedtuple

    from credit_risk.history import etl

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cluster = etl.ClusterSettings(
        namespace=cluster_namespace, spark_image=spark_image, emr_application_id=emr_application_id,
        emr_role_arn=emr_role_arn, executor_instances=executor_instances, timeout_seconds=timeout_seconds,
    )  # fmt: skip
    out = etl.history_step(
        raw_history_uri, data_uri, feature_spec_uri, features.path, features.uri,
        lag_months, engine, spark_master, driver_memory, cluster,
    )  # fmt: skip
    if out.result is None:
        features.metadata.update({"source": "applicant rows", "data_uri": data_uri})
    else:
        r = out.result
        features.metadata.update({
            "source": "raw history", "raw_history_uri": raw_history_uri, "rows": r.rows,
            "features": r.features,
            "default_rate": r.default_rate, "engine": r.engine, "spark_master": r.spark_master or "",
            "lag_months": r.lag_months, "seconds": r.seconds,
        })  # fmt: skip
    HistorySource = namedtuple("HistorySource", ["data_uri", "feature_spec_uri"])
    return HistorySource(out.data_uri, out.feature_spec_uri)
