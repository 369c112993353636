"""How raw feature values become model input arrays - shared by training, evaluation and serving.

numpy only (no TensorFlow, no kserve), so the same rules run in both environments:
a missing numeric is NaN (the model adds a missing-indicator and imputes inside the graph); a missing
categorical is the empty string, which the model's vocabulary maps to its out-of-vocabulary bucket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from credit_risk.spec.feature_spec import Feature, FeatureSpec

Array = np.ndarray[Any, np.dtype[Any]]

MISSING_CATEGORY = ""
SIGNATURE_NAME = "serving_default"
OUTPUT_KEY = "pd"
SPEC_FILE = "feature_spec.yaml"
MODEL_INFO_FILE = "model_info.json"
REASON_BASELINE_KEY = "reason_baseline"  # in model_info.json: the applicant reasons are measured against
MASTER_SCALE_KEY = "master_scale"  # in model_info.json: the rating scale (rating.MasterScale.to_dict)
DEFAULT_TOP_REASONS = 4


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
    """A pandas DataFrame with (at least) the model-input columns -> named input arrays, as
    ``columns_to_arrays`` makes them, column-wise (no per-value Python loop)."""
    out = {}
    for f in spec.model_features:
        col = frame[f.name]
        if f.is_numeric:
            out[f.name] = col.to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)
        else:
            text = col.astype(object).where(col.notna(), MISSING_CATEGORY).astype(str)
            out[f.name] = text.to_numpy(dtype=object).reshape(-1, 1)
    return out


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


FLOAT32_MAX = float(np.finfo(np.float32).max)


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
        if abs(value) > FLOAT32_MAX:  # the model computes in float32: beyond this it is inf, the PD NaN
            raise RequestError(
                f"{value!r} is outside the float32 range (|x| <= {FLOAT32_MAX:.4g})", index, feature.name
            )
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


def instance_json_schema(spec: FeatureSpec) -> dict[str, Any]:
    """JSON Schema of one V1 instance, exactly as ``parse_instances`` checks it (for /openapi.json)."""
    properties: dict[str, Any] = {}
    for f in spec.model_features:
        kind: dict[str, Any] = {"type": "number"} if f.is_numeric else {"type": "string"}
        if f.is_numeric and f.min is not None:
            kind["minimum"] = f.min
        if f.is_numeric and f.max is not None:
            kind["maximum"] = f.max
        properties[f.name] = {"anyOf": [kind, {"type": "null"}]} if f.nullable else kind
    for name in spec.feature_names:
        properties.setdefault(name, {})  # not a model input: accepted and ignored
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in spec.model_features if not f.nullable],
        "additionalProperties": False,
    }


# --- the request contract (V2 / Open Inference Protocol: one tensor per feature) -----------------
NUMERIC_DATATYPES = ("FP32", "FP64", "INT32", "INT64")
CATEGORICAL_DATATYPE = "BYTES"
OUTPUT_DATATYPE = "FP32"
DECISION_OUTPUT, SCORE_OUTPUT = "decision", "score"  # V2 outputs beside the PD, one value per instance
GRADE_OUTPUT = "grade"  # the rating grade (G1 = lowest risk), when the model has a master scale
# [n, top_k] BYTES: the reasons' feature names and adverse-action statements, "" padded; every
# declined instance has at least one, approved ones only when parameters.reasons is true
REASON_CODES_OUTPUT, REASONS_OUTPUT = "reason_codes", "reasons"


def input_metadata(spec: FeatureSpec) -> list[dict[str, Any]]:
    """V2 model metadata for the inputs: one [-1, 1] tensor per model input, FP32 or BYTES."""
    return [
        {"name": f.name, "datatype": "FP32" if f.is_numeric else CATEGORICAL_DATATYPE, "shape": [-1, 1]}
        for f in spec.model_features
    ]


def output_metadata(graded: bool = False, explained: bool = False) -> list[dict[str, Any]]:
    """V2 model metadata for the outputs; ``graded``: the model has a master scale; ``explained``:
    it has a reason baseline (the reason tensors' second dimension is the request's ``top_k``)."""
    out = [
        {"name": OUTPUT_KEY, "datatype": OUTPUT_DATATYPE, "shape": [-1, 1]},
        {"name": DECISION_OUTPUT, "datatype": CATEGORICAL_DATATYPE, "shape": [-1, 1]},
        {"name": SCORE_OUTPUT, "datatype": OUTPUT_DATATYPE, "shape": [-1, 1]},
    ]
    if graded:
        out.append({"name": GRADE_OUTPUT, "datatype": CATEGORICAL_DATATYPE, "shape": [-1, 1]})
    if explained:
        out += [
            {"name": REASON_CODES_OUTPUT, "datatype": CATEGORICAL_DATATYPE, "shape": [-1, -1]},
            {"name": REASONS_OUTPUT, "datatype": CATEGORICAL_DATATYPE, "shape": [-1, -1]},
        ]
    return out


def parse_tensors(
    tensors: Mapping[str, tuple[str, Sequence[int], Sequence[Any]]],
    spec: FeatureSpec,
    max_instances: int = DEFAULT_MAX_INSTANCES,
) -> dict[str, list[Any]]:
    """Validate V2 input tensors ``name -> (datatype, shape, flat data)`` -> column-major values.

    Every tensor holds one value per instance (shape [n] or [n, 1]); a nullable feature's tensor may
    be left out (all null); spec features that are not model inputs are accepted and ignored.
    """
    inputs = spec.model_features
    known = set(spec.feature_names)
    unknown = sorted(set(tensors) - known)
    if unknown:
        raise RequestError(
            f"unknown input tensor(s) {unknown}; expected {[f.name for f in inputs]}", field=unknown[0]
        )
    sizes = {}
    for name, (_, raw_shape, data) in tensors.items():
        shape = list(raw_shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] != len(data):
            raise RequestError(f"shape {shape} does not hold {len(data)} values as [n] or [n, 1]", field=name)
        sizes[name] = len(data)
    counts = {sizes[f.name] for f in inputs if f.name in sizes}
    if len(counts) > 1:
        raise RequestError(f"input tensors disagree on the number of instances: {sizes}")
    n = counts.pop() if counts else 0
    if n == 0:
        raise RequestError("the request holds no instances")
    if n > max_instances:
        raise RequestError(f"batch of {n} instances exceeds the limit of {max_instances}")
    columns: dict[str, list[Any]] = {}
    for f in inputs:
        if f.name not in tensors:
            if not f.nullable:
                raise RequestError("is a required input tensor but is missing", field=f.name)
            columns[f.name] = [None] * n
            continue
        datatype, _, data = tensors[f.name]
        wanted = NUMERIC_DATATYPES if f.is_numeric else (CATEGORICAL_DATATYPE,)
        if datatype not in wanted:
            raise RequestError(f"datatype {datatype} is not one of {list(wanted)}", field=f.name)
        values = [v.decode() if isinstance(v, bytes) else v for v in data]
        columns[f.name] = [_check_value(f, v, i) for i, v in enumerate(values)]
    return columns


def parse_v2_body(payload: Any) -> tuple[dict[str, tuple[str, list[int], list[Any]]], str]:
    """A V2 (Open Inference Protocol) JSON body -> (``parse_tensors`` input, request id).

    Checks the envelope: ``inputs`` is a list of objects each with a string ``name``, a string
    ``datatype``, an integer list ``shape`` and a ``data`` list (nested lists are flattened).
    """
    if not isinstance(payload, dict):
        raise RequestError(f"the body must be a JSON object with 'inputs', got {type(payload).__name__}")
    request_id = payload.get("id", "")
    if not isinstance(request_id, str):
        raise RequestError(f"'id' must be a string, got {type(request_id).__name__}")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    tensors: dict[str, tuple[str, list[int], list[Any]]] = {}
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise RequestError(f"inputs[{i}] must be an object, got {type(tensor).__name__}")
        name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
        if not isinstance(name, str) or not name:
            raise RequestError(f"inputs[{i}].name must be a non-empty string, got {_describe(name)}")
        if not isinstance(datatype, str):
            raise RequestError(f"'datatype' must be a string, got {_describe(datatype)}", field=name)
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape
        ):
            raise RequestError(f"'shape' must be a list of integers, got {_describe(shape)}", field=name)
        if not isinstance(data, list):
            raise RequestError(f"'data' must be a list, got {type(data).__name__}", field=name)
        if name in tensors:
            raise RequestError("input tensor given twice", field=name)
        flat: list[Any] = []
        for item in data:
            flat.extend(item if isinstance(item, list) else [item])
        tensors[name] = (datatype, shape, flat)
    return tensors, request_id


# --- reason codes (adverse-action style) ----------------------------------------------------------
def reason_features(spec: FeatureSpec) -> list[Feature]:
    """Model inputs that may be given as reasons: never a protected attribute."""
    return [f for f in spec.model_features if not f.protected]


def occlusion_arrays(
    arrays: Mapping[str, Array], baseline: Mapping[str, Any], spec: FeatureSpec
) -> dict[str, Array]:
    """The n applicants, then for each reason feature the n applicants with that one feature set to
    the baseline applicant's value: n * (1 + features) rows for one model call.

    Built per column without per-row Python: each input is tiled 1 + features times and only the
    block where that input is occluded is overwritten with the baseline value."""
    features = reason_features(spec)
    position = {g.name: j for j, g in enumerate(features)}
    out = {}
    for f in spec.model_features:
        column = arrays[f.name]
        n = len(column)
        grid = np.tile(column, (1 + len(features), 1))
        j = position.get(f.name)
        if j is not None:
            value = baseline[f.name]
            typed = numeric_array([value]) if f.is_numeric else categorical_array([value])
            grid[(1 + j) * n : (2 + j) * n] = typed[0, 0]
        out[f.name] = grid
    return out


def reasons_from_scores(
    pds: Array, n: int, spec: FeatureSpec, top_k: int, at_least_one: Array | None = None
) -> tuple[Array, list[list[dict[str, Any]]]]:
    """Split an ``occlusion_arrays`` result: (the applicants' PDs, their top-k reasons).

    A feature's contribution is PD(applicant) - PD(applicant with that feature at the baseline);
    reasons are the features with the largest positive contributions (pushing the PD up), ties
    broken by spec order so the same applicant always gets the same reasons. Each reason carries
    the feature's adverse-action ``statement``. Rows flagged in ``at_least_one`` (declines: an
    adverse action must state a reason) whose every contribution rounds to <= 0 - no single feature
    pushes them above the baseline, only features together - get the top-ranked feature anyway,
    with its (non-positive) contribution and ``"basis": "largest_effect"``.
    """
    features = reason_features(spec)
    grid = np.asarray(pds, dtype=np.float64).reshape(1 + len(features), n)
    applicant = grid[0]
    contributions = applicant[None, :] - grid[1:]
    # a stable sort of -contribution keeps spec order among ties: the order (-c, j) gives
    order = np.argsort(-contributions, axis=0, kind="stable")[:top_k]
    reasons = []
    for i in range(n):
        # rounded first: a push too small to show (0.0 at 6 decimals) is not a reason
        rounded = [(j, round(float(contributions[j, i]), 6)) for j in order[:, i].tolist()]
        mine = [_reason(features[j], c) for j, c in rounded if c > 0]
        if not mine and at_least_one is not None and at_least_one[i] and rounded:
            mine = [{**_reason(features[rounded[0][0]], rounded[0][1]), "basis": "largest_effect"}]
        reasons.append(mine)
    return applicant, reasons


def _reason(feature: Feature, contribution: float) -> dict[str, Any]:
    return {"feature": feature.name, "contribution": contribution, "statement": feature.reason_statement}


def reason_tensors(reasons: Sequence[list[dict[str, Any]] | None], top_k: int) -> tuple[list[str], list[str]]:
    """Row-major [n, top_k] contents of the V2 reason tensors (codes, statements), "" padded."""
    codes, statements = [], []
    for given in reasons:
        row = (given or [])[:top_k]
        pad = [""] * (top_k - len(row))
        codes += [r["feature"] for r in row] + pad
        statements += [r["statement"] for r in row] + pad
    return codes, statements


def parse_options(payload: Any, default_reasons: bool = True) -> tuple[bool, int]:
    """Request options from a body's ``parameters``: (reasons wanted for every instance, how many).
    V1 defaults to reasons for every instance; V2 to reasons for declines only."""
    params = payload.get("parameters") if isinstance(payload, dict) else None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RequestError(f"'parameters' must be an object, got {type(params).__name__}")
    reasons = params.get("reasons", default_reasons)
    top_k = params.get("top_k", DEFAULT_TOP_REASONS)
    if not isinstance(reasons, bool):
        raise RequestError(f"parameters.reasons must be true or false, got {reasons!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 20:
        raise RequestError(f"parameters.top_k must be an integer from 1 to 20, got {top_k!r}")
    return reasons, top_k


# --- decision and scorecard points ----------------------------------------------------------------
APPROVE, DECLINE = "approve", "decline"
DEFAULT_OPERATING_THRESHOLD = 0.5  # decline at PD >= this; the gate's fairness checks use the same


@dataclass(frozen=True)
class Scorecard:
    """Points on the usual log-odds scale: ``base`` points at good:bad odds ``base_odds``, and every
    ``pdo`` points double the odds. Higher score = lower risk."""

    base: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def points(self, pd: float) -> float:
        pd = min(max(pd, 1e-9), 1 - 1e-9)
        factor = self.pdo / np.log(2.0)
        return float(self.base + factor * (np.log((1 - pd) / pd) - np.log(self.base_odds)))


def decide(pd: float, threshold: float) -> str:
    """The credit decision at the operating threshold: decline when PD >= threshold."""
    return DECLINE if pd >= threshold else APPROVE
