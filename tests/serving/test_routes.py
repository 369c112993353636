"""The predictor's surface: only the routes a credit endpoint serves, one readiness state that every
health route and predict agree on, and no 5xx for any client input - a schema-driven fuzzer
(schemathesis, from the server's own /openapi.json) plus a sweep of undocumented paths and methods,
all against the real server process on 127.0.0.1, bounded in count and time."""

import asyncio
import http.client as httpclient
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from credit_risk.serving.fastpath import ROUTES, PredictorFront

from tests.helpers import http
from tests.serving.conftest import MODEL_NAME

pytestmark = pytest.mark.timeout(900)
M = MODEL_NAME
SERVED = {(t.format(m=M), method) for t, method in ROUTES}
READINESS = [f"/v1/models/{M}", f"/v2/models/{M}/ready", "/v2/health/ready"]


def _counted(base: str) -> float:
    """Every request the server has answered: prediction routes plus every other route."""
    text = http("GET", f"{base}/metrics")[1].decode()
    found = re.findall(r"^credit_risk_(?:requests|http_responses)_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


def _body(expected, **parameters):
    return json.dumps({"instances": expected["instances"][:2], "parameters": parameters}).encode()


def test_openapi_documents_exactly_the_served_routes(server):
    status, raw = http("GET", f"{server}/openapi.json")
    doc = json.loads(raw)
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    assert status == 200 and documented == SERVED
    assert not any("repository" in p or "versions" in p for p, _ in documented)
    params = [
        p["name"] for ops in doc["paths"].values() for op in ops.values() for p in op.get("parameters", [])
    ]
    assert "model_version" not in params


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v2/repository/models/{M}/unload"),
        ("POST", f"/v2/repository/models/{M}/load"),
        ("POST", "/v2/repository/index"),
        ("DELETE", f"/v1/models/{M}"),
        ("PUT", f"/v2/models/{M}"),
        ("POST", f"/v1/models/{M}"),
        ("POST", f"/v2/models/{M}/versions/1/infer"),
        ("GET", f"/v2/models/{M}/versions/1"),
        ("GET", f"/v2/models/{M}/versions/1/ready"),
        ("GET", "/v1/models"),
        ("GET", "/docs"),
        ("POST", "/openai/v1/completions"),
        ("POST", "/v1/models/other:predict"),
        ("GET", "/v2/models/other/ready"),
    ],
)
def test_mutating_unknown_and_undocumented_routes_are_404_or_405_and_the_model_stays_loaded(
    server, expected, method, path
):
    status, raw = http(method, server + path, b"{}")
    assert status in (404, 405), (status, raw[:200])
    assert "error" in json.loads(raw)
    for ready in READINESS:
        assert http("GET", server + ready)[0] == 200, ready
    status, raw = http("POST", f"{server}/v1/models/{M}:predict", _body(expected))
    assert status == 200 and len(json.loads(raw)["predictions"]) == 2


def test_a_405_names_the_allowed_methods(server):
    conn = httpclient.HTTPConnection(urlparse(server).netloc, timeout=10)
    conn.request("DELETE", f"/v1/models/{M}:predict")
    resp = conn.getresponse()
    assert resp.status == 405 and resp.getheader("allow") == "POST"
    assert "DELETE is not allowed" in json.loads(resp.read())["error"]


def test_explain_is_predict_with_reasons_whatever_the_parameters_say(server, expected):
    status, raw = http("POST", f"{server}/v1/models/{M}:explain", _body(expected, reasons=False))
    explained = json.loads(raw)["explanations"]
    status_p, raw_p = http("POST", f"{server}/v1/models/{M}:predict", _body(expected))
    predicted = json.loads(raw_p)["predictions"]
    assert status == status_p == 200
    assert explained == predicted and all("reasons" in e for e in explained)


