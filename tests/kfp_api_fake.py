"""A protocol-level fake of the Kubeflow Pipelines v2beta1 REST API - NOT a KFP server.

It speaks just the paths ``kfp.Client`` uses to upload a pipeline and its versions (multipart), to
create an experiment, a run (and poll it) and a recurring run,
records every request (method, path, JSON body, headers) for the tests to assert on, and answers
run states from a script. Anything else is a 404, so an unexpected call fails the test.
"""

from __future__ import annotations

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeKfpApi:
    def __init__(self, run_states: list[str] | None = None):
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}  # pipeline_id -> versions
        self.uploads: list[bytes] = []  # file contents received by the upload endpoints
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
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    body = None
                    message = BytesParser(policy=HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                    )
                    fake.uploads += [part.get_payload(decode=True) for part in message.iter_parts()]
                else:
                    body = json.loads(raw) if raw else None
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
        if method == "GET" and path == "/apis/v2beta1/pipelines":
            flt = json.loads(query.get("filter", ["{}"])[0] or "{}")
            wanted = [p.get("stringValue", p.get("string_value")) for p in flt.get("predicates", [])]
            found = [p for p in self.pipelines.values() if p["display_name"] in wanted]
            return 200, {"pipelines": found, "total_size": len(found)} if found else {}
        if method == "POST" and path == "/apis/v2beta1/pipelines/upload":
            pipeline_id = f"pipeline-{len(self.pipelines) + 1}"
            pipeline = {"pipeline_id": pipeline_id, "display_name": query["name"][0]}
            self.pipelines[pipeline_id] = pipeline
            self.versions[pipeline_id] = [
                {
                    "pipeline_id": pipeline_id,
                    "pipeline_version_id": f"{pipeline_id}-v1",
                    "display_name": query["name"][0],
                }
            ]
            return 200, pipeline
        if method == "POST" and path == "/apis/v2beta1/pipelines/upload_version":
            pipeline_id = query["pipelineid"][0]
            versions = self.versions[pipeline_id]
            version = {
                "pipeline_id": pipeline_id,
                "pipeline_version_id": f"{pipeline_id}-v{len(versions) + 1}",
                "display_name": query["name"][0],
            }
            versions.append(version)
            return 200, version
        if method == "GET" and path.startswith("/apis/v2beta1/pipelines/") and path.endswith("/versions"):
            pipeline_id = path.split("/")[-2]
            return 200, {
                "pipeline_versions": self.versions.get(pipeline_id, []),
                "total_size": len(self.versions.get(pipeline_id, [])),
            }
        if method == "POST" and path == "/apis/v2beta1/runs":
            run_id = f"run-{len(self.runs) + 1}"
            run = {**body, "run_id": run_id, "state": "PENDING"}
            self.runs[run_id] = run
            return 200, run
        if method == "POST" and path == "/apis/v2beta1/recurringruns":
            job_id = f"job-{len(self.recurring_runs) + 1}"
            job = {
                **body,
                "recurring_run_id": job_id,
                "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
            }
            self.recurring_runs[job_id] = job
            return 200, job
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
