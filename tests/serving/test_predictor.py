"""The predictor in the serving environment (kserve 0.21, TF 2.21) on a model exported by TF 2.16."""

import asyncio
import json

import numpy as np
import pytest
import tensorflow as tf
from kserve.errors import InvalidInput

from tests.helpers import http
from tests.serving.conftest import MODEL_NAME


def run(coro):
    return asyncio.run(coro)


def predict_in_process(model, body):
    async def go():
        arrays = await model.preprocess(body)
        return await model.postprocess(await model.predict(arrays))

    return run(go())


def test_serving_env_is_the_newer_tensorflow():
    assert tf.__version__.startswith("2.21")


def test_tf216_export_served_by_tf221_matches_training_side(loaded_model, expected):
    out = predict_in_process(loaded_model, {"instances": expected["instances"]})
    pds = [p["pd"] for p in out["predictions"]]
    np.testing.assert_allclose(pds, expected["pd_savedmodel"], atol=1e-5)
    np.testing.assert_allclose(pds, expected["pd_keras"], atol=1e-5)


def test_bad_instance_is_invalid_input_naming_field(loaded_model, expected):
    bad = dict(expected["instances"][0], Amount="a lot")
    with pytest.raises(InvalidInput, match="instance 1, field 'Amount'"):
        predict_in_process(loaded_model, {"instances": [expected["instances"][0], bad]})


def test_v1_over_http_equals_in_process(server, loaded_model, expected):
    body = {"instances": expected["instances"]}
    status, raw = http("POST", f"{server}/v1/models/{MODEL_NAME}:predict", json.dumps(body).encode())
    assert status == 200, raw
    over_http = [p["pd"] for p in json.loads(raw)["predictions"]]
    in_process = [p["pd"] for p in predict_in_process(loaded_model, body)["predictions"]]
    np.testing.assert_allclose(over_http, in_process, atol=1e-6)


@pytest.mark.parametrize(
    "mutate, status, fragment",
    [
        (lambda i: {"instances": [dict(i, Age="old")]}, 400, "instance 0, field 'Age'"),
        (lambda i: {"instances": [dict(i, Salary=1.0)]}, 400, "field 'Salary'"),
        (lambda i: {"instances": [{k: v for k, v in i.items() if k != "Time"}]}, 400, "field 'Time'"),
        (lambda i: {"instances": []}, 400, "non-empty"),
        (lambda i: {"rows": [i]}, 400, "'instances'"),
    ],
)
def test_bad_requests_get_400_naming_the_problem_and_server_keeps_serving(
    server, expected, mutate, status, fragment
):
    body = mutate(dict(expected["instances"][0]))
    code, raw = http("POST", f"{server}/v1/models/{MODEL_NAME}:predict", json.dumps(body).encode())
    assert code == status and fragment in json.loads(raw)["error"]
    ok, _ = http(
        "POST",
        f"{server}/v1/models/{MODEL_NAME}:predict",
        json.dumps({"instances": expected["instances"][:1]}).encode(),
    )
    assert ok == 200


def test_malformed_json_is_400(server):
    code, _ = http("POST", f"{server}/v1/models/{MODEL_NAME}:predict", b"{not json")
    assert code == 400


def test_unknown_model_is_404_and_health_endpoints(server):
    assert http("POST", f"{server}/v1/models/nope:predict", b"{}")[0] == 404
    code, raw = http("GET", f"{server}/v1/models/{MODEL_NAME}")
    assert code == 200 and json.loads(raw)["ready"] is True
    assert http("GET", f"{server}/")[0] == 200


def _v2_body(instances, spec, skip=()):
    inputs = []
    for f in spec.model_features:
        if f.name in skip:
            continue
        values = [i.get(f.name) for i in instances]
        if f.is_numeric:
            values = [float("nan") if v is None else v for v in values]
        else:
            values = ["" if v is None else v for v in values]
        inputs.append(
            {
                "name": f.name,
                "shape": [len(values), 1],
                "datatype": "FP32" if f.is_numeric else "BYTES",
                "data": values,
            }
        )
    return {"id": "req-1", "inputs": inputs}


