"""How raw feature values become model input arrays - shared by training, evaluation and serving.

numpy only (no TensorFlow, no kserve), so the same rules run in both environments:
a missing numeric is NaN (the model adds a missing-indicator and imputes inside the graph); a missing
categorical is the empty string, which the model's vocabulary maps to its out-of-vocabulary bucket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credit_risk.feature_spec import Feature, FeatureSpec

Array = np.ndarray[Any, np.dtype[Any]]

MISSING_CATEGORY = ""
SIGNATURE_NAME = "serving_default"
OUTPUT_KEY = "pd"
SPEC_FILE = "feature_spec.yaml"
MODEL_INFO_FILE = "model_info.json"


def numeric_array(values: Sequence[Any]) -> Array:
    """[n] values (None/NaN = missing) -> float32 [n, 1]."""
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float32)
    return arr.reshape(-1, 1)


def categorical_array(values: Sequence[Any]) -> Array:
    """[n] values (None/NaN = missing) -> bytes-compatible object array [n, 1]."""
    out = [
        MISSING_CATEGORY if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in values
    ]
    return np.asarray(out, dtype=object).reshape(-1, 1)


def columns_to_arrays(columns: Mapping[str, Sequence[Any]], spec: FeatureSpec) -> dict[str, Array]:
    """Column-major raw values (exactly the spec's model inputs) -> the model's named input arrays."""
    return {
        f.name: numeric_array(columns[f.name]) if f.is_numeric else categorical_array(columns[f.name])
        for f in spec.model_features
    }


def frame_to_arrays(frame: Any, spec: FeatureSpec) -> dict[str, Array]:
    """A pandas DataFrame with (at least) the model-input columns -> named input arrays."""
    return columns_to_arrays({f.name: frame[f.name].tolist() for f in spec.model_features}, spec)


# --- the request contract (KServe V1 "instances") -----------------------------------------------
DEFAULT_MAX_INSTANCES = 10_000


class RequestError(ValueError):
    """A client's request breaks the contract. ``index``/``field`` say where; the server answers 400."""

    def __init__(self, message: str, index: int | None = None, field: str | None = None):
        where = []
        if index is not None:
            where.append(f"instance {index}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.index = index
        self.field = field


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_value(feature: Feature, value: Any, index: int) -> Any:
    if value is None:
        if not feature.nullable:
            raise RequestError("is required and may not be null", index, feature.name)
        return None
    if feature.is_numeric:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(
                f"expected a number, got {type(value).__name__} {_describe(value)}", index, feature.name
            )
        if not np.isfinite(value):
            raise RequestError(f"expected a finite number, got {value}", index, feature.name)
        problem = feature.out_of_range(value)
        if problem:
            raise RequestError(problem, index, feature.name)
        return value
    if not isinstance(value, str):
        raise RequestError(
            f"expected a string, got {type(value).__name__} {_describe(value)}", index, feature.name
        )
    return value


def parse_instances(
    payload: Any, spec: FeatureSpec, max_instances: int = DEFAULT_MAX_INSTANCES
) -> dict[str, list[Any]]:
    """Validate a V1 body ``{"instances": [{feature: value, ...}, ...]}`` -> column-major values.

    Unknown fields are rejected; spec features that are not model inputs (e.g. protected attributes
    kept for fairness monitoring) are accepted and ignored; a missing nullable field means null.
    """
    if not isinstance(payload, dict):
        raise RequestError(f"the body must be a JSON object with 'instances', got {type(payload).__name__}")
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list of objects")
    if len(instances) > max_instances:
        raise RequestError(f"batch of {len(instances)} instances exceeds the limit of {max_instances}")
    inputs = spec.model_features
    known = set(spec.feature_names)
    columns: dict[str, list[Any]] = {f.name: [] for f in inputs}
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise RequestError(f"expected an object of named features, got {type(instance).__name__}", i)
        unknown = sorted(set(instance) - known)
        if unknown:
            raise RequestError(
                f"unknown field(s) {unknown}; expected the features {[f.name for f in inputs]}", i, unknown[0]
            )
        for f in inputs:
            if f.name not in instance and not f.nullable:
                raise RequestError("is required but missing", i, f.name)
            columns[f.name].append(_check_value(f, instance.get(f.name), i))
    return columns
