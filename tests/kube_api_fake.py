"""A protocol-level fake of the Kubernetes API server for KServe InferenceServices - a test double.

No Kubernetes API server can run here, so the real ``kubernetes`` client is pointed at this small HTTP
server on 127.0.0.1. It speaks the REST paths and JSON the client uses for
``serving.kserve.io/v1beta1`` InferenceServices:

  GET    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}   (404 Status if absent)
  POST   /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices          (409 if it exists)
  PATCH  .../inferenceservices/{name}   application/merge-patch+json (RFC 7386: null deletes)
  PUT    .../inferenceservices/{name}   replace

and validates like the real API server:

- every written object (create, replace, and the result of a merge patch) is checked against the
  vendored CRD's OpenAPI v3 schema (third_party/kserve): a wrong type, a missing required field or a
  bad enum value is ``422 Invalid`` with the field path in ``details.causes``; a field the schema does
  not know is dropped with a ``Warning: 299 - "unknown field ..."`` header (the server's default
  field validation, which prunes);
- ``metadata.resourceVersion`` changes on every write; a replace or patch carrying a stale one is
  ``409 Conflict`` (optimistic concurrency); ``metadata.generation`` counts spec changes;
- ``status.observedGeneration`` lags: after a write, the next GET still shows the status from
  before it (the controller has not reconciled yet); only later GETs show the new state.

It plays the KServe controller (Knative mode) the tests script: every change of the predictor spec
(other than ``canaryTrafficPercent``) becomes a new revision ``{name}-predictor-0000N`` whose fate is
taken from ``revision_script`` ("ready", "never_ready" = progressing forever, "fail" =
RevisionFailed); a revision turns Ready after ``polls_until_ready`` GETs. ``status`` carries
conditions, latestCreated/ReadyRevision and the traffic split (canary percent to the latest revision,
the rest to the previously rolled-out one) with tags ``latest``/``prev``. As on a cluster,
``status.url`` and the tags' URLs are external names (``*.example.com``, unreachable from here), and
the reachable addresses are cluster-local: ``status.address.url`` and each tag's service
``<tag>-<name>-predictor.<ns>.svc.cluster.local``. This server answers those when a request's Host
header names them (how the cluster-local gateway routes; ``CREDIT_RISK_CLUSTER_GATEWAY`` points the
smoke client here), with the **served model's own PDs**: the revision's ``STORAGE_URI`` is loaded
(a local model directory, or a published gs:// version) and scores the instances; ``serve_instead``
maps a storage URI to another model (a revision serving the wrong model), and a URI with no model
behind it answers a fixed PD of 0.25. ``smoke_script`` makes a revision answer 500 ("bad").

In **Standard** mode (annotation ``serving.kserve.io/deploymentMode: Standard``) it plays KServe's
raw-deployment controller instead: one Deployment + Service per predictor, ``<name>-predictor``
or ``<name>-<predictor.name>-predictor``, and one per ``spec.canary`` entry (kserve >= 0.20); a
changed pod spec restarts that Deployment (its fate again from ``revision_script``), retargeting
the stable predictor to an existing canary's name does not; ``status.canaryStatuses`` (name, ready,
trafficPercent) and a ``CanaryPredictorReady`` condition while canaries exist. KServe's validating
webhook is played too (403 ``denied the request``, as controller-runtime denies): canaries only in
Standard mode, each with a unique DNS-label ``predictor.name`` other than the stable one, traffic
summing to at most 100, and no autoscaling fields on a canary. Each Deployment's Service is
reachable at ``<deployment>.<ns>.svc.cluster.local``, the whole service at ``status.address.url``
(``<name>-predictor.<ns>...``, routed to the stable predictor).
``forbid`` makes a verb answer 403 as RBAC would. Every request is logged in ``requests``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from credit_risk.errors import CreditRiskError
from tests.helpers import crd_schema

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
_COLLECTION = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices/?$")
_ITEM = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices/([^/]+)$")
_PREDICT = re.compile(r"^/v1/models/([^/:]+):predict$")
CLUSTER_DOMAIN = "svc.cluster.local"
EXTERNAL_DOMAIN = "example.com"
FIXED_PD = 0.25  # the answer of a revision whose storage URI holds no model (policy-only tests)
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe's webhook refuses these on a canary predictor: the fake's own copy, not the code's
_CANARY_AUTOSCALING = ("maxReplicas", "scaleMetric", "scaleTarget", "autoScaling")
_NOT_POD_SPEC = ("name", "canaryTrafficPercent", "minReplicas", *_CANARY_AUTOSCALING)  # restart no pod
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class DeniedError(Exception):
    """A validating admission webhook's refusal (403)."""


