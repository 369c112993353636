"""Train the wide-and-deep model on a frame and export it as a raw-feature SavedModel."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk import __version__, contract
from credit_risk.errors import ConfigError, DataError
from credit_risk.feature_spec import FeatureSpec
from credit_risk.model import ModelConfig, build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 200
    batch_size: int = 64
    learning_rate: float = 3e-3
    validation_fraction: float = 0.2
    early_stopping_patience: int = 15
    class_weighting: bool = False
    seed: int = 42
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0.05 <= self.validation_fraction <= 0.5:
            raise ConfigError(f"validation_fraction must be in [0.05, 0.5], got {self.validation_fraction}")
        if self.early_stopping_patience < 1:
            raise ConfigError(f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


@dataclass
class TrainingResult:
    export_dir: str
    rows: int
    epochs_run: int
    best_epoch: int
    metrics: dict[str, float]
    seconds: float
    data_fingerprint: str


def reason_baseline(frame: pd.DataFrame, spec: FeatureSpec) -> dict[str, float | str]:
    """The typical applicant reason codes are measured against: median of each numeric input, most
    frequent value of each categorical one (training rows only)."""
    baseline: dict[str, float | str] = {}
    for f in spec.model_features:
        values = frame[f.name].dropna()
        if values.empty:
            raise DataError(f"column {f.name!r} has no values: no baseline for reason codes")
        baseline[f.name] = float(values.median()) if f.is_numeric else str(values.astype(str).mode().iloc[0])
    return baseline


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of the training rows (order-sensitive): proves which data trained a model."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return f"rows={len(frame)};sha256={digest.hexdigest()[:16]}"


def _tensors(frame: pd.DataFrame, spec: FeatureSpec) -> dict:
    import tensorflow as tf

    return {k: tf.constant(v) for k, v in contract.frame_to_arrays(frame, spec).items()}


def train(frame: pd.DataFrame, spec: FeatureSpec, config: TrainingConfig):
    """Fit on ``frame`` with early stopping on a seeded, stratified validation split.

    Returns (keras model with the best weights, history dict, best epoch index).
    """
    import keras
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    y = frame[spec.label].to_numpy()
    if len(frame) < 20 or len(np.unique(y)) < 2:
        raise DataError(
            f"training needs >= 20 rows with both label classes; got {len(frame)} rows, "
            f"classes {sorted(set(y.tolist()))}"
        )
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    fit_df, val_df = train_test_split(
        frame, test_size=config.validation_fraction, random_state=config.seed, stratify=y
    )
    model = build_model(spec, fit_df, config.model)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss={contract.OUTPUT_KEY: "binary_crossentropy"},
        metrics={contract.OUTPUT_KEY: [keras.metrics.AUC(name="auc")]},
    )
    class_weight = None
    if config.class_weighting:
        pos = float(fit_df[spec.label].mean())
        class_weight = {0: 0.5 / (1 - pos), 1: 0.5 / pos}
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
    )
    history = model.fit(
        _tensors(fit_df, spec),
        {contract.OUTPUT_KEY: fit_df[spec.label].to_numpy("float32")},
        validation_data=(
            _tensors(val_df, spec),
            {contract.OUTPUT_KEY: val_df[spec.label].to_numpy("float32")},
        ),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[stop],
        class_weight=class_weight,
    )
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best = int(np.argmin(hist["val_loss"]))
    return model, hist, best


def predict_frame(model, frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """PD for each row via the in-memory Keras model, shape [n]."""
    out = model.predict(_tensors(frame, spec), verbose=0, batch_size=4096)
    return np.asarray(out[contract.OUTPUT_KEY]).reshape(-1)


def export(model, spec: FeatureSpec, export_dir: str | Path, info: dict) -> None:
    """Write the SavedModel plus the spec and ``model_info.json`` sidecar, atomically.

    The model is written to a temporary sibling directory and renamed into place, so a crash never
    leaves a half-written model at ``export_dir``.
    """
    import tensorflow as tf

    target = Path(export_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        signature_inputs = {
            f.name: tf.TensorSpec([None, 1], tf.float32 if f.is_numeric else tf.string, name=f.name)
            for f in spec.model_features
        }
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            name=contract.SIGNATURE_NAME,
            fn=lambda features: {contract.OUTPUT_KEY: model(features, training=False)[contract.OUTPUT_KEY]},
            input_signature=[signature_inputs],
        )
        archive.write_out(str(staging / "model"), verbose=False)
        for item in (staging / "model").iterdir():
            shutil.move(str(item), staging / item.name)
        (staging / "model").rmdir()
        (staging / contract.SPEC_FILE).write_text(spec.to_yaml())
        (staging / contract.MODEL_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("exported SavedModel -> %s", target)


def train_and_export(
    frame: pd.DataFrame, spec: FeatureSpec, config: TrainingConfig, export_dir: str | Path
) -> TrainingResult:
    start = time.perf_counter()
    log.info("training %s on %d rows: %s", spec.name, len(frame), json.dumps(config.to_dict()))
    model, hist, best = train(frame, spec, config)
    metrics = {k: v[best] for k, v in hist.items()}
    seconds = time.perf_counter() - start
    log.info(
        "trained %d epochs (best %d) in %.1fs: %s",
        len(hist["loss"]),
        best + 1,
        seconds,
        {k: round(v, 4) for k, v in metrics.items()},
    )
    result = TrainingResult(
        export_dir=str(export_dir),
        rows=len(frame),
        epochs_run=len(hist["loss"]),
        best_epoch=best + 1,
        metrics=metrics,
        seconds=seconds,
        data_fingerprint=fingerprint(frame),
    )
    info = {
        "package_version": __version__,
        "dataset": spec.name,
        "training": {k: v for k, v in asdict(result).items() if k != "export_dir"},
        "hyperparameters": config.to_dict(),
        contract.REASON_BASELINE_KEY: reason_baseline(frame, spec),
    }
    export(model, spec, export_dir, info)
    return result
