"""A protocol-level fake of the Kubernetes API server for KServe InferenceServices - a test double.

No Kubernetes API server can run here, so the real ``kubernetes`` client is pointed at this small HTTP
server on 127.0.0.1. It speaks the REST paths and JSON the client uses for
``serving.kserve.io/v1beta1`` InferenceServices:

  GET    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}   (404 Status if absent)
  POST   /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices          (409 if it exists)
  PATCH  .../inferenceservices/{name}   application/merge-patch+json (RFC 7386: null deletes)
  PUT    .../inferenceservices/{name}   replace

and plays the KServe controller the tests script: every change of the predictor spec (other than
``canaryTrafficPercent``) becomes a new revision ``{name}-predictor-0000N`` whose fate is taken from
``revision_script`` ("ready", "never_ready" = progressing forever, "fail" = RevisionFailed); a revision
turns Ready after ``polls_until_ready`` GETs. ``status`` carries conditions, latestCreated/ReadyRevision
and the traffic split (canary percent to the latest revision, the rest to the previously rolled-out one)
with a tagged URL per revision; those URLs are served here too, answering V1 predict calls as
``smoke_script`` says ("ok" or "bad"). ``forbid`` makes a verb answer 403 as RBAC would. Every request
is logged in ``requests``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
_COLLECTION = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices/?$")
_ITEM = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices/([^/]+)$")
_PREDICT = re.compile(r"^/rev/([^/]+)/v1/models/([^/:]+):predict$")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class _Service:
    def __init__(self, obj: dict[str, Any]):
        self.obj = obj
        self.revisions: list[dict[str, Any]] = []  # {"name", "spec", "fate", "polls"}
        self.rolled_out = ""  # the revision that last had 100 % of traffic


class FakeKubeApi:
    def __init__(self) -> None:
        self.services: dict[tuple[str, str], _Service] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.forbid: set[str] = set()  # verbs (get/create/patch/update) answered with 403
        self.hide_next_get = False  # GET says 404 once although the object exists (a create race -> 409)
        self.revision_script: list[str] = []  # fate of each new revision, in order; default "ready"
        self.smoke_script: dict[str, str] = {}  # revision -> "ok" | "bad"; default "ok"
        self.polls_until_ready = 2
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKubeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what tests look at -------------------------------------------------------------------
    def api_calls(self) -> list[tuple[str, Any]]:
        """(verb, body) of the Kubernetes API calls, smoke queries excluded."""
        verbs = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update"}
        return [(verbs[m], body) for m, path, body in self.requests if path.startswith(PREFIX)]

    def smoke_queries(self) -> list[str]:
        return [path for m, path, _ in self.requests if path.startswith("/rev/")]

    def traffic(self, namespace: str, name: str) -> dict[str, int]:
        status = self._status(self.services[(namespace, name)])
        return {t["revisionName"]: t["percent"] for t in status["components"]["predictor"]["traffic"]}

    def seed(self, manifest: dict[str, Any]) -> None:
        """An InferenceService already rolled out (revision 1 at 100 %)."""
        svc = _Service(json.loads(json.dumps(manifest)))
        svc.obj["metadata"]["generation"] = 1
        svc.revisions.append(
            {"name": self._rev_name(svc, 1), "spec": _model_spec(manifest), "fate": "ready", "polls": 99}
        )
        svc.rolled_out = svc.revisions[0]["name"]
        self.services[(manifest["metadata"]["namespace"], manifest["metadata"]["name"])] = svc

    # --- the controller -----------------------------------------------------------------------
    @staticmethod
    def _rev_name(svc: _Service, n: int) -> str:
        return f"{svc.obj['metadata']['name']}-predictor-{n:05d}"

    def _reconcile(self, svc: _Service) -> None:
        spec = _model_spec(svc.obj)
        if not svc.revisions or svc.revisions[-1]["spec"] != spec:
            fate = self.revision_script.pop(0) if self.revision_script else "ready"
            svc.revisions.append(
                {"name": self._rev_name(svc, len(svc.revisions) + 1), "spec": spec, "fate": fate, "polls": 0}
            )
        generation = svc.obj["metadata"].get("generation", 0) + 1
        svc.obj["metadata"]["generation"] = generation

    def _ready(self, rev: dict[str, Any]) -> bool:
        return rev["fate"] == "ready" and rev["polls"] >= self.polls_until_ready

    def _status(self, svc: _Service) -> dict[str, Any]:
        latest = svc.revisions[-1]
        latest_ready = next((r["name"] for r in reversed(svc.revisions) if self._ready(r)), "")
        canary = svc.obj["spec"]["predictor"].get("canaryTrafficPercent")
        if self._ready(latest):
            if canary is None or canary >= 100 or not svc.rolled_out or svc.rolled_out == latest["name"]:
                svc.rolled_out = latest["name"]
                split = [(latest["name"], 100, "latest")]
            else:
                split = [(latest["name"], canary, "latest"), (svc.rolled_out, 100 - canary, "prev")]
        else:
            split = [(svc.rolled_out, 100, "prev")] if svc.rolled_out else []
        traffic = [
            {
                "revisionName": rev,
                "percent": pct,
                "tag": tag,
                "latestRevision": rev == latest["name"],
                "url": f"{self.url}/rev/{rev}",
            }
            for rev, pct, tag in split
        ]
        if self._ready(latest):
            ready = {"type": "Ready", "status": "True"}
        elif latest["fate"] == "fail":
            ready = {
                "type": "Ready",
                "status": "False",
                "reason": "RevisionFailed",
                "message": f"Revision {latest['name']} failed with message: container exited with code 1",
            }
        else:
            ready = {"type": "Ready", "status": "Unknown", "reason": "RevisionProgressing"}
        name = svc.obj["metadata"]["name"]
        return {
            "observedGeneration": svc.obj["metadata"]["generation"],
            "url": f"{self.url}/rev/{svc.rolled_out}" if svc.rolled_out else "",
            "address": {"url": f"http://{name}.{svc.obj['metadata']['namespace']}.svc.cluster.local"},
            "conditions": [{"type": "PredictorReady", "status": ready["status"]}, ready],
            "components": {
                "predictor": {
                    "latestCreatedRevision": latest["name"],
                    "latestReadyRevision": latest_ready,
                    "traffic": traffic,
                }
            },
        }

    def _view(self, svc: _Service) -> dict[str, Any]:
        return {**svc.obj, "status": self._status(svc)}

    # --- HTTP ---------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _send(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": message,
                        "reason": reason,
                        "code": code,
                    },
                )

            def _handle(self, method: str) -> None:
                body = self._body()
                with fake._lock:
                    fake.requests.append((method, self.path, body))
                    self._dispatch(method, body)

            def _dispatch(self, method: str, body: Any) -> None:  # noqa: PLR0911, PLR0912 - one router
                predict = _PREDICT.match(self.path)
                if predict and method == "POST":
                    revision = predict.group(1)
                    if fake.smoke_script.get(revision, "ok") != "ok":
                        return self._send(500, {"error": "model failed to load: simulated"})
                    rows = len((body or {}).get("instances", []))
                    return self._send(200, {"predictions": [{"pd": 0.25, "decision": "approve"}] * rows})
                verb = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update"}[method]
                item, collection = (
                    _ITEM.match(self.path.split("?")[0]),
                    _COLLECTION.match(self.path.split("?")[0]),
                )
                if not (item or collection):
                    return self._status(
                        404, "NotFound", f"the server could not find the requested resource {self.path}"
                    )
                namespace = (item or collection).group(1)
                if verb in fake.forbid:
                    return self._status(
                        403,
                        "Forbidden",
                        "inferenceservices.serving.kserve.io is forbidden: User "
                        f'"system:serviceaccount:{namespace}:credit-risk-pipeline-runner" cannot {verb} '
                        'resource "inferenceservices" in API group "serving.kserve.io" in the namespace '
                        f'"{namespace}"',
                    )
                if collection and method == "POST":
                    key = (namespace, body["metadata"]["name"])
                    if key in fake.services:
                        return self._status(
                            409,
                            "AlreadyExists",
                            f'inferenceservices.serving.kserve.io "{key[1]}" already exists',
                        )
                    svc = _Service({**body, "metadata": {**body["metadata"], "namespace": namespace}})
                    fake.services[key] = svc
                    fake._reconcile(svc)
                    return self._send(201, fake._view(svc))
                if not item:
                    return self._status(
                        405, "MethodNotAllowed", f"{method} on the collection is not supported here"
                    )
                key = (namespace, item.group(2))
                svc = fake.services.get(key)
                if method == "GET" and fake.hide_next_get:
                    fake.hide_next_get = False
                    svc = None
                if svc is None:
                    return self._status(
                        404, "NotFound", f'inferenceservices.serving.kserve.io "{key[1]}" not found'
                    )
                if method == "GET":
                    latest = svc.revisions[-1]
                    latest["polls"] += 1
                    return self._send(200, fake._view(svc))
                if method == "PATCH":
                    if self.headers.get("Content-Type") != "application/merge-patch+json":
                        return self._status(
                            415,
                            "UnsupportedMediaType",
                            f"unsupported patch type {self.headers.get('Content-Type')}",
                        )
                    svc.obj = merge_patch(svc.obj, {k: v for k, v in body.items() if k != "status"})
                elif method == "PUT":
                    svc.obj = {
                        **body,
                        "metadata": {**body["metadata"], "generation": svc.obj["metadata"]["generation"]},
                    }
                fake._reconcile(svc)
                return self._send(200, fake._view(svc))

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_PUT(self) -> None:
                self._handle("PUT")

        return Handler


def _model_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The predictor spec a revision is made of: everything but the traffic split."""
    return {k: v for k, v in obj["spec"]["predictor"].items() if k != "canaryTrafficPercent"}
