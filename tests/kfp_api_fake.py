"""A protocol-level fake of the Kubeflow Pipelines v2beta1 REST API - NOT a KFP server.

It speaks just the paths ``kfp.Client`` uses to create an experiment and a run and to poll it,
records every request (method, path, JSON body, headers) for the tests to assert on, and answers
run states from a script. Anything else is a 404, so an unexpected call fails the test.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeKfpApi:
    def __init__(self, run_states: list[str] | None = None):
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.run_states = list(run_states or ["SUCCEEDED"])
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _reply(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urlparse(self.path)
                fake.requests.append(
                    {
                        "method": method,
                        "path": url.path,
                        "query": parse_qs(url.query),
                        "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                status, reply = fake.route(method, url.path, parse_qs(url.query), body)
                self._reply(status, reply)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, dict]:  # noqa: PLR0911
        if method == "GET" and path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if method == "GET" and path == "/apis/v2beta1/experiments":
            flt = json.loads(query.get("filter", ["{}"])[0] or "{}")
            wanted = [p.get("stringValue", p.get("string_value")) for p in flt.get("predicates", [])]
            found = [e for e in self.experiments.values() if e["display_name"] in wanted]
            return 200, {"experiments": found, "total_size": len(found)} if found else {}
        if method == "POST" and path == "/apis/v2beta1/experiments":
            exp = {"experiment_id": f"exp-{len(self.experiments) + 1}", "display_name": body["display_name"]}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if method == "POST" and path == "/apis/v2beta1/runs":
            run_id = f"run-{len(self.runs) + 1}"
            run = {**body, "run_id": run_id, "state": "PENDING"}
            self.runs[run_id] = run
            return 200, run
        if method == "GET" and path.startswith("/apis/v2beta1/runs/"):
            run = self.runs.get(path.rsplit("/", 1)[1])
            if run is None:
                return 404, {"error": "run not found"}
            if self.run_states:
                run["state"] = self.run_states.pop(0)
            return 200, run
        return 404, {"error": f"fake KFP API: no route for {method} {path}"}

    def __enter__(self) -> FakeKfpApi:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
