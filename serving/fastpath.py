"""The predictor's HTTP front: body limits, the prediction fast path, metrics, log policy.

An ASGI layer in front of kserve's FastAPI app. It
  * refuses a body over ``max_body_bytes`` with 413 before reading it (kserve has no limit: a 50 MB
    body blocks a worker for seconds - docs/stack.md);
  * answers ``POST /v1/models/<ours>:predict`` and ``POST /v2/models/<ours>/infer`` itself: orjson
    in, the model's own prepare -> micro-batched infer -> response steps, orjson out. This skips
    kserve's generic request objects and per-request middleware, the larger part of the ~0.7 ms kserve
    spends around a request here (benchmarks/serving_benchmark.py measures both);
  * serves ``/metrics`` summed over all worker processes (serving/metrics.py);
  * logs each client error as protocol, status and the instance/field it names - never the message,
    which may quote a submitted value (applicant data is personal data) - unless ``log_values``.
Everything else (metadata, health, other models, docs) goes to kserve's app unchanged.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from credit_risk.serving import metrics

from credit_risk import contract

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


class PredictorFront:
    def __init__(
        self,
        app: ASGIApp,
        model: Any,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        log_values: bool = False,
    ):
        self.app = app
        self.model = model
        self.max_body_bytes = max_body_bytes
        self.log_values = log_values
        name = re.escape(model.name)
        self._routes = {
            f"/v1/models/{model.name}:predict": "v1",
            f"/v2/models/{model.name}/infer": "v2",
        }
        self._v2_versioned = re.compile(rf"^/v2/models/{name}/versions/[^/]+/infer$")

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
        if method == "GET" and path == "/metrics":
            body, content_type = metrics.exposition()
            await _respond(send, 200, body, [(b"content-type", content_type.encode())])
            return
        protocol = self._routes.get(path) or ("v2" if self._v2_versioned.match(path) else None)
        if method == "POST" and protocol:
            await self._predict(protocol, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._limited(receive), tracking_send)
        except BodyTooLargeError as e:
            if started:
                raise
            await self._error(send, 413, str(e), "-")

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

    async def _predict(self, protocol: str, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 200
        try:
            body = await self._read(receive)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise contract.RequestError(f"the body is not valid JSON: {e}") from e
            prepared = self.model.prepare_v1(payload) if protocol == "v1" else self.model.prepare_v2(payload)
            pds, reasons = await self.model.infer(prepared)
            if protocol == "v1":
                answer = self.model.v1_response(pds, reasons)
            else:
                answer = self.model.v2_response(prepared, pds)
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
