from credit_risk.components._base import component
from kfp.dsl import Dataset, Input, Model, Output


@component
def train(
    train_data: Input[Dataset],
    feature_spec_uri: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    wide_learning_rate: float,
    wide_optimizer: str,
    hidden_units: list,
    embedding_dim: int,
    num_buckets: int,
    cross_hash_bins: int,
    dropout: float,
    l1: float,
    l2: float,
    monotone_constraints: bool,
    class_weighting: bool,
    early_stopping_patience: int,
    validation_fraction: float,
    seed: int,
    ensemble_size: int,
    stream_data: bool,
    model: Output[Model],
):
    """Train the wide-and-deep PD model and export a raw-feature SavedModel.

    ``ensemble_size`` > 1 trains that many members (seeds seed, seed+1, ...) and exports their
    average. ``wide_learning_rate`` 0 = the deep part's ``learning_rate``; ``wide_optimizer`` "adam" or
    "ftrl" (with ``l1``, the paper's sparse linear part). ``monotone_constraints``: the PD is
    monotone by construction in every feature the spec declares ``monotone`` (credit_risk.modeling.model).
    ``stream_data``: read the snapshot in bounded chunks with a hashed validation split instead
    of loading it (for data larger than memory); off, the snapshot is loaded and split
    stratified (the benchmarked defaults).

    Outputs:
      model: SavedModel directory (signature ``serving_default``: raw named features -> ``pd``),
        with ``feature_spec.yaml`` and ``model_info.json`` (hyperparameters, data fingerprint,
        package version, training metrics) beside it; the same facts are in the artifact metadata.
    """
    import logging

    from credit_risk import __version__, steps
    from credit_risk.modeling.model import ModelConfig
    from credit_risk.modeling.training import TrainingConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        wide_learning_rate=wide_learning_rate or None,
        wide_optimizer=wide_optimizer,
        validation_fraction=validation_fraction,
        early_stopping_patience=early_stopping_patience,
        class_weighting=class_weighting,
        seed=seed,
        ensemble_size=ensemble_size,
        model=ModelConfig(
            hidden_units=tuple(int(u) for u in hidden_units),
            embedding_dim=embedding_dim,
            num_buckets=num_buckets,
            cross_hash_bins=cross_hash_bins,
            dropout=dropout,
            l1=l1,
            l2=l2,
            monotone_constraints=monotone_constraints,
        ),
    )
    result = steps.train_step(train_data.path, feature_spec_uri, config, model.path, stream=stream_data)
    model.metadata.update(
        {
            "framework": "tensorflow-keras",
            "package_version": __version__,
            "data_fingerprint": result.data_fingerprint,
            "rows": result.rows,
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "hyperparameters": config.to_dict(),
            **{f"train_{k}": round(v, 6) for k, v in result.metrics.items()},
        }
    )
