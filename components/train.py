from credit_risk.components._base import component
from kfp.dsl import Dataset, Input, Model, Output


@component
def train(
    train_data: Input[Dataset],
    feature_spec_uri: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    model: Output[Model],
):
    """Train the wide-and-deep PD model and export a raw-feature SavedModel.

    Outputs:
      model: SavedModel directory (signature ``serving_default``: raw named features -> ``pd``),
        with ``feature_spec.yaml`` and ``model_info.json`` (hyperparameters, data fingerprint,
        training metrics) beside it; the same facts are in the artifact metadata.
    """
    import logging

    from credit_risk import steps
    from credit_risk.training import TrainingConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TrainingConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    result = steps.train_step(train_data.path, feature_spec_uri, config, model.path)
    model.metadata.update(
        {
            "framework": "tensorflow-keras",
            "data_fingerprint": result.data_fingerprint,
            "rows": result.rows,
            "best_epoch": result.best_epoch,
            **{f"train_{k}": round(v, 6) for k, v in result.metrics.items()},
        }
    )
