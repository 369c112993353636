"""Train the wide-and-deep model on a frame and export it as a raw-feature SavedModel."""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from credit_risk import __version__
from credit_risk.errors import ConfigError, DataError
from credit_risk.modeling import training_data
from credit_risk.modeling.model import WIDE_PREFIX, ModelConfig, average_models, build_model
from credit_risk.spec import contract, rating
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 200
    batch_size: int = 64  # global batch: split across workers under MultiWorkerMirroredStrategy
    learning_rate: float = 1e-3  # the deep part's (Adam)
    wide_learning_rate: float | None = None  # the wide part's; None = learning_rate
    wide_optimizer: str = "adam"  # or "ftrl", the wide-and-deep paper's choice for the linear part
    validation_fraction: float = 0.2
    early_stopping_patience: int = 30
    class_weighting: bool = False
    seed: int = 42
    # Members trained with seeds seed, seed+1, ... (each its own validation split); the exported
    # model averages their PDs. Variance reduction for small data, at ensemble_size x the time.
    ensemble_size: int = 3
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("learning_rate", "wide_learning_rate"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ConfigError(f"{name} must be in (0, 1), got {value}")
        if self.wide_optimizer not in WIDE_OPTIMIZERS:
            raise ConfigError(f"wide_optimizer must be one of {WIDE_OPTIMIZERS}, got {self.wide_optimizer!r}")
        if not 0.05 <= self.validation_fraction <= 0.5:
            raise ConfigError(f"validation_fraction must be in [0.05, 0.5], got {self.validation_fraction}")
        if not 1 <= self.ensemble_size <= MAX_ENSEMBLE:
            raise ConfigError(f"ensemble_size must be in [1, {MAX_ENSEMBLE}], got {self.ensemble_size}")
        if self.early_stopping_patience < 1:
            raise ConfigError(f"early_stopping_patience must be >= 1, got {self.early_stopping_patience}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


WIDE_OPTIMIZERS = ("adam", "ftrl")
MAX_ENSEMBLE = 10


def config_from_overrides(overrides: list[str]) -> TrainingConfig:
    """The defaults with ``key=value`` overrides, values as JSON (model keys prefixed ``model.``),
    e.g. ``["epochs=50", "model.hidden_units=[16]"]``; an unknown key is a ConfigError."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(TrainingConfig)} - {"model"}
    known_model = {f.name for f in fields(ModelConfig)}
    top: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        name = key.removeprefix("model.")
        if not sep or name not in (known_model if key.startswith("model.") else known):
            raise ConfigError(
                f"unknown training setting {item!r}: use key=value with key in {sorted(known)} "
                f"or model.<key> with key in {sorted(known_model)}"
            )
        try:
            value = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{key}: {raw!r} is not a JSON value (numbers, true/false, [16, 8])") from None
        if name == "hidden_units" and isinstance(value, list):
            value = tuple(value)
        (model if key.startswith("model.") else top)[name] = value
    base = TrainingConfig()
    return replace(base, model=replace(base.model, **model), **top)


VALIDATION_CACHE_ROWS = 500_000  # validation rows kept in memory between epochs; more are re-streamed


@dataclass
class TrainingResult:
    export_dir: str
    rows: int
    epochs_run: int
    best_epoch: int
    metrics: dict[str, float]
    seconds: float
    data_fingerprint: str
    exported: bool = True  # False on a non-chief worker of a multi-worker run


@dataclass
class Fitted:
    """A trained model with what is known about how it was trained."""

    model: Any
    history: dict[str, list[float]]
    best_epoch: int  # 0-based index into history
    profile: training_data.DataProfile
    fit_rows_per_second: float
    epoch_fit_seconds: list[float]  # time in train steps per epoch (no validation)
    members: list[Fitted] = field(default_factory=list)  # of an ensemble; history etc. are member 0's

    def best_metrics(self) -> dict[str, float]:
        """The best epoch's metrics (mean over the members of an ensemble)."""
        fits = self.members or [self]
        return {k: float(np.mean([f.history[k][f.best_epoch] for f in fits])) for k in self.history}


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


def profile_baseline(profile: training_data.DataProfile, spec: FeatureSpec) -> dict[str, float | str]:
    """``reason_baseline`` from a streaming profile: sample median, most frequent category."""
    baseline: dict[str, float | str] = {}
    for f in spec.model_features:
        if f.is_numeric:
            baseline[f.name] = float(np.median(profile.numeric[f.name].sample))
        else:
            counts = profile.categories[f.name]
            # most frequent; ties -> the smallest value, as pandas' mode() picks
            baseline[f.name] = str(min(counts, key=lambda v: (-counts[v], v)))
    return baseline


SCALE_FIT_ROWS = 100_000  # training rows scored to cut a ``master_scale: {grades: N}`` at quantiles


def master_scale(
    spec: FeatureSpec, model: Any, data: pd.DataFrame | training_data.FileSource
) -> rating.MasterScale | None:
    """The model's rating scale: the spec's fixed boundaries, or ``grades: N`` cut at quantiles
    of the trained model's PDs on (up to ``SCALE_FIT_ROWS``) training rows; None without one."""
    setting = spec.master_scale
    if setting is None:
        return None
    if setting.boundaries:
        return rating.MasterScale(setting.boundaries, "spec boundaries")
    assert setting.grades is not None
    if isinstance(data, pd.DataFrame):
        rows = data.iloc[:SCALE_FIT_ROWS]
    else:
        chunks, seen = [], 0
        for _, chunk in data.chunks(spec):
            chunks.append(chunk)
            seen += len(chunk)
            if seen >= SCALE_FIT_ROWS:
                break
        rows = pd.concat(chunks, ignore_index=True).iloc[:SCALE_FIT_ROWS]
    return rating.fit_scale(predict_frame(model, rows, spec), setting.grades)


def _tensors(frame: pd.DataFrame, spec: FeatureSpec) -> dict:
    import tensorflow as tf

    return {k: tf.constant(v) for k, v in contract.frame_to_arrays(frame, spec).items()}


# --- distribution ---------------------------------------------------------------------------
def cluster() -> dict[str, Any]:
    """TF_CONFIG as set by a Kubeflow TFJob / multi-pod launch ({} when training alone)."""
    try:
        return dict(json.loads(os.environ.get("TF_CONFIG") or "{}"))
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {e}") from e


def is_chief() -> bool:
    """The chief (or worker 0 when there is no chief) is the one process that exports."""
    task = cluster().get("task", {})
    if not task:
        return True
    if "chief" in cluster().get("cluster", {}):
        return bool(task.get("type") == "chief")
    return bool(task.get("type") == "worker" and int(task.get("index", 0)) == 0)


@functools.cache
def strategy() -> Any:
    """MultiWorkerMirroredStrategy when TF_CONFIG names more than one task, else the default one.

    Created once per process, before any other TensorFlow work (a TF requirement for collectives).
    """
    import tensorflow as tf

    tasks = sum(len(v) for v in cluster().get("cluster", {}).values())
    chosen = tf.distribute.MultiWorkerMirroredStrategy() if tasks > 1 else tf.distribute.get_strategy()
    log.info("distribution: %s with %d replica(s)", type(chosen).__name__, chosen.num_replicas_in_sync)
    return chosen


# --- training -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    """One side of the train/validation split, as a stream of batches."""

    source: training_data.Source
    split: str
    fraction: float

    def batches(self, spec: FeatureSpec, batch_size: int, seed: int, **kw: Any):
        return training_data.batches(
            self.source,
            spec,
            batch_size,
            split=self.split,
            validation_fraction=self.fraction,
            seed=seed,
            **kw,
        )


def _split(data: pd.DataFrame | training_data.FileSource, spec: FeatureSpec, config: TrainingConfig):
    """(fit part, validation part, profile of the fit rows with the fingerprint of all rows)."""
    if isinstance(data, training_data.FileSource):
        profile = training_data.analyze(data, spec, config.validation_fraction, config.seed)
        return (
            _Part(data, "fit", config.validation_fraction),
            _Part(data, "validation", config.validation_fraction),
            profile,
        )
    from sklearn.model_selection import train_test_split

    whole = training_data.analyze(training_data.FrameSource(data), spec)  # checks + fingerprint
    if len(data) < 20:
        raise DataError(f"training needs >= 20 rows; got {len(data)}")
    # Small in-memory data: a stratified split keeps the validation default rate honest.
    fit_df, val_df = train_test_split(
        data, test_size=config.validation_fraction, random_state=config.seed, stratify=data[spec.label]
    )
    profile = training_data.analyze(training_data.FrameSource(fit_df), spec)
    profile.fingerprint, profile.rows, profile.validation_rows = whole.fingerprint, whole.rows, len(val_df)
    return (
        _Part(training_data.FrameSource(fit_df), "fit", 0.0),
        _Part(training_data.FrameSource(val_df), "fit", 0.0),
        profile,
    )


def _optimizer(kind: str, learning_rate: float, l1: float):
    import keras

    if kind == "ftrl":
        return keras.optimizers.Ftrl(learning_rate, l1_regularization_strength=l1)
    return keras.optimizers.Adam(learning_rate)


def _signature(spec: FeatureSpec):
    import tensorflow as tf

    features = {
        f.name: tf.TensorSpec([None, 1], tf.float32 if f.is_numeric else tf.string, name=f.name)
        for f in spec.model_features
    }
    return features, tf.TensorSpec([None, 1], tf.float32)


def train(data: pd.DataFrame | training_data.FileSource, spec: FeatureSpec, config: TrainingConfig) -> Fitted:
    """Fit with early stopping on a seeded validation split; the best epoch's weights are kept.

    ``data`` is a typed frame (small data: stratified split) or a ``FileSource`` streamed from
    disk/GCS (hashed split). A custom loop rather than ``Model.fit``: it runs unchanged under
    MultiWorkerMirroredStrategy (Keras 3's fit does not, keras-team/keras#20585) and gives the
    wide and deep parts their own optimizers, as in the wide-and-deep paper. Deterministic for a
    fixed seed on CPU. With ``ensemble_size`` > 1 the members are trained one after another and
    the returned model averages their PDs.
    """
    if config.ensemble_size == 1:
        return _train_member(data, spec, config, "")
    from dataclasses import replace

    members = [
        _train_member(data, spec, replace(config, seed=config.seed + i, ensemble_size=1), f"member_{i}")
        for i in range(config.ensemble_size)
    ]
    first = members[0]
    return Fitted(
        model=average_models(spec, [m.model for m in members]),
        history=first.history,
        best_epoch=first.best_epoch,
        profile=first.profile,
        fit_rows_per_second=float(np.mean([m.fit_rows_per_second for m in members])),
        epoch_fit_seconds=[s for m in members for s in m.epoch_fit_seconds],
        members=members,
    )


def _train_member(
    data: pd.DataFrame | training_data.FileSource, spec: FeatureSpec, config: TrainingConfig, name: str
) -> Fitted:
    dist = strategy()  # first: collectives must be configured before other TF work
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    fit, val, profile = _split(data, spec, config)
    loop = _Loop(dist, spec, config, profile, name)
    train_steps = loop.train_steps(fit)
    validation = loop.validation(val)
    steps = max(1, -(-profile.fit_rows // config.batch_size))
    hist: dict[str, list[float]] = {"loss": [], "val_loss": [], "val_auc": []}
    best, best_loss, best_weights, waited = 0, np.inf, loop.model.get_weights(), 0
    epoch_seconds: list[float] = []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        total = train_steps(tf.constant(steps))
        hist["loss"].append(float(total) / steps)
        epoch_seconds.append(time.perf_counter() - t0)
        val_loss, val_auc = validation()
        hist["val_loss"].append(val_loss)
        hist["val_auc"].append(val_auc)
        if val_loss < best_loss:
            best, best_loss, best_weights, waited = epoch, val_loss, loop.model.get_weights(), 0
        else:
            waited += 1
        if epoch == 0 or (epoch + 1) % 10 == 0 or waited >= config.early_stopping_patience:
            log.info(
                "epoch %d/%d: loss %.4f val_loss %.4f val_auc %.4f (%.1fs)",
                epoch + 1,
                config.epochs,
                hist["loss"][-1],
                val_loss,
                val_auc,
                time.perf_counter() - t0,
            )
        if waited >= config.early_stopping_patience:
            log.info("early stop: no better val_loss for %d epochs; best epoch %d", waited, best + 1)
            break
    loop.model.set_weights(best_weights)
    rate = profile.fit_rows * len(epoch_seconds) / sum(epoch_seconds)
    return Fitted(
        model=loop.model,
        history=hist,
        best_epoch=best,
        profile=profile,
        fit_rows_per_second=rate,
        epoch_fit_seconds=epoch_seconds,
    )


class _Loop:
    """The model, its two optimizers and the compiled step functions for one training run."""

    def __init__(
        self,
        dist: Any,
        spec: FeatureSpec,
        config: TrainingConfig,
        profile: training_data.DataProfile,
        name: str,
    ):
        import keras

        self.dist, self.spec, self.config = dist, spec, config
        self.validation_rows = profile.validation_rows
        pos = profile.positives / profile.fit_rows
        self.class_weights = (0.5 / (1 - pos), 0.5 / pos) if config.class_weighting else (1.0, 1.0)
        with dist.scope():
            self.model = build_model(spec, profile, config.model, name)
            variables = self.model.trainable_variables
            self.wide_vars = [v for v in variables if v.path.startswith(WIDE_PREFIX)]
            self.deep_vars = [v for v in variables if not v.path.startswith(WIDE_PREFIX)]
            self.wide_opt = _optimizer(
                config.wide_optimizer, config.wide_learning_rate or config.learning_rate, config.model.l1
            )
            self.deep_opt = keras.optimizers.Adam(config.learning_rate)
            self.wide_opt.build(self.wide_vars)
            self.deep_opt.build(self.deep_vars)
        self.features_spec, self.label_spec = _signature(spec)

    def train_steps(self, fit: _Part) -> Any:
        """A function running n distributed steps on the next n batches; returns the summed loss."""
        import keras
        import tensorflow as tf

        config, spec, model = self.config, self.spec, self.model
        epochs_started = itertools.count()

        def dataset_fn(ctx: Any) -> Any:
            per_replica = ctx.get_per_replica_batch_size(config.batch_size)
            shard = (ctx.input_pipeline_id, ctx.num_input_pipelines)

            def epoch_batches() -> Any:
                yield from fit.batches(
                    spec, per_replica, config.seed, epoch=next(epochs_started), shard=shard
                )

            signature = (self.features_spec, self.label_spec)
            return (
                tf.data.Dataset.from_generator(epoch_batches, output_signature=signature).repeat().prefetch(2)
            )

        iterator = iter(self.dist.distribute_datasets_from_function(dataset_fn))
        w0, w1 = self.class_weights
        n_wide = len(self.wide_vars)

        def replica_step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                p = model(x, training=True)[contract.OUTPUT_KEY]
                per_example = keras.losses.binary_crossentropy(y, p) * tf.where(y[:, 0] > 0.5, w1, w0)
                loss = tf.nn.compute_average_loss(per_example)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            grads = tape.gradient(loss, self.wide_vars + self.deep_vars)
            self.wide_opt.apply_gradients(zip(grads[:n_wide], self.wide_vars, strict=True))
            self.deep_opt.apply_gradients(zip(grads[n_wide:], self.deep_vars, strict=True))
            return loss

        @tf.function
        def steps(n: Any) -> Any:
            # n steps in one graph call: no Python round trip per batch (Keras' steps_per_execution)
            total = tf.constant(0.0)
            for _ in tf.range(n):
                x, y = next(iterator)
                total += self.dist.reduce(
                    tf.distribute.ReduceOp.SUM, self.dist.run(replica_step, args=(x, y)), axis=None
                )
            return total

        return steps

    def validation(self, val: _Part) -> Any:
        """A function returning (val_loss, val_auc) of the current weights on the validation rows.

        Every worker scores all validation rows with the same (synchronised) weights, so every
        worker takes the same early-stopping decision - no collective needed.
        """
        import tensorflow as tf

        spec, seed, model = self.spec, self.config.seed, self.model

        @tf.function(input_signature=[self.features_spec])
        def predict(x: Any) -> Any:
            return model(x, training=False)[contract.OUTPUT_KEY]

        cached = None
        if self.validation_rows <= VALIDATION_CACHE_ROWS:
            cached = list(val.batches(spec, 8192, seed, shuffle=False))

        def evaluate() -> tuple[float, float]:
            parts = cached if cached is not None else val.batches(spec, 8192, seed, shuffle=False)
            ps, ys = [], []
            for x, y in parts:
                ps.append(predict(x).numpy().reshape(-1))
                ys.append(y.reshape(-1))
            p, y = np.concatenate(ps), np.concatenate(ys)
            # as Keras reports val_loss: data loss + regularisation penalties
            penalty = float(sum(float(v) for v in model.losses))
            return _log_loss(y, p) + penalty, _auc(y, p)

        return evaluate


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)  # Keras' epsilon
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


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
    data: pd.DataFrame | training_data.FileSource,
    spec: FeatureSpec,
    config: TrainingConfig,
    export_dir: str | Path,
) -> TrainingResult:
    """Train on a typed frame or a streamed ``FileSource`` and export the model with its sidecar.

    Under MultiWorkerMirroredStrategy every worker trains; only the chief's export lands at
    ``export_dir`` (the others write to a scratch directory that is deleted: saving may need
    every worker to take part).
    """
    start = time.perf_counter()
    where = data.uri if isinstance(data, training_data.FileSource) else f"{len(data)} in-memory rows"
    log.info("training %s on %s: %s", spec.name, where, json.dumps(config.to_dict()))
    fitted = train(data, spec, config)
    hist, best = fitted.history, fitted.best_epoch
    metrics = fitted.best_metrics()
    seconds = time.perf_counter() - start
    log.info(
        "trained %d epochs (best %d) in %.1fs (%.0f rows/s while fitting): %s",
        len(hist["loss"]),
        best + 1,
        seconds,
        fitted.fit_rows_per_second,
        {k: round(v, 4) for k, v in metrics.items()},
    )
    chief = is_chief()
    result = TrainingResult(
        export_dir=str(export_dir),
        rows=fitted.profile.rows,
        epochs_run=len(hist["loss"]),
        best_epoch=best + 1,
        metrics=metrics,
        seconds=seconds,
        data_fingerprint=fitted.profile.fingerprint,
        exported=chief,
    )
    baseline = (
        reason_baseline(data, spec)
        if isinstance(data, pd.DataFrame)
        else profile_baseline(fitted.profile, spec)
    )
    info = {
        "package_version": __version__,
        "dataset": spec.name,
        "training": {k: v for k, v in asdict(result).items() if k not in ("export_dir", "exported")},
        "hyperparameters": config.to_dict(),
        "workers": strategy().num_replicas_in_sync,
        "ensemble_best_epochs": [m.best_epoch + 1 for m in fitted.members] or [best + 1],
        contract.REASON_BASELINE_KEY: baseline,
    }
    scale = master_scale(spec, fitted.model, data)
    if scale is not None:
        info[contract.MASTER_SCALE_KEY] = scale.to_dict()
    if chief:
        export(fitted.model, spec, export_dir, info)
    else:
        scratch = tempfile.mkdtemp(prefix="worker-export-")
        try:
            export(fitted.model, spec, Path(scratch) / "model", info)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log.info("not the chief: trained, export left to the chief")
    return result