class _Asgi:
    """Calls a PredictorFront as uvicorn would, in-process."""

    def __init__(self, front):
        self.front = front

    def __call__(self, method, path, body=b""):
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "headers": []}
        asyncio.run(self.front(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        return start["status"], json.loads(
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        )


@pytest.mark.parametrize("state", ["loading", "ready", "draining"])
def test_liveness_readiness_model_ready_and_predict_agree_in_every_state(loaded_model, expected, state):
    async def no_kserve(scope, receive, send):
        raise AssertionError("health and predict never reach kserve")

    front = PredictorFront(no_kserve, loaded_model)
    call = _Asgi(front)
    try:
        loaded_model.ready = state != "loading"
        front.state.draining = state == "draining"
        ok = state == "ready"
        assert call("GET", "/") == (200, {"status": "alive", "live": True, "state": state})
        assert call("GET", "/v2/health/live")[0] == 200
        for path in READINESS:
            status, answer = call("GET", path)
            assert (status, answer["ready"], answer["state"]) == ((200 if ok else 503), ok, state), path
        status, answer = call("POST", f"/v1/models/{M}:predict", _body(expected))
        assert status == (200 if ok else 503), answer
        if not ok:
            assert answer == {"error": f"model {M} is not ready ({state})"}
        assert call("POST", f"/v2/repository/models/{M}/unload")[0] == 404
    finally:
        loaded_model.ready = True


def test_sigterm_drains_and_the_server_exits_within_30_s(model_dir, expected, tmp_path):
    import signal
    import time

    from tests.serving.conftest import running_server

    with running_server(tmp_path / "drain.log", "--model_dir", str(model_dir)) as (base, proc):
        assert http("POST", f"{base}/v1/models/{M}:predict", _body(expected))[0] == 200
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn finishes the requests in flight, then re-raises the signal it caught: -15 is a clean stop
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        assert time.monotonic() - start < 30
    log = (tmp_path / "drain.log").read_text()
    assert "draining (signal 15)" in log and "Traceback" not in log


UNDOCUMENTED = [
    f"/v2/repository/models/{M}/unload",
    f"/v2/repository/models/{M}/load",
    "/v2/repository/index",
    f"/v2/models/{M}/versions/1/infer",
    f"/v2/models/{M}/versions/0/ready",
    f"/v2/models/{M}/generate",
    f"/v1/models/{M}:predictx",
    f"/v1/models/{M}/",
    "/v1/models",
    "/v2/models",
    "/v2/models/other/infer",
    "/v1/models/other:explain",
    "/docs",
    "/redoc",
    "/openai/v1/chat/completions",
    "/v1/completions",
    "/metrics/",
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e",
    "/" + "a" * 4000,
    "/v2/models/%C3%A9%C3%A8/ready",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
BODIES = [
    b"",
    b"{}",
    b"[]",
    b"null",
    b'{"instances": [{}]}',
    b'{"inputs": "x"}',
    b'{"name": "credit-risk", "parameters": {"unload_dependents": true}}',
    b"\xff\xfe not json",
    b"{" * 500,
    b'{"instances": ' + b"[" * 200 + b"]" * 200 + b"}",
]
QUERIES = ["?model_version=1", "?model_version=", "?version=2&x=%00", "?" + "q=1&" * 200]


def test_schemathesis_and_an_undocumented_sweep_find_no_server_error(server, expected, tmp_path):
    before = _counted(server)
    cli = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(cli), "run", f"{server}/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", "700",
        "--workers", "1",
        "--seed", "20261202",
        "--generation-database", "none",
        "--request-timeout", "10",
        "--report", "junit", "--report-junit-path", str(tmp_path / "schemathesis.xml"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=480, check=False)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, tail
    cases = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
    assert cases and cases.group(1) == cases.group(2), tail
    fuzzed = _counted(server) - before

    conn = httpclient.HTTPConnection(urlparse(server).netloc, timeout=10)
    swept = 0
    for path in UNDOCUMENTED:
        for method in METHODS:
            for body in BODIES if method in ("POST", "PUT", "PATCH") else [b""]:
                conn.request(method, path, body=body or None, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status in (404, 405), (method, path[:80], resp.status)
                swept += 1
    doc = json.loads(http("GET", f"{server}/openapi.json")[1])
    examples = {  # the documented example body of each POST route: the model's baseline applicant
        path: json.dumps(ops["post"]["requestBody"]["content"]["application/json"]["example"]).encode()
        for path, ops in doc["paths"].items()
        if "post" in ops
    }
    for path, method in sorted(SERVED):  # a model_version (or any) query is ignored, never a 5xx
        for query in QUERIES:
            body = examples[path] if method == "POST" else None
            conn.request(method, path + query, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, (method, path, query[:40], resp.status)
            swept += 1
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):  # the served paths, other methods
        for path, _ in sorted(SERVED):
            conn.request(method, path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 405, (method, path, resp.status)
            swept += 1
    conn.close()
    total = _counted(server) - before
    assert swept >= 800 and total >= 3000, f"schemathesis {fuzzed:.0f} + sweep {swept} = {total:.0f} requests"
    # still serving, still ready, same answers
    for ready in READINESS:
        assert http("GET", server + ready)[0] == 200, ready
    status, raw = http("POST", f"{server}/v1/models/{M}:predict", _body(expected, reasons=False))
    assert status == 200
    got = [p["pd"] for p in json.loads(raw)["predictions"]]
    assert got == pytest.approx(expected["pd_savedmodel"][:2], abs=1e-5)
