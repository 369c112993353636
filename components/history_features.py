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
    features: Output[Dataset],
) -> NamedTuple("HistorySource", [("data_uri", str), ("feature_spec_uri", str)]):  # type: ignore[valid-type]
    """The training data's source. With ``raw_history_uri`` (applications/, repayments/,
    inquiries/ as Parquet): point-in-time applicant features computed by the PySpark job on
    ``spark_master`` (``local[N]`` in this pod; its shuffle spills to the pod's disk) or by the pandas
    reference (``engine: pandas``), published with their feature spec. Without it: ``data_uri`` and
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
    out = etl.history_step(
        raw_history_uri, data_uri, feature_spec_uri, features.path, features.uri,
        lag_months, engine, spark_master, driver_memory,
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
