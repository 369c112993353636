from credit_risk.components._base import component
from kfp.dsl import Dataset, Input, Model, Output


@component
def batch_score(
    model: Input[Model],
    data_uri: str,
    threshold: float,
    id_columns: list,
    chunk_rows: int,
    scores: Output[Dataset],
):
    """Score every row at ``data_uri`` (CSV/Parquet file, directory or glob; local, gs:// or s3://)
    with the exported model, chunk by chunk in bounded memory; logs rows/s and ETA.

    ``threshold``: decline when PD >= threshold. ``id_columns``: input columns copied beside
    each score (e.g. the application id); none = a 1-based ``row`` number.

    Outputs:
      scores: Parquet parts with the id columns, ``pd``, ``decision`` and ``model_version`` per
        row, plus ``scoring.json``; published (marker last) only when every row was scored.
    """
    import logging

    from credit_risk import steps
    from credit_risk.release.batch_scoring import ScoringConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ScoringConfig(
        threshold=threshold, id_columns=tuple(str(c) for c in id_columns), chunk_rows=chunk_rows
    )
    result = steps.batch_score_step(model.path, data_uri, scores.path, config)
    scores.metadata.update(
        {
            "rows": result.rows,
            "model_version": result.model_version,
            "threshold": result.threshold,
            "mean_pd": round(result.mean_pd, 6),
            "decline_rate": round(result.decline_rate, 6),
            "rows_per_second": result.rows_per_second,
        }
    )
