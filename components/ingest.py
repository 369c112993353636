from credit_risk.components._base import component
from kfp.dsl import Dataset, Output


@component
def ingest(
    data_uri: str,
    feature_spec_uri: str,
    sql_query: str,
    sql_params: dict,
    chunk_rows: int,
    snapshot: Output[Dataset],
):
    """Take the training snapshot every later step reads: from PostgreSQL when ``sql_query`` is
    set (read-only transaction, server-side cursor, ``:name`` placeholders bound from
    ``sql_params``), else from the CSV/Parquet file(s) at ``data_uri`` (local, gs:// or s3://).

    Database credentials are never parameters: they come from libpq's variables (PGHOST, PGPORT,
    PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE), which a pipeline compiled with
    ``credit-risk compile --database-secret NAME`` sets from that Kubernetes secret.

    Outputs:
      snapshot: directory of Parquet parts with the feature spec's columns, typed by it, plus
        ``snapshot.json``; rows and content hash are also in the artifact metadata. Published
        (marker last) only when the whole read succeeded.
    """
    import logging

    from credit_risk import steps

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = steps.ingest_step(data_uri, feature_spec_uri, snapshot.path, sql_query, sql_params, chunk_rows)
    snapshot.metadata.update(
        {
            "rows": result.rows,
            "content_sha256": result.content_sha256,
            "source": result.source["kind"],
            "parts": len(result.files),
            "dropped_columns": result.dropped_columns,
        }
    )
