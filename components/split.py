from credit_risk.components._base import component
from kfp.dsl import Dataset, Input, Output


@component
def split(
    validated_data: Input[Dataset],
    feature_spec_uri: str,
    eval_fraction: float,
    seed: int,
    train_data: Output[Dataset],
    eval_data: Output[Dataset],
    stream_data: bool = False,
):
    """Seeded train / held-out split of the validated snapshot: loaded whole and exactly
    stratified, or with ``stream_data`` in bounded chunks (a row held out by a seeded hash of its
    position; class shares match in expectation) for snapshots larger than memory.

    Outputs:
      train_data: rows the model is fitted on (typed Parquet).
      eval_data: held-out rows, used only by evaluation (typed Parquet).
    """
    import logging

    from credit_risk import steps

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    n_train, n_eval = steps.split_step(
        validated_data.path,
        feature_spec_uri,
        eval_fraction,
        seed,
        train_data.path,
        eval_data.path,
        stream=stream_data,
    )
    train_data.metadata.update({"rows": n_train, "seed": seed, "streamed": stream_data})
    eval_data.metadata.update({"rows": n_eval, "seed": seed, "streamed": stream_data})