class InvalidError(Exception):
    """A 422 from schema validation: (field path, message) causes."""

    def __init__(self, causes: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in causes))
        self.causes = causes


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def prune(obj: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Drop (in place) the fields a structural schema does not declare; returns their paths."""
    dropped: list[str] = []
    if isinstance(obj, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for key in [k for k in obj if k not in props]:
                del obj[key]
                dropped.append(f"{where}.{key}" if where else key)
        for key, value in obj.items():
            sub = (props or {}).get(key) or schema.get("additionalProperties")
            if isinstance(sub, dict):
                dropped += prune(value, sub, f"{where}.{key}" if where else key)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            dropped += prune(item, schema["items"], f"{where}[{i}]")
    return dropped


class SchemaValidator:
    """The API server's checks of a custom object against its CRD's openAPIV3Schema."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        import jsonschema

        self.schema = schema or crd_schema()
        self.schema_without_metadata = {
            **self.schema,
            "properties": {k: v for k, v in self.schema["properties"].items() if k != "metadata"},
            # metadata is checked above (the server's ObjectMeta), even where the CRD requires it
            "required": [k for k in self.schema.get("required", []) if k != "metadata"],
        }
        self.validator = jsonschema.Draft7Validator(self.schema_without_metadata)

    def admit(self, obj: dict[str, Any]) -> list[str]:
        """Prune unknown fields (returned as warnings), then validate; raises InvalidError."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise InvalidError([("metadata.name", "Required value: name or generateName is required")])
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", meta["name"]) or len(meta["name"]) > 63:
            raise InvalidError(
                [("metadata.name", f'Invalid value: "{meta["name"]}": a lowercase RFC 1123 label')]
            )
        meta = obj.pop("metadata")  # ObjectMeta is the server's own, not the CRD schema's
        try:
            dropped = prune(obj, self.schema_without_metadata)
            errors = sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        finally:
            obj["metadata"] = meta
        if errors:
            raise InvalidError([(_path(e.absolute_path) or "<root>", e.message) for e in errors])
        return dropped


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
        self.observed = 0  # the generation the controller has reconciled
        self.last_status: dict[str, Any] = {}  # what GET shows until it has
        self.deployments: dict[str, dict[str, Any]] = {}  # Standard mode: name -> {"spec", "fate", "polls"}

    @property
    def standard(self) -> bool:
        return (self.obj["metadata"].get("annotations") or {}).get(MODE_ANNOTATION) in (
            "Standard",
            "RawDeployment",
        )

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    def deployment_of(self, predictor_name: str | None) -> str:
        return f"{self.name}-{predictor_name}-predictor" if predictor_name else f"{self.name}-predictor"

    @property
    def stable(self) -> str:
        return self.deployment_of(self.obj["spec"]["predictor"].get("name"))

    def canaries(self) -> list[tuple[str, dict[str, Any]]]:
        """(Deployment name, canary entry) for each ``spec.canary`` entry."""
        return [
            (self.deployment_of(c["predictor"].get("name")), c) for c in self.obj["spec"].get("canary") or []
        ]


class FakeKubeApi:
    def __init__(self) -> None:
        self.services: dict[tuple[str, str], _Service] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.forbid: set[str] = set()  # verbs (get/create/patch/update) answered with 403
        self.hide_next_get = False  # GET says 404 once although the object exists (a create race -> 409)
        self.revision_script: list[str] = []  # fate of each new revision, in order; default "ready"
        self.smoke_script: dict[str, str] = {}  # revision -> "ok" | "bad"; default "ok"
        self.polls_until_ready = 2
        self.serve_instead: dict[str, str] = {}  # storage URI -> the model a revision really loads
        self.resource_version = 0
        self.validator = SchemaValidator()
        self._models: dict[str, Any] = {}
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
        """The Host of each predict call (which cluster-local address was queried)."""
        return [path.split(" ", 1)[1] for m, path, _ in self.requests if path.startswith("predict ")]

    def traffic(self, namespace: str, name: str) -> dict[str, int]:
        svc = self.services[(namespace, name)]
        if svc.standard:
            canaries = {dep: int(c["trafficPercent"]) for dep, c in svc.canaries()}
            return {svc.stable: 100 - sum(canaries.values()), **canaries}
        status = self._status(svc)
        return {t["revisionName"]: t["percent"] for t in status["components"]["predictor"]["traffic"]}

    def seed(self, manifest: dict[str, Any]) -> None:
        """An InferenceService already rolled out (revision 1 at 100 %)."""
        svc = _Service(json.loads(json.dumps(manifest)))
        self.validator.admit(svc.obj)
        svc.obj["metadata"]["generation"] = svc.observed = 1
        svc.obj["metadata"]["resourceVersion"] = self._next_version()
        svc.revisions.append(
            {"name": self._rev_name(svc, 1), "spec": _model_spec(manifest), "fate": "ready", "polls": 99}
        )
        svc.rolled_out = svc.revisions[0]["name"]
        if svc.standard:
            self._validate_standard(svc.obj)
            for dep, spec in self._wanted_deployments(svc).items():
                svc.deployments[dep] = {"spec": spec, "fate": "ready", "polls": 99}
        svc.last_status = self._status(svc)
        self.services[(manifest["metadata"]["namespace"], manifest["metadata"]["name"])] = svc

    # --- the controller -----------------------------------------------------------------------
    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    @staticmethod
    def _rev_name(svc: _Service, n: int) -> str:
        return f"{svc.obj['metadata']['name']}-predictor-{n:05d}"

    def _reconcile(self, svc: _Service, spec_before: Any = None) -> None:
        """Record a write: a new revision for a new model spec, generation +1 when the spec
        changed, a new resourceVersion always. The status catches up on a later GET."""
        spec = _model_spec(svc.obj)
        if svc.standard:
            self._reconcile_deployments(svc)  # Deployments, no Knative revisions
        elif not svc.revisions or svc.revisions[-1]["spec"] != spec:
            fate = self.revision_script.pop(0) if self.revision_script else "ready"
            svc.revisions.append(
                {"name": self._rev_name(svc, len(svc.revisions) + 1), "spec": spec, "fate": fate, "polls": 0}
            )
        if spec_before is None or spec_before != svc.obj.get("spec"):
            svc.obj["metadata"]["generation"] = svc.obj["metadata"].get("generation", 0) + 1
        svc.obj["metadata"]["resourceVersion"] = self._next_version()

    @staticmethod
    def _pod_spec(predictor: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in predictor.items() if k not in _NOT_POD_SPEC}

    def _wanted_deployments(self, svc: _Service) -> dict[str, dict[str, Any]]:
        wanted = {svc.stable: self._pod_spec(svc.obj["spec"]["predictor"])}
        for dep, entry in svc.canaries():
            wanted[dep] = self._pod_spec(entry["predictor"])
        return wanted

    def _reconcile_deployments(self, svc: _Service) -> None:
        """Standard mode: a Deployment per predictor; a new pod spec starts it (again), a name
        retargeted to an existing Deployment with the same pod spec keeps its pods."""
        wanted = self._wanted_deployments(svc)
        for dep, spec in wanted.items():
            current = svc.deployments.get(dep)
            if current is None or current["spec"] != spec:
                fate = self.revision_script.pop(0) if self.revision_script else "ready"
                svc.deployments[dep] = {"spec": spec, "fate": fate, "polls": 0}
        for dep in set(svc.deployments) - set(wanted):
            del svc.deployments[dep]  # an orphan: removed canary, or the stable one after promotion

    @staticmethod
    def _validate_standard(obj: dict[str, Any]) -> None:
        """KServe's validating webhook on ``spec.canary`` (what a write must satisfy)."""
        canaries = obj["spec"].get("canary") or []
        if not canaries:
            return
        mode = (obj["metadata"].get("annotations") or {}).get(MODE_ANNOTATION)
        if mode not in ("Standard", "RawDeployment"):
            raise DeniedError(
                f"spec.canary is only supported in Standard deployment mode, not {mode or 'Knative'}"
            )
        stable = obj["spec"]["predictor"].get("name") or ""
        names = [str(c["predictor"].get("name") or "") for c in canaries]
        for n in names:
            if not n or not _DNS_LABEL.match(n):
                raise DeniedError(f"spec.canary[].predictor.name {n!r} must be a DNS-1123 label")
        if len(set(names)) != len(names) or stable in names:
            raise DeniedError(f"canary names must be unique and differ from the stable predictor's: {names}")
        if sum(int(c["trafficPercent"]) for c in canaries) > 100:
            raise DeniedError("the canaries' trafficPercent must sum to at most 100")
        for c in canaries:
            bad = sorted(set(c["predictor"]) & set(_CANARY_AUTOSCALING))
            if bad:
                raise DeniedError(f"canary {c['predictor']['name']!r} may not set autoscaling fields {bad}")

    def _observe(self, svc: _Service) -> dict[str, Any]:
        """The status a GET shows: from before the last write until the controller has seen it."""
        generation = svc.obj["metadata"]["generation"]
        if svc.observed < generation:
            shown = svc.last_status
            svc.observed = generation  # reconciled by the next GET
            return shown
        for counted in [*svc.revisions[-1:], *svc.deployments.values()]:
            counted["polls"] += 1
        svc.last_status = self._status(svc)
        return svc.last_status

    def _served_model(self, svc: _Service, revision: str) -> str:
        if svc.standard:
            spec = svc.deployments[revision]["spec"]
        else:
            spec = next(r for r in svc.revisions if r["name"] == revision)["spec"]
        env = {e["name"]: e.get("value") for c in spec.get("containers", []) for e in c.get("env", [])}
        uri = env.get("STORAGE_URI") or spec.get("model", {}).get("storageUri", "")
        return self.serve_instead.get(uri, uri)

    def _score(self, uri: str, instances: list[dict[str, Any]]) -> list[float]:
        """The PDs the model at ``uri`` gives ``instances`` (FIXED_PD when no model is there)."""
        if uri not in self._models:
            self._models[uri] = _load_model(uri)
        model = self._models[uri]
        if model is None:
            return [FIXED_PD] * len(instances)
        from credit_risk.spec import contract

        columns = {f.name: [i.get(f.name) for i in instances] for f in model.spec.model_features}
        return [float(p) for p in model.predict_arrays(contract.columns_to_arrays(columns, model.spec))]

    def _ready(self, rev: dict[str, Any]) -> bool:
        return rev["fate"] == "ready" and rev["polls"] >= self.polls_until_ready

    def _condition(self, dep: dict[str, Any], what: str) -> dict[str, Any]:
        if self._ready(dep):
            return {"type": "Ready", "status": "True"}
        if dep["fate"] == "fail":
            return {"type": "Ready", "status": "False", "reason": "ExitCode",
                    "message": f"{what}: container exited with code 1"}  # fmt: skip
        return {"type": "Ready", "status": "Unknown", "reason": "Progressing"}

    def _standard_status(self, svc: _Service) -> dict[str, Any]:
        name, ns = svc.name, svc.obj["metadata"]["namespace"]
        ready = self._condition(svc.deployments[svc.stable], f"Deployment {svc.stable}")
        conditions = [{"type": "PredictorReady", "status": ready["status"]}, ready]
        statuses = [
            {"name": c["predictor"]["name"], "ready": self._ready(svc.deployments[dep]),
             "trafficPercent": int(c["trafficPercent"])}
            for dep, c in svc.canaries()
        ]  # fmt: skip
        if statuses:
            every = all(c["ready"] for c in statuses)
            conditions.append({"type": "CanaryPredictorReady", "status": "True" if every else "False",
                               "reason": "AllCanariesReady" if every else "CanariesNotReady"})  # fmt: skip
        status: dict[str, Any] = {
            "observedGeneration": svc.obj["metadata"]["generation"],
            "url": f"http://{name}-{ns}.{EXTERNAL_DOMAIN}",
            "address": {"url": f"http://{name}-predictor.{ns}.{CLUSTER_DOMAIN}"},
            "conditions": conditions,
            "components": {"predictor": {"url": f"http://{name}-predictor-{ns}.{EXTERNAL_DOMAIN}"}},
        }
        if statuses:
            status["canaryStatuses"] = statuses
        return status

    def _status(self, svc: _Service) -> dict[str, Any]:
        if svc.standard:
            return self._standard_status(svc)
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
                "url": f"http://{tag}-{svc.obj['metadata']['name']}-predictor-{svc.obj['metadata']['namespace']}"
                f".{EXTERNAL_DOMAIN}",
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
        name, ns = svc.obj["metadata"]["name"], svc.obj["metadata"]["namespace"]
        return {
            "observedGeneration": svc.obj["metadata"]["generation"],
            "url": f"http://{name}-{ns}.{EXTERNAL_DOMAIN}" if svc.rolled_out else "",
            "address": {"url": f"http://{name}.{ns}.{CLUSTER_DOMAIN}"} if svc.rolled_out else {},
            "conditions": [{"type": "PredictorReady", "status": ready["status"]}, ready],
            "components": {
                "predictor": {
                    "latestCreatedRevision": latest["name"],
                    "latestReadyRevision": latest_ready,
                    "traffic": traffic,
                }
            },
        }

    def _view(self, svc: _Service, status: dict[str, Any] | None = None) -> dict[str, Any]:
        return copy.deepcopy({**svc.obj, "status": svc.last_status if status is None else status})

    def _route_host(self, host: str) -> tuple[_Service, str] | None:
        """The (service, revision) a cluster-local host name reaches, or None."""
        for (ns, name), svc in self.services.items():
            if svc.standard:
                if host == f"{name}-predictor.{ns}.{CLUSTER_DOMAIN}":
                    return svc, svc.stable
                for dep in svc.deployments:
                    if host == f"{dep}.{ns}.{CLUSTER_DOMAIN}":
                        return svc, dep
                continue
            status = self._status(svc)
            traffic = status["components"]["predictor"]["traffic"]
            if host == f"{name}.{ns}.{CLUSTER_DOMAIN}" and traffic:
                return svc, max(traffic, key=lambda t: t["percent"])["revisionName"]
            for t in traffic:
                if host == f"{t['tag']}-{name}-predictor.{ns}.{CLUSTER_DOMAIN}":
                    return svc, t["revisionName"]
        return None

    # --- HTTP ---------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            warnings: list[str] = []  # noqa: RUF012 - reset per request in _handle

            def _send(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for field in self.warnings:
                    self.send_header("Warning", f'299 - "unknown field \\"{field}\\""')
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
                host = (self.headers.get("Host") or "").split(":")[0]
                self.warnings = []
                with fake._lock:
                    if host.endswith(CLUSTER_DOMAIN):
                        fake.requests.append((method, f"predict {host}", body))
                        return self._predict(method, host, body)
                    fake.requests.append((method, self.path, body))
                    try:
                        self._dispatch(method, body)
                    except DeniedError as e:
                        webhook = "inferenceservice.kserve-webhook-server.validator"
                        self._status(
                            403, "Forbidden", f'admission webhook "{webhook}" denied the request: {e}'
                        )
                    except InvalidError as e:
                        name = ((body or {}).get("metadata") or {}).get("name", "")
                        self._send(422, {
                            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": f'InferenceService.serving.kserve.io "{name}" is invalid: {e}',
                            "reason": "Invalid", "code": 422,
                            "details": {
                                "name": name, "group": "serving.kserve.io", "kind": "InferenceService",
                                "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                           for f, m in e.causes],
                            },
                        })  # fmt: skip

            def _predict(self, method: str, host: str, body: Any) -> None:
                routed = fake._route_host(host)
                match = _PREDICT.match(self.path)
                if routed is None or not match or method != "POST":
                    return self._send(404, {"error": f"no route to {host}{self.path}"})
                svc, revision = routed
                if fake.smoke_script.get(revision, "ok") != "ok":
                    return self._send(500, {"error": "model failed to load: simulated"})
                instances = (body or {}).get("instances", [])
                pds = fake._score(fake._served_model(svc, revision), instances)
                return self._send(200, {"predictions": [{"pd": p} for p in pds]})

            def _admit(self, obj: dict[str, Any]) -> None:
                self.warnings = fake.validator.admit(obj)
                fake._validate_standard(obj)

            def _dispatch(self, method: str, body: Any) -> None:  # noqa: PLR0911 - one router
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
                    obj = copy.deepcopy({**body, "metadata": {**body["metadata"], "namespace": namespace}})
                    obj["metadata"].pop("resourceVersion", None)
                    obj.pop("status", None)
                    self._admit(obj)
                    svc = _Service(obj)
                    fake.services[key] = svc
                    fake._reconcile(svc)
                    return self._send(201, fake._view(svc, {}))
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
                    return self._send(200, fake._view(svc, fake._observe(svc)))
                sent_version = ((body or {}).get("metadata") or {}).get("resourceVersion")
                if sent_version is not None and sent_version != svc.obj["metadata"]["resourceVersion"]:
                    return self._status(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io "{key[1]}": '
                        "the object has been modified; please apply your changes to the latest version "
                        "and try again",
                    )
                before = copy.deepcopy(svc.obj.get("spec"))
                if method == "PATCH":
                    if self.headers.get("Content-Type") != "application/merge-patch+json":
                        return self._status(
                            415,
                            "UnsupportedMediaType",
                            f"unsupported patch type {self.headers.get('Content-Type')}",
                        )
                    candidate = merge_patch(
                        copy.deepcopy(svc.obj), {k: v for k, v in body.items() if k != "status"}
                    )
                else:
                    candidate = copy.deepcopy({k: v for k, v in body.items() if k != "status"})
                candidate["metadata"] = {
                    **candidate.get("metadata", {}),
                    "name": key[1],
                    "namespace": namespace,
                    "generation": svc.obj["metadata"]["generation"],
                    "resourceVersion": svc.obj["metadata"]["resourceVersion"],
                }
                self._admit(candidate)
                svc.obj = candidate
                fake._reconcile(svc, before)
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


def _load_model(uri: str) -> Any:
    """An ExportedModel for a local model directory or a published gs:// or s3:// version, else None."""
    from pathlib import Path

    from credit_risk import storage
    from credit_risk.modeling.scoring import ExportedModel

    if storage.is_remote(uri):
        # the emulator of that URI's store (another store's emulator running in this process, e.g.
        # S3 for a gs:// URI, is no store for it): none = a policy-only test's made-up URI
        emulators = {storage.gcs.SCHEME: "STORAGE_EMULATOR_HOST", storage.s3.SCHEME: "AWS_ENDPOINT_URL_S3"}
        emulator = emulators.get(storage.scheme(uri), "")
        if not os.environ.get(emulator):
            return None
        try:
            local = storage.download_published(uri, tempfile.mkdtemp(prefix="fake-kserve-"))
        except (FileNotFoundError, CreditRiskError):
            return None
        return ExportedModel(local)
    return ExportedModel(uri) if (Path(uri) / "saved_model.pb").exists() else None


def _model_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The predictor spec a revision is made of: everything but the traffic split."""
    return {k: v for k, v in obj["spec"]["predictor"].items() if k != "canaryTrafficPercent"}
