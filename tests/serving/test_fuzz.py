"""Fuzz the running predictor over HTTP with hypothesis-generated bodies: arbitrary JSON, broken
JSON, and near-valid V1/V2 requests with one part mutated. Whatever comes in, the answer is 200 or a
4xx with a JSON error - never a 5xx - and the server stays healthy. Bounded: a fixed number of
examples, derandomized so CI runs the same cases."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import http
from tests.serving.conftest import MODEL_NAME

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _post(server, path, body: bytes):
    status, raw = http("POST", f"{server}{path}", body)
    assert status < 500, (status, body[:300], raw[:300])
    if status != 200:
        assert "error" in json.loads(raw), raw[:300]
    return status


V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"


@FUZZ
@given(body=json_values, path=st.sampled_from([V1, V2]))
def test_arbitrary_json_never_breaks_the_server(server, body, path):
    _post(server, path, json.dumps(body).encode())


@FUZZ
@given(raw=st.binary(max_size=200), path=st.sampled_from([V1, V2]))
def test_arbitrary_bytes_never_break_the_server(server, raw, path):
    _post(server, path, raw)


@FUZZ
@given(data=st.data())
def test_near_valid_v1_requests(server, expected, data):
    instance = dict(data.draw(st.sampled_from(expected["instances"][:10])))
    key = data.draw(st.sampled_from(sorted(instance)))
    action = data.draw(st.sampled_from(["drop", "replace", "add"]))
    if action == "drop":
        del instance[key]
    elif action == "replace":
        instance[key] = data.draw(json_values)
    else:
        instance[data.draw(st.text(max_size=10))] = data.draw(scalars)
    body = {"instances": [instance]}
    if data.draw(st.booleans()):
        body["parameters"] = data.draw(json_values)
    _post(server, V1, json.dumps(body).encode())


@FUZZ
@given(data=st.data())
def test_near_valid_v2_requests(server, expected, data):
    rows = expected["instances"][:3]
    names = sorted(rows[0])
    tensors = [
        {
            "name": n,
            "datatype": "BYTES" if isinstance(rows[0][n], str) else "FP32",
            "shape": [3, 1],
            "data": [r[n] for r in rows],
        }
        for n in names
    ]
    target = data.draw(st.sampled_from(tensors))
    part = data.draw(st.sampled_from(["name", "datatype", "shape", "data", "drop"]))
    if part == "drop":
        tensors.remove(target)
    else:
        target[part] = data.draw(json_values)
    _post(server, V2, json.dumps({"inputs": tensors}).encode())


def test_server_is_healthy_after_the_fuzzing(server, expected):
    assert http("GET", f"{server}/v2/health/ready")[0] == 200
    status, raw = http("POST", f"{server}{V1}", json.dumps({"instances": expected["instances"][:2]}).encode())
    assert status == 200 and len(json.loads(raw)["predictions"]) == 2
