"""The wide-and-deep PD model, built from the feature spec with all preprocessing inside the graph.

Wide part (linear, memorises): one-hot categoricals, quantile-bucketized numerics, missing
indicators and hashed categorical crosses. Deep part (generalises): embeddings of categoricals,
normalized numerics and missing indicators through a small MLP. Logits are summed; sigmoid = PD.

Vocabularies, bucket boundaries and normalisation constants are computed from the training frame and
baked into the layers, so the exported SavedModel takes raw named features and nothing else.

Monotone by construction (``monotone_constraints``): a numeric feature the spec declares
``monotone`` leaves the deep part and its wide buckets; it enters only through its own linear term
on a thermometer encoding (x >= b_1, ..., x >= b_k) plus its normalized value, with non-negative
weights on the direction-signed inputs. Its logit term is then a non-decreasing (increasing) or
non-increasing (decreasing) function of the feature, nothing else depends on it, and the sigmoid,
the ensemble average and Platt recalibration all preserve the order: the PD is monotone in it
whatever the weights learn. (Its missing indicator, when nullable, stays in both parts: it is
constant along a sweep of present values.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from credit_risk.errors import ConfigError
from credit_risk.spec.contract import OUTPUT_KEY
from credit_risk.spec.feature_spec import FeatureSpec

if TYPE_CHECKING:
    from credit_risk.modeling.training_data import DataProfile

WIDE_PREFIX = "wide_"  # variables of the wide (linear) part; the rest is the deep part


@dataclass(frozen=True)
class ModelConfig:
    # Defaults chosen by 5x3 cross-validation on both bundled datasets (docs/measured.md):
    # a small model, heavily regularised, is what 1,000-4,500 rows support.
    hidden_units: tuple[int, ...] = (16,)
    embedding_dim: int = 4
    num_buckets: int = 4
    cross_hash_bins: int = 16
    dropout: float = 0.5
    l2: float = 1e-3
    l1: float = 0.0  # on the wide part's weights only: sparsity where the paper used FTRL + L1
    monotone_constraints: bool = False  # enforce the spec's monotone directions (module docstring)

    def __post_init__(self) -> None:
        if not self.hidden_units or any(u < 1 for u in self.hidden_units):
            raise ConfigError(f"hidden_units must be positive integers, got {self.hidden_units}")
        for name, lo in (("embedding_dim", 1), ("num_buckets", 2), ("cross_hash_bins", 2)):
            if getattr(self, name) < lo:
                raise ConfigError(f"{name} must be >= {lo}, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("l1", "l2"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        return d


def _quantile_boundaries(values: np.ndarray, num_buckets: int) -> list[float]:
    qs = np.quantile(values, np.linspace(0, 1, num_buckets + 1)[1:-1])
    return sorted({float(q) for q in qs})


def build_model(spec: FeatureSpec, profile: DataProfile, config: ModelConfig, name: str = ""):
    """A Keras functional model (raw named inputs -> {"pd": [n, 1]}) whose preprocessing constants
    come from ``profile`` (``training_data.analyze`` over the training rows)."""
    import keras
    from keras import layers, ops

    reg = keras.regularizers.l2(config.l2) if config.l2 else None
    wide_reg = keras.regularizers.l1_l2(l1=config.l1, l2=config.l2) if (config.l1 or config.l2) else None
    inputs: dict = {}
    wide, deep = [], []
    monotone_logits = []
    for f in spec.model_features:
        if f.is_numeric:
            x = keras.Input(shape=(1,), name=f.name, dtype="float32")
            inputs[f.name] = x
            stats = profile.numeric[f.name]
            mean, var = stats.mean, max(stats.variance, 1e-12)
            missing = ops.cast(ops.isnan(x), "float32")
            filled = ops.where(ops.isnan(x), ops.full_like(x, mean), x)
            if config.monotone_constraints and f.direction:
                monotone_logits.append(_monotone_term(f.name, f.direction, filled, mean, var, stats, config))
                if f.nullable:
                    wide.append(missing)
                    deep.append(missing)
                continue
            deep.append(layers.Normalization(mean=mean, variance=var, name=f"{f.name}_norm")(filled))
            bounds = _quantile_boundaries(stats.sample, config.num_buckets)
            bucket = layers.Discretization(bin_boundaries=bounds, name=f"{f.name}_bucket")(filled)
            wide.append(
                layers.CategoryEncoding(
                    num_tokens=len(bounds) + 1, output_mode="one_hot", name=f"{f.name}_bucket_onehot"
                )(bucket)
            )
            if f.nullable:
                wide.append(missing)
                deep.append(missing)
        else:
            x = keras.Input(shape=(1,), name=f.name, dtype="string")
            inputs[f.name] = x
            vocab = profile.vocabulary(f.name)
            idx = layers.StringLookup(vocabulary=vocab, num_oov_indices=1, name=f"{f.name}_lookup")(x)
            size = len(vocab) + 1
            wide.append(
                layers.CategoryEncoding(num_tokens=size, output_mode="one_hot", name=f"{f.name}_onehot")(idx)
            )
            emb = layers.Embedding(
                size, config.embedding_dim, embeddings_regularizer=reg, name=f"{f.name}_embedding"
            )(idx)
            deep.append(layers.Flatten(name=f"{f.name}_embedding_flat")(emb))
    for a, b in spec.crosses:
        wide.append(
            layers.HashedCrossing(num_bins=config.cross_hash_bins, output_mode="one_hot", name=f"{a}_x_{b}")(
                (inputs[a], inputs[b])
            )
        )

    wide_logit = layers.Dense(1, kernel_regularizer=wide_reg, name=f"{WIDE_PREFIX}logit")(
        layers.Concatenate(name="wide_features")(wide)
    )
    h = layers.Concatenate(name="deep_features")(deep)
    for i, units in enumerate(config.hidden_units):
        h = layers.Dense(units, activation="relu", kernel_regularizer=reg, name=f"deep_{i}")(h)
        if config.dropout:
            h = layers.Dropout(config.dropout, name=f"deep_dropout_{i}")(h)
    deep_logit = layers.Dense(1, kernel_regularizer=reg, name="deep_logit")(h)
    logit = layers.Add(name="logit")([wide_logit, deep_logit, *monotone_logits])
    pd_out = layers.Activation("sigmoid", name=OUTPUT_KEY)(logit)
    return keras.Model(inputs=inputs, outputs={OUTPUT_KEY: pd_out}, name=name or f"{spec.name}_wide_deep")


def _monotone_term(name: str, direction: int, filled, mean: float, var: float, stats, config: ModelConfig):
    """The feature's only path to the logit: non-negative weights on direction-signed inputs."""
    import keras
    from keras import layers, ops

    bounds = _quantile_boundaries(stats.sample, max(config.num_buckets, 2))
    thermometer = ops.cast(ops.greater_equal(filled, ops.convert_to_tensor(bounds, "float32")), "float32")
    scaled = (filled - mean) / float(np.sqrt(var))
    signed = layers.Concatenate(name=f"{name}_monotone_inputs")([thermometer, scaled]) * float(direction)
    return layers.Dense(
        1,
        use_bias=False,
        kernel_constraint=keras.constraints.NonNeg(),
        kernel_regularizer=keras.regularizers.l2(config.l2) if config.l2 else None,
        name=f"{WIDE_PREFIX}monotone_{name}",
    )(signed)


def average_models(spec: FeatureSpec, members: list):
    """One model whose PD is the mean of ``members``' PDs (same raw named inputs), for export."""
    import keras

    inputs = {
        f.name: keras.Input(shape=(1,), name=f.name, dtype="float32" if f.is_numeric else "string")
        for f in spec.model_features
    }
    pds = [m(inputs)[OUTPUT_KEY] for m in members]
    pd_out = keras.layers.Average(name=OUTPUT_KEY)(pds)
    return keras.Model(inputs=inputs, outputs={OUTPUT_KEY: pd_out}, name=f"{spec.name}_wide_deep_ensemble")
