"""How raw feature values become model input arrays - shared by training, evaluation and serving.

numpy only (no TensorFlow, no kserve), so the same rules run in both environments:
a missing numeric is NaN (the model adds a missing-indicator and imputes inside the graph); a missing
categorical is the empty string, which the model's vocabulary maps to its out-of-vocabulary bucket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from credit_risk.feature_spec import FeatureSpec

MISSING_CATEGORY = ""
SIGNATURE_NAME = "serving_default"
OUTPUT_KEY = "pd"
SPEC_FILE = "feature_spec.yaml"
MODEL_INFO_FILE = "model_info.json"


def numeric_array(values: Sequence[Any]) -> np.ndarray:
    """[n] values (None/NaN = missing) -> float32 [n, 1]."""
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float32)
    return arr.reshape(-1, 1)


def categorical_array(values: Sequence[Any]) -> np.ndarray:
    """[n] values (None/NaN = missing) -> bytes-compatible object array [n, 1]."""
    out = [MISSING_CATEGORY if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)
           for v in values]
    return np.asarray(out, dtype=object).reshape(-1, 1)


def columns_to_arrays(columns: Mapping[str, Sequence[Any]], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Column-major raw values (exactly the spec's model inputs) -> the model's named input arrays."""
    return {
        f.name: numeric_array(columns[f.name]) if f.is_numeric else categorical_array(columns[f.name])
        for f in spec.model_features
    }


def frame_to_arrays(frame, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """A pandas DataFrame with (at least) the model-input columns -> named input arrays."""
    return columns_to_arrays({f.name: frame[f.name].tolist() for f in spec.model_features}, spec)
