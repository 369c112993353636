"""A protocol-level fake of the EMR Serverless job-run API, for what moto cannot do: job runs that run.

moto 5's server (tests/s3_server.py, used for the request and refusal paths) marks every job run
``SUCCESS`` the moment it starts, so a run that fails, one that hangs, and a cancellation cannot be
seen through it. This server speaks the same REST-JSON protocol boto3 does (``StartJobRun``
``POST /applications/{id}/jobruns``, ``GetJobRun`` ``GET .../jobruns/{jobRunId}``,
``CancelJobRun`` ``DELETE .../jobruns/{jobRunId}``), validates every ``StartJobRun`` body against
botocore's own service model of the API (required members, types: 400 ``ValidationException`` naming
the member, as the service answers), answers 404 ``ResourceNotFoundException`` for an unknown
application or run, honours ``clientToken`` idempotency (the same token returns the same run), and
plays each run through a script: ``SUBMITTED`` -> ``RUNNING`` -> ``SUCCESS`` or ``FAILED`` (with EMR's
``stateDetails``), or ``RUNNING`` until cancelled (``CANCELLING`` -> ``CANCELLED``). Loopback only.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RUNS = re.compile(r"^/applications/([\w-]+)/jobruns$")
_RUN = re.compile(r"^/applications/([\w-]+)/jobruns/([\w-]+)$")
FAILURE_DETAILS = (
    "Job failed, please check complete logs in configured logging destination. ExitCode: 1. "
    "Last few exceptions: pyspark.errors.exceptions.captured.AnalysisException: [PATH_NOT_FOUND]"
)


class FakeEmrServerless:
    """``mode``: "succeed", "fail" (after ``polls`` reads of RUNNING) or "hang" (RUNNING until cancelled)."""

    def __init__(
        self, mode: str = "fail", polls: int = 2, applications: tuple[str, ...] = ("00app1",)
    ) -> None:
        import botocore.session

        self.mode, self.polls = mode, polls
        self.applications = set(applications)
        self.model = botocore.session.get_session().get_service_model("emr-serverless")
        self.runs: dict[str, dict[str, Any]] = {}
        self.tokens: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeEmrServerless:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def client(self) -> Any:
        import boto3

        return boto3.client("emr-serverless", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="fake", aws_secret_access_key="fake")  # fmt: skip

    def validation_errors(self, operation: str, params: dict[str, Any]) -> str:
        from botocore.validate import ParamValidator

        report = ParamValidator().validate(params, self.model.operation_model(operation).input_shape)
        return report.generate_report() if report.has_errors() else ""

    def _new_run(self, app: str, body: dict[str, Any]) -> str:
        run_id, now = uuid.uuid4().hex[:16], datetime.now(UTC).timestamp()
        self.runs[run_id] = {
            "applicationId": app, "jobRunId": run_id, "name": body.get("name", ""),
            "arn": f"arn:aws:emr-serverless:us-east-1:123456789012:/applications/{app}/jobruns/{run_id}",
            "createdBy": "arn:aws:iam::123456789012:user/fake", "createdAt": now, "updatedAt": now,
            "executionRole": body["executionRoleArn"], "state": "SUBMITTED", "stateDetails": "",
            "releaseLabel": "emr-7.5.0", "jobDriver": body.get("jobDriver", {}), "reads": 0,
        }  # fmt: skip
        return run_id

    def _advance(self, run: dict[str, Any]) -> None:
        """One GetJobRun's worth of progress through the run's script."""
        run["reads"] += 1
        if run["state"] == "CANCELLING":
            run["state"] = "CANCELLED"
        elif run["state"] == "SUBMITTED":
            run["state"] = "RUNNING"
        elif run["state"] == "RUNNING" and run["reads"] > self.polls and self.mode != "hang":
            run["state"] = "SUCCESS" if self.mode == "succeed" else "FAILED"
            run["stateDetails"] = "" if self.mode == "succeed" else FAILURE_DETAILS
        run["updatedAt"] = datetime.now(UTC).timestamp()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: Any, error: str = "") -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                if error:
                    self.send_header("x-amzn-ErrorType", error)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, code: int, kind: str, message: str) -> None:
                self._send(code, {"__type": kind, "message": message}, kind)

            def _run(self) -> tuple[str, dict[str, Any]] | None:
                m = _RUN.match(self.path.split("?")[0])
                if not m or m.group(1) not in fake.applications:
                    self._error(
                        404,
                        "ResourceNotFoundException",
                        f"Application {m.group(1) if m else ''} does not exist",
                    )
                    return None
                run = fake.runs.get(m.group(2))
                if run is None or run["applicationId"] != m.group(1):
                    self._error(404, "ResourceNotFoundException", f"Job run {m.group(2)} does not exist")
                    return None
                return m.group(2), run

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                m = _RUNS.match(self.path.split("?")[0])
                if not m:
                    return self._error(404, "UnknownOperationException", f"no operation at {self.path}")
                app = m.group(1)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                problems = fake.validation_errors("StartJobRun", {**body, "applicationId": app})
                if problems:
                    return self._error(400, "ValidationException", problems)
                if app not in fake.applications:
                    return self._error(404, "ResourceNotFoundException", f"Application {app} does not exist")
                with fake._lock:
                    key = (app, body["clientToken"])
                    if key not in fake.tokens:  # idempotent: a retried start returns the same run
                        fake.tokens[key] = fake._new_run(app, body)
                    run = fake.runs[fake.tokens[key]]
                self._send(200, {k: run[k] for k in ("applicationId", "jobRunId", "arn")})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                found = self._run()
                if found:
                    _, run = found
                    with fake._lock:
                        fake._advance(run)
                        view = {k: v for k, v in run.items() if k != "reads" and v != {}}
                    self._send(200, {"jobRun": view})

            def do_DELETE(self) -> None:
                fake.requests.append(("DELETE", self.path))
                found = self._run()
                if found:
                    run_id, run = found
                    with fake._lock:
                        if run["state"] in ("SUCCESS", "FAILED", "CANCELLED"):
                            terminal = f"Job run {run_id} is in a terminal state: {run['state']}"
                            return self._error(400, "ValidationException", terminal)
                        run["state"] = "CANCELLING"
                    self._send(200, {"applicationId": run["applicationId"], "jobRunId": run_id})

        return Handler
