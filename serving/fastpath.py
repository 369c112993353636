"""The predictor's HTTP front: the routes it serves, body limits, the prediction fast path,
readiness, metrics, log policy.

An ASGI layer in front of kserve's FastAPI app. It
  * serves only the routes a credit endpoint needs (``ROUTES`` below) and answers every other
    path 404 and every other method 405 itself: kserve's model-repository extension
    (``/v2/repository/models/<m>/load|unload``, which any client could use to unload the model and
    make the pod unready), versioned model paths and other models' paths never reach kserve;
  * answers liveness, readiness and model-ready from one state (``FrontState``: loading, ready,
    draining after SIGTERM), and predict agrees with it (503 while not ready);
  * refuses a body over ``max_body_bytes`` with 413 before reading it (kserve has no limit: a 50 MB
    body blocks a worker for seconds - docs/stack.md);
  * answers V1 ``:predict`` / ``:explain`` and V2 ``/infer`` itself: orjson in, the model's own
    prepare -> micro-batched infer -> response steps, orjson out. This skips kserve's generic
    request objects and per-request middleware (benchmarks/serving_benchmark.py measures both);
  * serves ``/metrics`` summed over all worker processes (serving/metrics.py) and an
    ``/openapi.json`` that documents exactly the routes served;
  * logs each client error as protocol, status and the instance/field it names - never the message,
    which may quote a submitted value (applicant data is personal data) - unless ``log_values``.
Only model metadata (``GET /v2/models/<ours>``: inputs and outputs) goes on to kserve's app.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from credit_risk.serving import metrics

from credit_risk import __version__
from credit_risk.spec import contract

log = logging.getLogger("credit_risk.serving.requests")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # ~10,000 V1 instances fit in well under 8 MB
_JSON = [(b"content-type", b"application/json")]


class BodyTooLargeError(Exception):
    pass


class FrontState:
    """The one source of truth for readiness: loading until the model reports ready, ready, then
    draining from SIGTERM until the process exits. Every health route and predict read it."""

    def __init__(self, model: Any):
        self.model = model
        self.draining = False

    @property
    def name(self) -> str:
        if self.draining:
            return "draining"
        return "ready" if self.model.ready else "loading"

    @property
    def ready(self) -> bool:
        return self.name == "ready"


# (path template, method) -> handler name; {m} is the served model's name. Nothing else is served.
ROUTES: dict[tuple[str, str], str] = {
    ("/", "GET"): "live",
    ("/v2/health/live", "GET"): "live",
    ("/v2/health/ready", "GET"): "ready",
    ("/v1/models/{m}", "GET"): "model_ready_v1",
    ("/v2/models/{m}/ready", "GET"): "model_ready_v2",
    ("/v1/models/{m}:predict", "POST"): "v1",
    ("/v1/models/{m}:explain", "POST"): "explain",
    ("/v2/models/{m}/infer", "POST"): "v2",
    ("/v2", "GET"): "server_metadata",  # ours: kserve's lists the repository extension we turn off
    ("/v2/models/{m}", "GET"): "kserve",  # model metadata: inputs and outputs
    ("/metrics", "GET"): "metrics",
    ("/openapi.json", "GET"): "openapi",
}
_MODEL_PATH = re.compile(r"^/v[12]/models/([^/:]+)")


class PredictorFront:
    def __init__(
        self,
        app: ASGIApp,
        model: Any,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log_values: bool = False,
        openapi: Callable[[], dict[str, Any]] | None = None,
    ):
        self.app = app
        self.model = model
        self.state = FrontState(model)
        self.max_body_bytes = max_body_bytes
        self.log_values = log_values
        self._openapi_source = openapi
        self._openapi: bytes | None = None
        self._routes: dict[str, dict[str, str]] = {}
        for (template, method), handler in ROUTES.items():
            self._routes.setdefault(template.format(m=model.name), {})[method] = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await self._error(
                send, 413, f"body of {length} bytes exceeds the limit of {self.max_body_bytes}", "-"
            )
            return
        path, method = scope["path"], scope["method"]
        methods = self._routes.get(path)
        if methods is None:
            metrics.observe_response("unrouted", 404)
            await self._not_found(path, send)
            return
        handler = methods.get(method)
        if handler is None:
            metrics.observe_response("unrouted", 405)
            allow = ", ".join(sorted(methods))
            await _respond(
                send,
                405,
                orjson.dumps({"error": f"{method} is not allowed on {path}; allowed: {allow}"}),
                [*_JSON, (b"allow", allow.encode())],
            )
            return
        if handler in ("v1", "explain", "v2"):
            await self._predict(handler, receive, send)
        elif handler == "kserve":
            await self._to_kserve(scope, receive, send)
        else:
            metrics.observe_response(handler, await self._answer(handler, send))

    async def _not_found(self, path: str, send: Send) -> None:
        other = _MODEL_PATH.match(path)
        if other and other.group(1) != self.model.name:
            message = f"model '{other.group(1)}' is not served here; this server serves '{self.model.name}'"
        elif "/versions/" in path:
            message = f"model versions are not served separately: use /v2/models/{self.model.name}/infer"
        else:
            message = f"no route {path}; /openapi.json lists the routes this server serves"
        await _respond(send, 404, orjson.dumps({"error": message}), _JSON)

    async def _answer(self, handler: str, send: Send) -> int:
        """The health, readiness, metrics and OpenAPI routes, all from ``self.state``; returns the
        status sent."""
        name, ready = self.model.name, self.state.ready
        status = 200 if ready else 503
        if handler == "metrics":
            body, content_type = metrics.exposition()
            await _respond(send, 200, body, [(b"content-type", content_type.encode())])
            return 200
        if handler == "openapi":
            await _respond(send, 200, self.openapi(), _JSON)
            return 200
        if handler == "server_metadata":
            answer_meta = {"name": "credit-risk-predictor", "version": __version__, "extensions": []}
            await _respond(send, 200, orjson.dumps(answer_meta), _JSON)
            return 200
        if handler == "live":  # the process answers: alive, whatever the model's state
            answer: dict[str, Any] = {"status": "alive", "live": True, "state": self.state.name}
            status = 200
        elif handler == "ready":
            answer = {"ready": ready, "state": self.state.name}
        else:  # model_ready_v1 / model_ready_v2
            answer = {"name": name, "ready": ready, "state": self.state.name}
        await _respond(send, status, orjson.dumps(answer), _JSON)
        return status

    async def _to_kserve(self, scope: Scope, receive: Receive, send: Send) -> None:
        status: int | None = None

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # no query reaches kserve: its only one, model_version, answers 501 "not supported yet"
        scope = {**scope, "query_string": b""}
        try:
            await self.app(scope, self._limited(receive), tracking_send)
        except BodyTooLargeError as e:
            if status is not None:
                raise
            status = 413
            await self._error(send, 413, str(e), "-")
        finally:
            metrics.observe_response("kserve", status or 0)

    def openapi(self) -> bytes:
        """kserve's OpenAPI document cut down to the routes served, with concrete model paths."""
        if self._openapi is None:
            source = self._openapi_source() if self._openapi_source else {"openapi": "3.1.0", "paths": {}}
            spec = self.model.spec
            instance = contract.instance_json_schema(spec) if spec is not None else None
            inputs = contract.input_metadata(spec) if spec is not None else None
            doc = served_openapi(source, self.model.name, instance, inputs)
            baseline = getattr(self.model, "reason_baseline", None)
            if spec is not None and baseline:  # a worked example of each body: the baseline applicant
                _add_examples(doc, self.model.name, spec, baseline)
            self._openapi = orjson.dumps(doc)
        return self._openapi

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that stops a chunked body (no Content-Length) at the limit."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise BodyTooLargeError(f"body exceeds the limit of {self.max_body_bytes} bytes")
            return message

        return wrapped

    async def _read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLargeError(f"body exceeds the limit of {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _predict(self, route: str, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        protocol = "v2" if route == "v2" else "v1"
        status = 200
        if not self.state.ready:
            status = 503
            await self._error(
                send, 503, f"model {self.model.name} is not ready ({self.state.name})", protocol
            )
            metrics.observe_request(protocol, status, time.perf_counter() - start)
            return
        try:
            body = await self._read(receive)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise contract.RequestError(f"the body is not valid JSON: {e}") from e
            if protocol == "v1":
                prepared = self.model.prepare_v1(payload, explain=route == "explain")
            else:
                prepared = self.model.prepare_v2(payload)
            pds, reasons = await self.model.infer(prepared)
            if route == "v2":
                answer = self.model.v2_response(prepared, pds, reasons)
            else:
                answer = self.model.v1_response(
                    pds, reasons, key="explanations" if route == "explain" else None
                )
            await _respond(send, 200, orjson.dumps(answer), _JSON)
        except contract.RequestError as e:
            status = 400
            where = f"instance={e.index} field={e.field}"
            await self._error(send, 400, str(e), protocol, where)
        except BodyTooLargeError as e:
            status = 413
            await self._error(send, 413, str(e), protocol)
        except ConnectionResetError:
            status = 499  # nginx's "client closed request": counted, nothing to answer
        except Exception:  # a server fault: 500, logged with its traceback (no request values in it)
            status = 500
            log.exception("%s predict failed", protocol)
            await self._error(send, 500, "internal error while scoring; see the server log", protocol)
        finally:
            metrics.observe_request(protocol, status, time.perf_counter() - start)

    async def _error(self, send: Send, status: int, message: str, protocol: str, where: str = "") -> None:
        if status < 500:
            # the message can quote the submitted value: logged only when explicitly allowed
            log.info("%s %d %s%s", protocol, status, where, f" {message}" if self.log_values else "")
        await _respond(send, status, orjson.dumps({"error": message}), _JSON)


def served_openapi(
    source: dict[str, Any],
    model_name: str,
    instance_schema: dict[str, Any] | None = None,
    v2_inputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``source`` (kserve's generated document) with only ``ROUTES``, ``{model_name}`` filled in,
    the unsupported ``model_version`` parameter dropped, and the V1 bodies our contract takes."""
    doc = copy.deepcopy(source)
    kserve_paths = doc.get("paths", {})
    paths: dict[str, Any] = {}
    for (template, method), _handler in ROUTES.items():
        kserve_template = template.replace("{m}", "{model_name}")
        operation = copy.deepcopy(kserve_paths.get(kserve_template, {}).get(method.lower())) or {
            "summary": template,
            "responses": {"200": {"description": "OK"}},
        }
        operation["parameters"] = [
            p for p in operation.get("parameters", []) if p.get("name") not in ("model_name", "model_version")
        ]
        if not operation["parameters"]:
            del operation["parameters"]
        operation["operationId"] = (
            f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', template.lower()).strip('_')}"
        )
        if template.startswith("/v1/models/{m}:"):
            operation["requestBody"] = _v1_body(instance_schema or {"type": "object"})
        elif template == "/v2/models/{m}/infer":
            operation["requestBody"] = _v2_body(v2_inputs or [])
        paths.setdefault(template.format(m=model_name), {})[method.lower()] = operation
    doc["paths"] = paths
    doc.setdefault("info", {})["description"] = f"The credit-risk predictor serving model '{model_name}'."
    return doc


def _add_examples(doc: dict[str, Any], name: str, spec: Any, baseline: dict[str, Any]) -> None:
    applicant = {f.name: baseline.get(f.name) for f in spec.model_features}
    v1 = {"instances": [applicant]}
    v2 = {
        "inputs": [
            {"name": m["name"], "datatype": m["datatype"], "shape": [1, 1], "data": [applicant[m["name"]]]}
            for m in contract.input_metadata(spec)
        ]
    }
    paths = doc["paths"]
    for path, example in ((f"/v1/models/{name}:predict", v1), (f"/v1/models/{name}:explain", v1),
                          (f"/v2/models/{name}/infer", v2)):  # fmt: skip
        paths[path]["post"]["requestBody"]["content"]["application/json"]["example"] = example


def _v1_body(instance: dict[str, Any]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "minItems": 1, "items": instance},
            "parameters": {
                "type": "object",
                "properties": {
                    "reasons": {"type": "boolean"},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 20},
                },
            },
        },
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _v2_body(inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Open Inference Protocol request as this model takes it: one [n, 1] tensor per input."""
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"type": "string", "enum": [i["name"] for i in inputs]} if inputs else {"type": "string"},
            "datatype": {
                "type": "string",
                "enum": [*contract.NUMERIC_DATATYPES, contract.CATEGORICAL_DATATYPE],
            },
            "shape": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    schema = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
            "parameters": {"type": "object"},
        },
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
