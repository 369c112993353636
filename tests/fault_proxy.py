"""A fault-injecting HTTP proxy on 127.0.0.1 in front of an object-store emulator (a test tool, not
a fake): fake-gcs-server for gs://, moto's S3 server for s3://.

Requests pass through to the real server unchanged, except that a bounded number of
requests matching a rule get a fault: a 503 answer, a connection dropped before the answer, a
connection dropped half-way through the answer's body, one flipped byte in the answer's body
(``corrupt``: the stored object stays intact, so only checksums can notice), or one flipped byte
in the middle of the request body (``corrupt_request``: an upload stored with other bytes).
Every fault is counted, so a test can assert the faults really happened.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("503", "reset", "truncate", "corrupt", "corrupt_request")


@dataclass
class Rule:
    kind: str
    remaining: int  # faults still to inject
    method: str | None = None  # e.g. "GET"; None = any
    path_contains: str = ""  # e.g. "alt=media" (downloads), "/upload/" (uploads)
    skip: int = 0  # let this many matching requests through first
    injected: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and (self.method in (None, method)) and self.path_contains in path


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.rules: list[Rule] = []
        self.lock = threading.Lock()
        self.requests = 0
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request, for diagnosis
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy._take(self.command, self.path)
                if rule and rule.kind == "503":
                    payload = json.dumps({"error": {"code": 503, "message": "injected 503"}}).encode()
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if rule and rule.kind == "reset":
                    self.close_connection = True
                    self.connection.close()
                    return
                if rule and rule.kind == "corrupt_request" and body:
                    middle = len(body) // 2
                    body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if rule and rule.kind == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self.send_response(status)
                head = self.command == "HEAD"  # no body; Content-Length is the object's size
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection") and (
                        head or key.lower() != "content-length"
                    ):
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if rule and rule.kind == "truncate":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def inject(
        self, kind: str, count: int, method: str | None = None, path_contains: str = "", skip: int = 0
    ) -> Rule:
        if kind not in KINDS:
            raise ValueError(f"fault kind {kind!r} not in {KINDS}")
        rule = Rule(kind, count, method, path_contains, skip)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def _take(self, method: str, path: str) -> Rule | None:
        with self.lock:
            self.requests += 1
            self.seen.append((method, path))
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.remaining -= 1
                    rule.injected += 1
                    return rule
        return None

    def _forward(self, method: str, path: str, headers: object, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("connection",)}  # type: ignore[attr-defined]
            conn.request(method, path, body=body or None, headers=forwarded)
            response = conn.getresponse()
            data, own, mine = response.read(), self.upstream.netloc, urlsplit(self.url).netloc
            # the emulator names itself in mediaLink / upload session URLs: point those back here,
            # as a reverse proxy does, so follow-up requests meet the faults too
            if "json" in (response.getheader("Content-Type") or ""):
                data = data.replace(own.encode(), mine.encode())
            headers = [
                (k, v.replace(own, mine) if k.lower() == "location" else v) for k, v in response.getheaders()
            ]
            return response.status, headers, data
        finally:
            conn.close()


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """Serve a FaultProxy in a thread for the duration of the block."""
    proxy = FaultProxy(upstream)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
