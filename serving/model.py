"""Our KServe predictor: a ``kserve.Model`` over the exported wide-and-deep SavedModel.

``load`` reads the SavedModel and the feature spec saved beside it; ``preprocess`` checks the request
against the spec (400 naming instance and field on a client mistake); ``predict`` runs the serving
signature off the event loop; ``postprocess`` shapes one result per instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput, ModelMissingError

from credit_risk import contract, feature_spec

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What preprocess hands on: the model's input arrays and how to answer (V1 or V2)."""

    arrays: dict[str, np.ndarray]
    v2_request_id: str | None = None  # set for a V2 (Open Inference Protocol) request
    reasons: bool = False
    top_k: int = contract.DEFAULT_TOP_REASONS


class CreditRiskModel(Model):
    def __init__(
        self,
        name: str,
        model_dir: str,
        max_instances: int = contract.DEFAULT_MAX_INSTANCES,
        decision_threshold: float = contract.DEFAULT_OPERATING_THRESHOLD,
        scorecard: contract.Scorecard | None = None,
    ):
        super().__init__(name)
        if not 0 < decision_threshold < 1:
            raise ValueError(f"decision_threshold must be in (0, 1), got {decision_threshold}")
        self.decision_threshold = decision_threshold
        self.scorecard = scorecard or contract.Scorecard()
        self.model_dir = model_dir
        self.max_instances = max_instances
        self.spec: feature_spec.FeatureSpec | None = None
        self._signature: Any = None
        self._saved_model: Any = None
        self.reason_baseline: dict[str, Any] | None = None

    def load(self) -> bool:
        import tensorflow as tf

        spec_path = Path(self.model_dir) / contract.SPEC_FILE
        if not spec_path.exists():
            raise ModelMissingError(str(spec_path))
        self.spec = feature_spec.load(str(spec_path))
        self._saved_model = tf.saved_model.load(self.model_dir)
        self._signature = self._saved_model.signatures[contract.SIGNATURE_NAME]
        info_path = Path(self.model_dir) / contract.MODEL_INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.reason_baseline = info.get(contract.REASON_BASELINE_KEY)
        if self.reason_baseline is None:
            log.warning(
                "model_info.json has no %s: answers carry no reason codes", contract.REASON_BASELINE_KEY
            )
        self.ready = True
        log.info(
            "loaded model %s (%s, %d inputs) from %s",
            self.name,
            self.spec.name,
            len(self.spec.model_features),
            self.model_dir,
        )
        return self.ready

    def predict_arrays(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Synchronous signature call: named [n, 1] arrays -> PD [n]."""
        import tensorflow as tf

        out = self._signature(**{k: tf.constant(v) for k, v in arrays.items()})
        return out[contract.OUTPUT_KEY].numpy().reshape(-1)

    def get_input_types(self) -> list[dict[str, Any]]:
        assert self.spec is not None
        return contract.input_metadata(self.spec)

    def get_output_types(self) -> list[dict[str, Any]]:
        return contract.output_metadata()

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Prepared:
        assert self.spec is not None
        try:
            if isinstance(payload, InferRequest):
                tensors = {t.name: (t.datatype, t.shape, _flat(t)) for t in payload.inputs}
                columns = contract.parse_tensors(tensors, self.spec, self.max_instances)
                return Prepared(contract.columns_to_arrays(columns, self.spec), payload.id or "")
            columns = contract.parse_instances(payload, self.spec, self.max_instances)
            reasons, top_k = contract.parse_options(payload)
        except contract.RequestError as e:
            raise InvalidInput(str(e)) from e
        arrays = contract.columns_to_arrays(columns, self.spec)
        return Prepared(arrays, reasons=reasons and self.reason_baseline is not None, top_k=top_k)

    async def predict(
        self, prepared: Prepared, headers: dict[str, str] | None = None
    ) -> tuple[Prepared, np.ndarray, list[list[dict[str, Any]]] | None]:
        # TensorFlow releases the GIL; a thread keeps the event loop answering other requests.
        if not prepared.reasons:
            return prepared, await asyncio.to_thread(self.predict_arrays, prepared.arrays), None
        assert self.spec is not None and self.reason_baseline is not None
        n = len(next(iter(prepared.arrays.values())))
        grid = contract.occlusion_arrays(prepared.arrays, self.reason_baseline, self.spec)
        scores = await asyncio.to_thread(self.predict_arrays, grid)
        pds, reasons = contract.reasons_from_scores(scores, n, self.spec, prepared.top_k)
        return prepared, pds, reasons

    async def postprocess(
        self,
        result: tuple[Prepared, np.ndarray, list[list[dict[str, Any]]] | None],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        prepared, pds, reasons = result
        if prepared.v2_request_id is not None:
            output = InferOutput(
                name=contract.OUTPUT_KEY,
                shape=[len(pds), 1],
                datatype=contract.OUTPUT_DATATYPE,
                data=[float(p) for p in pds],
            )
            return InferResponse(
                response_id=prepared.v2_request_id, model_name=self.name, infer_outputs=[output]
            )
        answers = [self._answer(float(p)) for p in pds]
        if reasons is not None:
            for answer, r in zip(answers, reasons, strict=True):
                answer["reasons"] = r
        return {"predictions": answers}

    def _answer(self, pd: float) -> dict[str, Any]:
        return {
            "pd": pd,
            "decision": contract.decide(pd, self.decision_threshold),
            "score": round(self.scorecard.points(pd), 1),
        }


def _flat(tensor: Any) -> list[Any]:
    """A V2 input tensor's values as a flat list (JSON lists may arrive nested)."""
    data = tensor.data
    if isinstance(data, np.ndarray):
        return list(data.reshape(-1).tolist())
    flat: list[Any] = []
    for item in data:
        flat.extend(item if isinstance(item, list) else [item])
    return flat
