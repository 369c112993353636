"""Score rows with an exported SavedModel through its serving signature (what production serves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from credit_risk.spec import contract, feature_spec
from credit_risk.spec.feature_spec import FeatureSpec


class ExportedModel:
    """An exported model directory: SavedModel + the feature spec it was trained with."""

    def __init__(self, model_dir: str | Path):
        import tensorflow as tf

        self.model_dir = str(model_dir)
        self.spec: FeatureSpec = feature_spec.load(str(Path(model_dir) / contract.SPEC_FILE))
        self._loaded = tf.saved_model.load(self.model_dir)
        self._signature = self._loaded.signatures[contract.SIGNATURE_NAME]

    def predict_arrays(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        import tensorflow as tf

        out = self._signature(**{k: tf.constant(v) for k, v in arrays.items()})
        return out[contract.OUTPUT_KEY].numpy().reshape(-1)

    def predict_frame(self, frame: pd.DataFrame, batch_size: int = 8192) -> np.ndarray:
        parts = [
            self.predict_arrays(contract.frame_to_arrays(frame.iloc[i : i + batch_size], self.spec))
            for i in range(0, len(frame), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