def test_v2_over_http_equals_v1(server, loaded_model, expected):
    complete = [i for i in expected["instances"] if None not in i.values()][:10]  # JSON has no NaN
    body = _v2_body(complete, loaded_model.spec)
    status, raw = http("POST", f"{server}/v2/models/{MODEL_NAME}/infer", json.dumps(body).encode())
    assert status == 200, raw
    out = json.loads(raw)
    assert out["id"] == "req-1" and out["outputs"][0]["name"] == "pd"
    answers = predict_in_process(loaded_model, {"instances": complete})["predictions"]
    np.testing.assert_allclose(out["outputs"][0]["data"], [a["pd"] for a in answers], atol=1e-6)
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["decision"]["datatype"] == "BYTES" and by_name["decision"]["shape"] == [len(complete), 1]
    assert by_name["decision"]["data"] == [a["decision"] for a in answers]
    assert by_name["score"]["data"] == pytest.approx([a["score"] for a in answers], abs=0.11)
    assert by_name["grade"]["data"] == [a["grade"] for a in answers]
    # reasons: V1 gives every instance its reasons by default, V2 the declines; the same reasons
    k = by_name["reasons"]["shape"][1]
    assert by_name["reasons"]["shape"] == by_name["reason_codes"]["shape"] == [len(complete), k]
    for i, a in enumerate(answers):
        codes = by_name["reason_codes"]["data"][i * k : (i + 1) * k]
        statements = by_name["reasons"]["data"][i * k : (i + 1) * k]
        if a["decision"] == "decline":
            assert [c for c in codes if c] == [r["feature"] for r in a["reasons"]][:k]
            assert [t for t in statements if t] == [r["statement"] for r in a["reasons"]][:k]
        else:
            assert codes == [""] * k and statements == [""] * k


def test_v2_nullable_inputs_may_be_omitted(server, loaded_model, expected):
    nullable = {f.name for f in loaded_model.spec.model_features if f.nullable}
    body = _v2_body(expected["instances"][:3], loaded_model.spec, skip=nullable)
    status, raw = http("POST", f"{server}/v2/models/{MODEL_NAME}/infer", json.dumps(body).encode())
    assert status == 200, raw
    assert len(json.loads(raw)["outputs"][0]["data"]) == 3


def test_v2_bad_tensor_is_400_naming_it(server, loaded_model, expected):
    body = _v2_body(expected["instances"][:2], loaded_model.spec)
    body["inputs"][0]["datatype"] = "BYTES" if body["inputs"][0]["datatype"] == "FP32" else "FP32"
    status, raw = http("POST", f"{server}/v2/models/{MODEL_NAME}/infer", json.dumps(body).encode())
    assert status == 400 and body["inputs"][0]["name"] in json.loads(raw)["error"]
    assert http("GET", f"{server}/v2/models/{MODEL_NAME}/ready")[0] == 200


def test_v2_metadata_lists_every_input(server, loaded_model):
    status, raw = http("GET", f"{server}/v2/models/{MODEL_NAME}")
    assert status == 200
    meta = json.loads(raw)
    assert [i["name"] for i in meta["inputs"]] == [f.name for f in loaded_model.spec.model_features]
    assert [o["name"] for o in meta["outputs"]] == [
        "pd",
        "decision",
        "score",
        "grade",
        "reason_codes",
        "reasons",
    ]


def _v1(server, body):
    return http("POST", f"{server}/v1/models/{MODEL_NAME}:predict", json.dumps(body).encode())


