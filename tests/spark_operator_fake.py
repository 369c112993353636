"""A protocol-level fake of the Kubernetes API server and the Kubeflow Spark Operator for
``sparkoperator.k8s.io/v1beta2`` SparkApplications - a test double (no cluster runs here).

The real ``kubernetes`` client talks to it on 127.0.0.1:

  POST   /apis/sparkoperator.k8s.io/v1beta2/namespaces/{ns}/sparkapplications         (409 if it exists)
  GET    .../sparkapplications/{name}                                                (404 Status if absent)
  DELETE .../sparkapplications/{name}                                                (404 if absent)

Like the API server it validates every created object against the vendored CRD's OpenAPI v3
schema (third_party/spark-operator; 422 Invalid naming the field), prunes fields the schema does not
know (a 299 warning), sets uid/resourceVersion/creationTimestamp, and answers with Status objects.

Like the operator it runs the application: ``mode`` per test -

- ``"run"`` (default): spark-submit (the pip pyspark's) with ``--master local[1]``, the spec's
  ``deps.pyFiles``, ``mainApplicationFile`` and ``arguments`` - the job really runs; state
  ``SUBMITTED`` until the first GET after creation, then ``RUNNING`` while the driver process
  lives, ``COMPLETED`` on exit 0, ``FAILED`` with the driver's last stderr lines as
  ``errorMessage`` otherwise;
- ``"pending"``: stays ``SUBMITTED`` (no executors ever scheduled): for the timeout and cancel paths;
- ``"submission_failed"``: ``SUBMISSION_FAILED`` with a message, as when spark-submit is refused.

DELETE stops the driver process (as deleting the object deletes its pods). Requests are logged.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.helpers import SPARK_CRD, crd_schema
from tests.kube_api_fake import InvalidError, SchemaValidator

_COLLECTION = re.compile(r"^/apis/sparkoperator\.k8s\.io/v1beta2/namespaces/([^/]+)/sparkapplications/?$")
_ITEM = re.compile(r"^/apis/sparkoperator\.k8s\.io/v1beta2/namespaces/([^/]+)/sparkapplications/([^/?]+)")
SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")


def _local(uri: str) -> str:
    assert uri.startswith("file://"), f"the fake runs local files only, got {uri}"
    return uri[len("file://") :]


class _App:
    def __init__(self, obj: dict[str, Any], mode: str):
        self.obj, self.mode = obj, mode
        self.proc: subprocess.Popen | None = None
        self.gets = 0
        self.stderr = ""

    def start(self) -> None:
        spec = self.obj["spec"]
        cmd = [
            str(SPARK_SUBMIT),
            "--master",
            "local[1]",
            "--conf",
            "spark.driver.bindAddress=127.0.0.1",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--conf",
            "spark.ui.enabled=false",
        ]
        for key, value in (spec.get("sparkConf") or {}).items():
            cmd += ["--conf", f"{key}={value}"]
        py_files = [_local(u) for u in (spec.get("deps") or {}).get("pyFiles", [])]
        if py_files:
            cmd += ["--py-files", ",".join(py_files)]
        cmd += [_local(spec["mainApplicationFile"]), *spec.get("arguments", [])]
        # a clean environment's PYTHONPATH: only what the application ships (its pyFiles) is importable
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "PYSPARK_PYTHON": sys.executable,
            "PYTHONNOUSERSITE": "1",
        }
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd="/tmp"
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def state(self) -> dict[str, Any]:
        self.gets += 1
        if self.mode == "submission_failed":
            return {
                "state": "SUBMISSION_FAILED",
                "errorMessage": "failed to run spark-submit: image pull back-off for the driver",
            }
        if self.mode == "pending" or self.gets < 2:
            return {"state": "SUBMITTED"}
        if self.proc is None:
            self.start()
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is None:
            return {"state": "RUNNING"}
        if rc == 0:
            return {"state": "COMPLETED"}
        tail = "\n".join([ln for ln in self.stderr.splitlines() if ln.strip()][-5:])
        return {
            "state": "FAILED",
            "errorMessage": f"driver container failed with ExitCode: {rc}, Reason: Error\n{tail}",
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class FakeSparkOperator:
    def __init__(self, mode: str = "run", granted: dict[str, set[str]] | None = None) -> None:
        """``granted``: namespace -> the verbs on sparkapplications the caller's Role grants there
        (the API server's RBAC: anything else is 403 Forbidden); None = every verb everywhere."""
        self.mode = mode
        self.granted = granted
        self.apps: dict[tuple[str, str], _App] = {}
        self.requests: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.validator = SchemaValidator(crd_schema(SPARK_CRD, "v1beta2"))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeSparkOperator:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for app in self.apps.values():
            app.stop()
        self._server.shutdown()
        self._server.server_close()

    def api_client(self) -> Any:
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: Any, warnings: list[str] | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for w in warnings or []:
                    self.send_header("Warning", f'299 - "unknown field \\"{w}\\""')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _status(self, code: int, reason: str, message: str, causes: list | None = None) -> None:
                details = {"causes": [{"field": f, "message": m} for f, m in causes]} if causes else {}
                self._send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": message,
                        "reason": reason,
                        "code": code,
                        "details": details,
                    },
                )

            def _forbidden(self, verb: str, namespace: str) -> bool:
                if fake.granted is None or verb in fake.granted.get(namespace, set()):
                    return False
                self._status(
                    403,
                    "Forbidden",
                    f'sparkapplications.sparkoperator.k8s.io is forbidden: User "system:serviceaccount:'
                    f'{namespace}:credit-risk-pipeline-runner" cannot {verb} resource "sparkapplications" in '
                    f'API group "sparkoperator.k8s.io" in the namespace "{namespace}"',
                )
                return True

            def _read(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                m = _COLLECTION.match(self.path.split("?")[0])
                if not m:
                    return self._status(404, "NotFound", f"the server could not find {self.path}")
                obj = self._read()
                ns = m.group(1)
                if self._forbidden("create", ns):
                    return None
                if (
                    obj.get("kind") != "SparkApplication"
                    or obj.get("apiVersion") != "sparkoperator.k8s.io/v1beta2"
                ):
                    return self._status(
                        400, "BadRequest", "expected a sparkoperator.k8s.io/v1beta2 SparkApplication"
                    )
                try:
                    warnings = fake.validator.admit(obj)
                except InvalidError as e:
                    name = (obj.get("metadata") or {}).get("name", "")
                    return self._status(
                        422,
                        "Invalid",
                        f'SparkApplication.sparkoperator.k8s.io "{name}" is invalid: {e}',
                        e.causes,
                    )
                meta = obj["metadata"]
                key = (ns, meta["name"])
                with fake._lock:
                    if key in fake.apps:
                        return self._status(
                            409,
                            "AlreadyExists",
                            f'sparkapplications.sparkoperator.k8s.io "{key[1]}" already exists',
                        )
                    meta.update(
                        {
                            "namespace": ns,
                            "uid": str(uuid.uuid4()),
                            "resourceVersion": "1",
                            "generation": 1,
                            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        }
                    )
                    fake.apps[key] = _App(copy.deepcopy(obj), fake.mode)
                self._send(201, obj, warnings)

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                m = _ITEM.match(self.path)
                if m and self._forbidden("get", m.group(1)):
                    return None
                app = fake.apps.get((m.group(1), m.group(2))) if m else None
                if app is None:
                    name = m.group(2) if m else self.path
                    return self._status(
                        404, "NotFound", f'sparkapplications.sparkoperator.k8s.io "{name}" not found'
                    )
                view = copy.deepcopy(app.obj)
                view["status"] = {"applicationState": app.state(), "sparkApplicationId": "spark-fake"}
                self._send(200, view)

            def do_DELETE(self) -> None:
                fake.requests.append(("DELETE", self.path))
                m = _ITEM.match(self.path)
                if m and self._forbidden("delete", m.group(1)):
                    return None
                key = (m.group(1), m.group(2)) if m else None
                app = fake.apps.pop(key, None) if key else None
                if app is None:
                    return self._status(404, "NotFound", "not found")
                app.stop()
                fake.deleted.append(key[1])
                self._send(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Success",
                        "details": {
                            "name": key[1],
                            "group": "sparkoperator.k8s.io",
                            "kind": "sparkapplications",
                            "uid": app.obj["metadata"]["uid"],
                        },
                    },
                )

        return Handler
