"""Our KServe predictor: a ``kserve.Model`` over the exported wide-and-deep SavedModel.

``load`` reads the SavedModel and the feature spec saved beside it and warms the signature up;
``preprocess`` checks the request against the spec (400 naming instance and field on a client
mistake); ``predict`` hands the rows to the micro-batcher, which runs the serving signature on its
own thread for all concurrent requests at once; ``postprocess`` shapes one result per instance.
The same steps are exposed as ``prepare_v1`` / ``prepare_v2`` / ``infer`` / ``v1_response`` /
``v2_response`` for the server's fast path (serving/fastpath.py), which skips kserve's generic
request objects.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from credit_risk.serving import metrics
from credit_risk.serving.batcher import DEFAULT_MAX_WAIT_S, MicroBatcher
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput, ModelMissingError

from credit_risk.spec import contract, feature_spec, rating

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What preprocess hands on: the model's input arrays and how to answer (V1 or V2)."""

    arrays: dict[str, np.ndarray]
    v2_request_id: str | None = None  # set for a V2 (Open Inference Protocol) request
    reasons: bool = False  # for every instance; declines always get theirs
    top_k: int = contract.DEFAULT_TOP_REASONS


class CreditRiskModel(Model):
    def __init__(
        self,
        name: str,
        model_dir: str,
        max_instances: int = contract.DEFAULT_MAX_INSTANCES,
        decision_threshold: float = contract.DEFAULT_OPERATING_THRESHOLD,
        scorecard: contract.Scorecard | None = None,
        max_batch_rows: int = 512,
        batch_wait_s: float = DEFAULT_MAX_WAIT_S,
        tf_threads: int = 0,
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
        self._flat_call: Any = None
        self._saved_model: Any = None
        self.reason_baseline: dict[str, Any] | None = None
        self.scale: rating.MasterScale | None = None
        self.tf_threads = tf_threads  # 0 = TensorFlow's default (all cores)
        self.batcher = MicroBatcher(self.predict_arrays, max_batch_rows, batch_wait_s, metrics.observe_batch)

    def load(self) -> bool:
        import tensorflow as tf

        if self.tf_threads:
            # several workers share the cores: one TF thread each avoids oversubscription
            tf.config.threading.set_intra_op_parallelism_threads(self.tf_threads)
            tf.config.threading.set_inter_op_parallelism_threads(self.tf_threads)

        spec_path = Path(self.model_dir) / contract.SPEC_FILE
        if not spec_path.exists():
            raise ModelMissingError(str(spec_path))
        self.spec = feature_spec.load(str(spec_path))
        self._saved_model = tf.saved_model.load(self.model_dir)
        self._signature = self._saved_model.signatures[contract.SIGNATURE_NAME]
        info_path = Path(self.model_dir) / contract.MODEL_INFO_FILE
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        self.reason_baseline = info.get(contract.REASON_BASELINE_KEY)
        scale = info.get(contract.MASTER_SCALE_KEY)
        self.scale = rating.MasterScale.from_dict(scale) if scale else None
        if self.reason_baseline is None:
            log.warning(
                "model_info.json has no %s: answers carry no reason codes", contract.REASON_BASELINE_KEY
            )
        self._warm_up()
        self.ready = True
        log.info(
            "loaded model %s (%s, %d inputs) from %s",
            self.name,
            self.spec.name,
            len(self.spec.model_features),
            self.model_dir,
        )
        return self.ready

    def _warm_up(self) -> None:
        """Trace the signature for the batch sizes traffic brings before the first request does."""
        assert self.spec is not None
        example = self.reason_baseline or {
            f.name: (0.0 if f.is_numeric else "") for f in self.spec.model_features
        }
        for rows in (1, 8, 64):
            columns = {f.name: [example.get(f.name)] * rows for f in self.spec.model_features}
            arrays = contract.columns_to_arrays(columns, self.spec)
            if rows == 8:
                self._bind_flat_call(arrays)
            self.predict_arrays(arrays)

    def predict_arrays(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Synchronous signature call: named [n, 1] arrays -> PD [n]."""
        if self._flat_call is not None:
            return self._flat_call(arrays)
        return self.predict_arrays_public(arrays)

    def predict_arrays_public(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The signature called through its public keyword interface."""
        import tensorflow as tf

        out = self._signature(**{k: tf.constant(v) for k, v in arrays.items()})
        return out[contract.OUTPUT_KEY].numpy().reshape(-1)

    def _bind_flat_call(self, example: dict[str, np.ndarray]) -> None:
        """Call the signature's graph with positional tensors, skipping the keyword binding and
        type checks TF repeats on every call (~0.25 ms of a ~0.8 ms 1-row call here). Uses
        ``_call_flat`` (TF internals), so it is only used when it gives exactly what the public call
        gives on ``example``; otherwise the public call stays."""
        import tensorflow as tf

        signature = self._signature
        try:
            order = list(signature.function_type.parameters)
            captured = signature.captured_inputs

            def flat_call(arrays: dict[str, np.ndarray]) -> np.ndarray:
                out = signature._call_flat([tf.constant(arrays[name]) for name in order], captured)
                return out[contract.OUTPUT_KEY].numpy().reshape(-1)

            same = np.array_equal(flat_call(example), self.predict_arrays_public(example))
        except Exception as e:
            log.warning("flat signature call unavailable (%s); using the public call", e)
            return
        if same:
            self._flat_call = flat_call
        else:
            log.warning("flat signature call disagrees with the public call; using the public call")

    def get_input_types(self) -> list[dict[str, Any]]:
        assert self.spec is not None
        return contract.input_metadata(self.spec)

    def get_output_types(self) -> list[dict[str, Any]]:
        return contract.output_metadata(self.scale is not None, self.reason_baseline is not None)

    # --- the request path, shared by kserve's routes and the fast path ---------------------------
    def prepare_v1(self, payload: Any, explain: bool = False) -> Prepared:
        """A V1 body -> model arrays; RequestError names the instance and field. ``explain`` (the
        ``:explain`` route) always computes reasons, whatever ``parameters.reasons`` says."""
        assert self.spec is not None
        columns = contract.parse_instances(payload, self.spec, self.max_instances)
        reasons, top_k = contract.parse_options(payload)
        if explain and self.reason_baseline is None:
            raise contract.RequestError("this model was exported without a reason baseline: no explanations")
        arrays = contract.columns_to_arrays(columns, self.spec)
        wanted = explain or reasons
        return Prepared(arrays, reasons=wanted and self.reason_baseline is not None, top_k=top_k)

    def prepare_v2(self, payload: Any) -> Prepared:
        """A V2 JSON body -> model arrays; RequestError names the tensor."""
        assert self.spec is not None
        tensors, request_id = contract.parse_v2_body(payload)
        columns = contract.parse_tensors(tensors, self.spec, self.max_instances)
        reasons, top_k = contract.parse_options(payload, default_reasons=False)
        arrays = contract.columns_to_arrays(columns, self.spec)
        return Prepared(arrays, request_id, reasons=reasons and self.reason_baseline is not None, top_k=top_k)

    async def infer(self, prepared: Prepared) -> tuple[np.ndarray, list[list[dict[str, Any]] | None] | None]:
        """PDs and reasons through the micro-batcher; the event loop never blocks.

        Reasons: for every instance when ``prepared.reasons``, else for the declined ones only (an
        adverse action must state its reasons), with a second model call over just those rows.
        Entries are None for instances without reasons; the result is None when none has any."""
        if prepared.reasons:
            assert self.spec is not None and self.reason_baseline is not None
            n = len(next(iter(prepared.arrays.values())))
            grid = contract.occlusion_arrays(prepared.arrays, self.reason_baseline, self.spec)
            scores = _finite(await self.batcher.predict(grid))
            declined = scores[:n] >= self.decision_threshold
            pds, reasons = contract.reasons_from_scores(scores, n, self.spec, prepared.top_k, declined)
            _observe(pds)
            return pds, list(reasons)
        pds = _finite(await self.batcher.predict(prepared.arrays))
        _observe(pds)
        declined_rows = np.flatnonzero(pds >= self.decision_threshold)
        if self.reason_baseline is None or not len(declined_rows):
            return pds, None
        assert self.spec is not None
        subset = {k: v[declined_rows] for k, v in prepared.arrays.items()}
        grid = contract.occlusion_arrays(subset, self.reason_baseline, self.spec)
        scores = _finite(await self.batcher.predict(grid))
        every = np.ones(len(declined_rows), dtype=bool)
        _, found = contract.reasons_from_scores(scores, len(declined_rows), self.spec, prepared.top_k, every)
        out: list[list[dict[str, Any]] | None] = [None] * len(pds)
        for row, r in zip(declined_rows.tolist(), found, strict=True):
            out[row] = r
        return pds, out

    def v1_response(
        self, pds: np.ndarray, reasons: list[list[dict[str, Any]] | None] | None, key: str | None = None
    ) -> dict[str, Any]:
        """``{"predictions": [...]}`` (``key="explanations"`` for the ``:explain`` route)."""
        answers = [self._answer(float(p)) for p in pds]
        if reasons is not None:
            for answer, r in zip(answers, reasons, strict=True):
                if r is not None:
                    answer["reasons"] = r
        return {key or "predictions": answers}

    def v2_outputs(
        self, pds: np.ndarray, reasons: list[list[dict[str, Any]] | None] | None = None, top_k: int = 0
    ) -> list[tuple[str, str, list[int], list[Any]]]:
        """(name, datatype, shape, values) of the V2 outputs: the PD, the decision, the score, the
        grade (with a master scale) and [n, top_k] reason codes and statements (with a baseline)."""
        n = len(pds)
        answers = [self._answer(float(p)) for p in pds]
        out = [
            (contract.OUTPUT_KEY, contract.OUTPUT_DATATYPE, [n, 1], [a["pd"] for a in answers]),
            (
                contract.DECISION_OUTPUT,
                contract.CATEGORICAL_DATATYPE,
                [n, 1],
                [a["decision"] for a in answers],
            ),
            (contract.SCORE_OUTPUT, contract.OUTPUT_DATATYPE, [n, 1], [a["score"] for a in answers]),
        ]
        if self.scale is not None:
            out.append(
                (contract.GRADE_OUTPUT, contract.CATEGORICAL_DATATYPE, [n, 1], [a["grade"] for a in answers])
            )
        if self.reason_baseline is not None:
            k = top_k or contract.DEFAULT_TOP_REASONS
            codes, statements = contract.reason_tensors(reasons or [None] * n, k)
            out.append((contract.REASON_CODES_OUTPUT, contract.CATEGORICAL_DATATYPE, [n, k], codes))
            out.append((contract.REASONS_OUTPUT, contract.CATEGORICAL_DATATYPE, [n, k], statements))
        return out

    def v2_response(
        self, prepared: Prepared, pds: np.ndarray, reasons: list[list[dict[str, Any]] | None] | None = None
    ) -> dict[str, Any]:
        """The V2 JSON response (what kserve's InferResponse serialises to)."""
        return {
            "model_name": self.name,
            "model_version": None,
            "id": prepared.v2_request_id or "",
            "parameters": None,
            "outputs": [
                {"name": name, "shape": shape, "datatype": datatype, "parameters": None, "data": data}
                for name, datatype, shape, data in self.v2_outputs(pds, reasons, prepared.top_k)
            ],
        }

    # --- kserve.Model's steps (kserve's own routes) --------------------------------------------
    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Prepared:
        assert self.spec is not None
        try:
            if isinstance(payload, InferRequest):
                tensors = {t.name: (t.datatype, t.shape, _flat(t)) for t in payload.inputs}
                columns = contract.parse_tensors(tensors, self.spec, self.max_instances)
                reasons, top_k = contract.parse_options(
                    {"parameters": payload.parameters}, default_reasons=False
                )
                arrays = contract.columns_to_arrays(columns, self.spec)
                wanted = reasons and self.reason_baseline is not None
                return Prepared(arrays, payload.id or "", reasons=wanted, top_k=top_k)
            if isinstance(payload, bytes | bytearray):  # no JSON content type: still a JSON body
                try:
                    payload = json.loads(payload)
                except ValueError as e:
                    raise contract.RequestError(f"the body is not valid JSON: {e}") from e
            return self.prepare_v1(payload)
        except contract.RequestError as e:
            raise InvalidInput(str(e)) from e

    async def predict(
        self, prepared: Prepared, headers: dict[str, str] | None = None
    ) -> tuple[Prepared, np.ndarray, list[list[dict[str, Any]] | None] | None]:
        pds, reasons = await self.infer(prepared)
        return prepared, pds, reasons

    async def postprocess(
        self,
        result: tuple[Prepared, np.ndarray, list[list[dict[str, Any]] | None] | None],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        prepared, pds, reasons = result
        if prepared.v2_request_id is not None:
            outputs = [
                InferOutput(name=name, shape=shape, datatype=datatype, data=data)
                for name, datatype, shape, data in self.v2_outputs(pds, reasons, prepared.top_k)
            ]
            return InferResponse(
                response_id=prepared.v2_request_id, model_name=self.name, infer_outputs=outputs
            )
        return self.v1_response(pds, reasons)

    def _answer(self, pd: float) -> dict[str, Any]:
        answer = {
            "pd": pd,
            "decision": contract.decide(pd, self.decision_threshold),
            "score": round(self.scorecard.points(pd), 1),
        }
        if self.scale is not None:
            answer["grade"] = self.scale.grades(np.array([pd]))[0]
        return answer


def _finite(pds: np.ndarray) -> np.ndarray:
    """The model's PDs, refused (a server fault, never an answer) if any is NaN or infinite."""
    if not np.isfinite(pds).all():
        raise FloatingPointError(f"the model produced {int((~np.isfinite(pds)).sum())} non-finite PD(s)")
    return pds


def _observe(pds: np.ndarray) -> None:
    metrics.observe_many(metrics.PD, pds)


def _flat(tensor: Any) -> list[Any]:
    """A V2 input tensor's values as a flat list (JSON lists may arrive nested)."""
    data = tensor.data
    if isinstance(data, np.ndarray):
        return list(data.reshape(-1).tolist())
    flat: list[Any] = []
    for item in data:
        flat.extend(item if isinstance(item, list) else [item])
    return flat