def test_reason_codes_are_stable_positive_ranked_and_never_protected(server, loaded_model, expected):
    body = {"instances": expected["instances"][:20], "parameters": {"top_k": 3}}
    status, raw = _v1(server, body)
    assert status == 200, raw
    first = json.loads(raw)["predictions"]
    assert _v1(server, body)[1] == raw  # same applicant, same reasons
    allowed = {f.name for f in loaded_model.spec.model_features if not f.protected}
    assert any(p["reasons"] for p in first)
    for p in first:
        contributions = [r["contribution"] for r in p["reasons"] if r.get("basis") != "largest_effect"]
        assert len(p["reasons"]) <= 3 and all(c > 0 for c in contributions)
        assert contributions == sorted(contributions, reverse=True)
        assert {r["feature"] for r in p["reasons"]} <= allowed
    # the PD is the same with and without reasons
    _, plain = _v1(server, {"instances": expected["instances"][:20], "parameters": {"reasons": False}})
    plain_preds = json.loads(plain)["predictions"]
    # without reasons asked for, only the declines carry theirs (an adverse action states them)
    assert all(("reasons" in p) == (p["decision"] == "decline") for p in plain_preds)
    np.testing.assert_allclose([p["pd"] for p in plain_preds], [p["pd"] for p in first], atol=1e-6)


def test_a_reason_is_what_moving_that_feature_to_the_baseline_changes(loaded_model, expected):
    instance = expected["instances"][0]
    out = predict_in_process(loaded_model, {"instances": [instance]})["predictions"][0]
    for reason in out["reasons"]:
        moved = dict(instance, **{reason["feature"]: loaded_model.reason_baseline[reason["feature"]]})
        pd_moved = predict_in_process(loaded_model, {"instances": [moved], "parameters": {"reasons": False}})
        assert out["pd"] - pd_moved["predictions"][0]["pd"] == pytest.approx(reason["contribution"], abs=1e-5)


def test_every_decline_has_a_readable_reason_in_both_protocols(server, loaded_model, expected):
    """Sweep every fixture instance (with a threshold at the median PD, so half decline) through
    V1 without reasons asked for, V1 with them, and V2: each decline states >= 1 reason, drawn
    from the scored, non-protected inputs, in words (the feature's reason statement)."""
    from credit_risk.serving.model import CreditRiskModel

    model = CreditRiskModel(MODEL_NAME, loaded_model.model_dir, decision_threshold=0.5)
    model.load()
    pds = [a["pd"] for a in predict_in_process(model, {"instances": expected["instances"]})["predictions"]]
    model.decision_threshold = float(np.median(pds))
    statement = {f.name: f.reason_statement for f in model.spec.model_features if not f.protected}
    complete = [i for i in expected["instances"] if None not in i.values()]
    declines = 0
    for reasons in (False, True):
        body = {"instances": expected["instances"], "parameters": {"reasons": reasons}}
        for p in predict_in_process(model, body)["predictions"]:
            if p["decision"] == "decline":
                declines += 1
                assert p["reasons"], p
                assert all(statement[r["feature"]] == r["statement"] and r["statement"] for r in p["reasons"])
    prepared = model.prepare_v2(_v2_body(complete, model.spec))
    pds_v2, reasons_v2 = run(model.infer(prepared))
    out = {o["name"]: o for o in model.v2_response(prepared, pds_v2, reasons_v2)["outputs"]}
    k = out["reasons"]["shape"][1]
    for i, decision in enumerate(out["decision"]["data"]):
        if decision == "decline":
            declines += 1
            assert out["reasons"]["data"][i * k] in statement.values()
    assert declines >= len(expected["instances"])  # about half of 2 x 40 V1 rows plus V2's


def test_bad_parameters_are_400(server, expected):
    status, raw = _v1(server, {"instances": expected["instances"][:1], "parameters": {"top_k": 99}})
    assert status == 400 and "top_k" in json.loads(raw)["error"]


def test_answers_carry_decision_and_score_consistent_with_pd(server, expected):
    status, raw = _v1(server, {"instances": expected["instances"], "parameters": {"reasons": False}})
    assert status == 200
    preds = json.loads(raw)["predictions"]
    for p in preds:
        assert p["decision"] == ("decline" if p["pd"] >= 0.5 else "approve")
    by_pd = sorted(preds, key=lambda p: p["pd"])
    assert [p["score"] for p in by_pd] == sorted((p["score"] for p in by_pd), reverse=True)
    assert {p["decision"] for p in preds} == {"approve", "decline"}
