"""Apply an InferenceService through the Kubernetes API and roll it out safely.

First deployment: create at 100 %, wait until Ready, smoke-query it. Update: patch the new predictor
in with ``canaryTrafficPercent``, wait until the new revision is Ready, smoke-query the canary, then
promote (drop ``canaryTrafficPercent`` -> 100 %) or roll back (``canaryTrafficPercent: 0`` sends all
traffic to the previous revision, KServe's documented rollback) and fail with the reason.

Every wait reads status only once the controller has seen our write (``status.observedGeneration``
>= the ``metadata.generation`` the write returned): a status from before it says nothing about
the new model. Smoke queries go to cluster-local addresses - a pipeline pod is inside the cluster,
while ``status.url`` and the traffic tags' URLs are external host names behind the ingress gateway
(and, on Kubeflow, its login): the whole service at ``status.address.url``, one revision at its
traffic tag's cluster-local service ``<tag>-<name>-predictor.<namespace>.svc.cluster.local``.

In **Standard** mode (annotation ``serving.kserve.io/deploymentMode: Standard``: a Deployment per
predictor, no Knative revisions) the canary is KServe's ``spec.canary`` list (kserve >= 0.20): the
new predictor goes out under its own name as a second Deployment and Service
``<name>-<canary>-predictor`` with ``trafficPercent`` of the traffic, is smoke-queried at that
Service, then promoted by retargeting the stable predictor to it (``spec.predictor.name`` = the
canary's name, ``spec.canary: []``: no pod restarts) or rolled back by removing the canary entry.
The canary predictor carries no autoscaling fields (KServe's validation refuses them there).

``InferenceServiceApi`` is the only place that touches the ``kubernetes`` client; ``rollout`` takes
any object with its four methods, so the policy is tested without a cluster.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from credit_risk import kube
from credit_risk.errors import CreditRiskError

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
RESOURCE = f"{PLURAL}.{GROUP}"
# The model that takes all of the traffic: set on create and on promotion, left alone by a canary
# and by a rollback - unlike the predictor spec, which holds the newest model either way.
SERVING_URI_ANNOTATION = "credit-risk/serving-storage-uri"
CLUSTER_DOMAIN = "svc.cluster.local"  # Kubernetes' cluster-local DNS suffix
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
STANDARD = "Standard"  # KServe's name (older: RawDeployment); anything else rolls out as Knative
MODEL_VERSION_KEY = "credit-risk/model-version"  # label and annotation of a rendered InferenceService
# a canary predictor may not carry these (KServe's webhook: the stable predictor's HPA scales both)
CANARY_FORBIDDEN_FIELDS = ("maxReplicas", "scaleMetric", "scaleTarget", "autoScaling")


class KubeApiError(CreditRiskError):
    """The Kubernetes API refused or failed a call (names the verb, object and API answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class RbacError(KubeApiError):
    """403: the service account lacks a verb on InferenceServices (names which one)."""


class RolloutError(CreditRiskError):
    """The new model did not become Ready or failed its smoke query; traffic was rolled back."""


class SmokeTestError(CreditRiskError):
    """A deployed (or about-to-be-deployed) model failed to answer the sample requests."""


class InferenceServiceStore(Protocol):
    namespace: str

    def get(self, name: str) -> dict[str, Any] | None: ...
    def create(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


class InferenceServiceApi:
    """InferenceServices of one namespace through ``CustomObjectsApi``; API errors become
    ``KubeApiError``/``RbacError`` naming the verb, so a missing RBAC rule is obvious."""

    def __init__(self, namespace: str, client: Any | None = None, host: str | None = None):
        from kubernetes.client import CustomObjectsApi

        self.namespace = namespace
        self._api = CustomObjectsApi(client or kube.api_client(host))

    def _call(self, verb: str, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as e:
            where = f"{RESOURCE} {name!r} in namespace {self.namespace!r}"
            if e.status == 403:
                raise RbacError(
                    f"forbidden: the pipeline's service account may not {verb!r} {where}. Grant verb "
                    f"{verb!r} on {RESOURCE} in the Role of manifests/base/rbac.yaml "
                    f"(credit-risk-deployer). API said: {_api_message(e)}",
                    e.status,
                ) from e
            raise KubeApiError(f"{verb} {where} failed: HTTP {e.status} {_api_message(e)}", e.status) from e

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return self._call(
                "get",
                name,
                lambda: self._api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name),
            )
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        return self._call(
            "create",
            name,
            lambda: self._api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body),
        )

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        # a dict body is sent as application/merge-patch+json: null deletes a key
        return self._call(
            "patch",
            name,
            lambda: self._api.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, body
            ),
        )


def _api_message(e: Any) -> str:
    import json

    try:
        return str(json.loads(e.body).get("message", e.reason))
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)


@dataclass(frozen=True)
class ServiceStatus:
    """What the rollout needs from ``status``: readiness, revisions, traffic and URLs."""

    ready: bool
    failure: str  # a False condition's reason/message, "" while progressing or ready
    url: str  # external (status.url): for people and the record, not reachable from a pod
    latest_created: str
    latest_ready: str
    traffic: list[dict[str, Any]]
    observed_generation: int
    address: str = ""  # cluster-local (status.address.url): what a pipeline pod can reach
    name: str = ""
    namespace: str = ""
    canaries: tuple[dict[str, Any], ...] = ()  # Standard mode: status.canaryStatuses

    @classmethod
    def of(cls, isvc: dict[str, Any]) -> ServiceStatus:
        status = isvc.get("status") or {}
        conditions = status.get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        failure = "; ".join(
            f"{c.get('type')}: {c.get('reason', '')} {c.get('message', '')}".strip()
            for c in conditions
            if c.get("status") == "False" and c.get("reason") in _TERMINAL_REASONS
        )
        predictor = (status.get("components") or {}).get("predictor") or {}
        address = (status.get("address") or {}).get("url", "")
        return cls(
            ready=ready,
            failure=failure,
            url=status.get("url", "") or address,
            latest_created=predictor.get("latestCreatedRevision", ""),
            latest_ready=predictor.get("latestReadyRevision", ""),
            traffic=list(predictor.get("traffic") or []),
            observed_generation=int(status.get("observedGeneration", 0) or 0),
            address=address,
            name=str((isvc.get("metadata") or {}).get("name", "")),
            namespace=str((isvc.get("metadata") or {}).get("namespace", "")),
            canaries=tuple(status.get("canaryStatuses") or ()),
        )

    def canary_ready(self, name: str, percent: int) -> bool:
        """Standard mode: the canary ``name`` is Ready and takes ``percent`` of the traffic."""
        return any(
            c.get("name") == name and c.get("ready") is True and int(c.get("trafficPercent", -1)) == percent
            for c in self.canaries
        )

    def percent_to(self, revision: str) -> int:
        return sum(int(t.get("percent", 0) or 0) for t in self.traffic if t.get("revisionName") == revision)

    def url_of(self, revision: str) -> str:
        """The cluster-local URL reaching only ``revision`` (its traffic tag's service), else the
        service's cluster-local address (the only revision then takes all traffic)."""
        for t in self.traffic:
            if t.get("revisionName") == revision and t.get("tag") and self.name and self.namespace:
                return f"http://{t['tag']}-{self.name}-predictor.{self.namespace}.{CLUSTER_DOMAIN}"
        if not self.address:
            raise RolloutError(
                f"InferenceService {self.name!r} reports no status.address.url: no cluster-local address "
                "to smoke-query (status.url is external and not reachable from a pipeline pod)"
            )
        return self.address


# Conditions that will not heal by waiting (Knative/KServe reasons); anything else is "progressing".
_TERMINAL_REASONS = {"RevisionFailed", "RevisionMissing", "ContainerMissing", "ExitCode", "ImagePullBackOff"}


@dataclass
class RolloutResult:
    action: str  # created | promoted | rolled_back
    url: str
    revision: str
    previous_revision: str
    traffic: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutConfig:
    canary_traffic_percent: int = 10
    timeout_seconds: float = 600.0
    poll_seconds: float = 5.0

    def __post_init__(self) -> None:
        from credit_risk.errors import ConfigError

        if not 1 <= self.canary_traffic_percent <= 99:
            raise ConfigError(
                f"canary_traffic_percent must be 1..99 (a first deployment always gets 100), "
                f"got {self.canary_traffic_percent}"
            )
        if self.timeout_seconds <= 0 or self.poll_seconds <= 0:
            raise ConfigError(
                "timeout_seconds and poll_seconds must be > 0, got "
                f"{self.timeout_seconds}, {self.poll_seconds}"
            )


Smoke = Callable[[str], Any]  # raises SmokeTestError when the model at this URL does not answer well


def wait_until(
    api: InferenceServiceStore,
    name: str,
    done: Callable[[ServiceStatus], bool],
    what: str,
    config: RolloutConfig,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    generation: int = 0,
) -> ServiceStatus:
    """Poll until the controller has observed ``generation`` and ``done(status)``; a terminal
    failure condition (of a current status) or the timeout raises RolloutError."""
    deadline = clock() + config.timeout_seconds
    while True:
        isvc = api.get(name)
        if isvc is None:
            raise RolloutError(f"InferenceService {name!r} disappeared while waiting for {what}")
        status = ServiceStatus.of(isvc)
        current = status.observed_generation >= generation
        if current and done(status):
            return status
        if current and status.failure:
            raise RolloutError(f"{what} failed: {status.failure}")
        if clock() >= deadline:
            canaries = [
                f"canary {c.get('name')} ready={c.get('ready')} at {c.get('trafficPercent')}%"
                for c in status.canaries
            ]
            seen = ", ".join(canaries) or (
                f"latest created {status.latest_created or '-'}, ready {status.latest_ready or '-'}"
            )
            raise RolloutError(
                f"timed out after {config.timeout_seconds:g}s waiting for {what} ({seen}, "
                f"Ready={status.ready}, observed generation {status.observed_generation} of {generation})"
            )
        sleep(config.poll_seconds)


def rollout(
    api: InferenceServiceStore,
    manifest: dict[str, Any],
    smoke: Smoke,
    config: RolloutConfig,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutResult:
    """Create or canary-update ``manifest``; promote only a Ready model that passed ``smoke``."""
    name = manifest["metadata"]["name"]

    def wait(done: Callable[[ServiceStatus], bool], what: str, written: dict[str, Any]) -> ServiceStatus:
        generation = int((written.get("metadata") or {}).get("generation", 0) or 0)
        return wait_until(api, name, done, what, config, sleep, clock, generation)

    standard = (manifest["metadata"].get("annotations") or {}).get(MODE_ANNOTATION) == STANDARD
    existing = api.get(name)
    if existing is None:
        try:
            created = api.create(manifest)
        except KubeApiError as e:
            if e.status != 409:
                raise
            log.info("InferenceService %s was created concurrently (409); updating it instead", name)
            existing = api.get(name)
            if existing is None:
                raise
        else:
            log.info("created InferenceService %s/%s; waiting for Ready", api.namespace, name)
            return _first_deployment(manifest, created, smoke, wait, standard)

    if standard:
        return _rollout_standard(api, manifest, existing, smoke, config, wait)
    previous = ServiceStatus.of(existing)
    old_revision = previous.latest_ready
    canary = config.canary_traffic_percent
    predictor = {**manifest["spec"]["predictor"], "canaryTrafficPercent": canary}
    patched = api.patch(name, {"metadata": _meta_patch(manifest), "spec": {"predictor": predictor}})
    log.info(
        "patched %s with the new model at %d%% canary (previous revision %s)", name, canary, old_revision
    )
    try:
        status = wait(
            lambda s: (
                s.ready
                and bool(s.latest_created)
                and s.latest_created != old_revision
                and s.latest_ready == s.latest_created
                and s.percent_to(s.latest_created) == canary
            ),
            f"the canary revision to become Ready with {canary}% of traffic",
            patched,
        )
        new_revision = status.latest_ready
        smoke(status.url_of(new_revision))
    except (RolloutError, SmokeTestError) as e:
        back = api.patch(name, {"spec": {"predictor": {"canaryTrafficPercent": 0}}})
        log.error("rolled %s back to %s: %s", name, old_revision or "the previous revision", e)
        returned = f"all traffic returned to {old_revision or 'the previous revision'}"
        try:
            wait(
                lambda s: s.percent_to(old_revision) == 100, f"{old_revision} to take all traffic back", back
            )
        except RolloutError as stuck:
            returned = f"the rollback was sent but not confirmed ({stuck})"
        raise RolloutError(f"rolled back: {returned}; the new model was not promoted because {e}") from e
    serving = manifest["metadata"].get("annotations", {}).get(SERVING_URI_ANNOTATION)
    promote: dict[str, Any] = {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    if serving:
        promote["metadata"] = {"annotations": {SERVING_URI_ANNOTATION: serving}}
    promoted = api.patch(name, promote)
    status = wait(
        lambda s: s.ready and s.percent_to(new_revision) == 100,
        f"{new_revision} to receive 100% of traffic",
        promoted,
    )
    log.info("promoted %s: %s now serves 100%% (was %s)", name, new_revision, old_revision)
    return RolloutResult("promoted", status.url, new_revision, old_revision, status.traffic)


Wait = Callable[[Callable[[ServiceStatus], bool], str, dict[str, Any]], ServiceStatus]


def _first_deployment(
    manifest: dict[str, Any], created: dict[str, Any], smoke: Smoke, wait: Wait, standard: bool
) -> RolloutResult:
    """A new InferenceService: wait until Ready, smoke-query it; no previous model to fall back on."""
    if standard:
        first = deployment_name(manifest["metadata"]["name"], manifest["spec"]["predictor"].get("name", ""))
        status = wait(lambda s: s.ready, f"the predictor Deployment {first} to become Ready", created)
        target, revision, traffic = status.address, first, _standard_traffic(first)
    else:
        status = wait(
            lambda s: s.ready and bool(s.latest_ready), "the first revision to become Ready", created
        )
        revision, traffic = status.latest_ready, status.traffic
        target = status.url_of(revision)
    try:
        if not target:
            raise SmokeTestError("the InferenceService reports no cluster-local status.address.url")
        smoke(target)
    except SmokeTestError as e:
        raise RolloutError(
            f"first deployment {revision} is Ready but failed its smoke query: {e}. "
            "There is no previous revision to roll back to; delete or fix the InferenceService."
        ) from e
    return RolloutResult("created", status.url, revision, "", traffic)


def deployment_name(service: str, predictor_name: str = "") -> str:
    """The Deployment (and Service) KServe's Standard mode runs a predictor as."""
    return f"{service}-{predictor_name}-predictor" if predictor_name else f"{service}-predictor"


def canary_name(manifest: dict[str, Any]) -> str:
    """The new predictor's name in Standard mode: ``v`` + 6 hex digits of the model version
    (``m-<fingerprint>``; any other version string is hashed), so ``<service>-<canary>-predictor``
    stays a 63-character DNS label for any valid service name."""
    version = str((manifest["metadata"].get("annotations") or {}).get(MODEL_VERSION_KEY, ""))
    match = re.fullmatch(r"m-([0-9a-f]{6,})", version)
    return f"v{(match.group(1) if match else hashlib.sha256(version.encode()).hexdigest())[:6]}"


def _standard_traffic(deployment: str) -> list[dict[str, Any]]:
    """The record's traffic split once one Deployment serves everything (Standard mode)."""
    return [{"revisionName": deployment, "percent": 100, "tag": "stable"}]


def _rollout_standard(
    api: InferenceServiceStore,
    manifest: dict[str, Any],
    existing: dict[str, Any],
    smoke: Smoke,
    config: RolloutConfig,
    wait: Wait,
) -> RolloutResult:
    """Standard mode: the new predictor as a ``spec.canary`` entry, smoke-queried at its own
    Service, then promoted (the stable predictor retargeted to it) or removed again."""
    name, namespace = manifest["metadata"]["name"], api.namespace
    stable_name = str(((existing.get("spec") or {}).get("predictor") or {}).get("name") or "")
    old, new_name = deployment_name(name, stable_name), canary_name(manifest)
    new = deployment_name(name, new_name)
    if new_name == stable_name:
        raise RolloutError(f"{new} already serves this model version; nothing to roll out")
    percent = config.canary_traffic_percent
    predictor = {k: v for k, v in manifest["spec"]["predictor"].items() if k not in CANARY_FORBIDDEN_FIELDS}
    entry = {"trafficPercent": percent, "predictor": {**predictor, "name": new_name}}
    patched = api.patch(name, {"metadata": _meta_patch(manifest), "spec": {"canary": [entry]}})
    log.info("added canary %s to %s at %d%% (stable %s)", new, name, percent, old)
    try:
        wait(
            lambda s: s.ready and s.canary_ready(new_name, percent),
            f"the canary Deployment {new} to become Ready with {percent}% of traffic",
            patched,
        )
        smoke(f"http://{new}.{namespace}.{CLUSTER_DOMAIN}")
    except (RolloutError, SmokeTestError) as e:
        back = api.patch(name, {"spec": {"canary": []}})
        log.error("removed canary %s from %s: %s", new, name, e)
        returned = f"the canary was removed and {old} serves all traffic"
        try:
            wait(lambda s: s.ready and not s.canaries, f"{old} to take all traffic back", back)
        except RolloutError as stuck:
            returned = f"the rollback was sent but not confirmed ({stuck})"
        raise RolloutError(f"rolled back: {returned}; the new model was not promoted because {e}") from e
    promote: dict[str, Any] = {
        "spec": {"predictor": {**manifest["spec"]["predictor"], "name": new_name}, "canary": []}
    }
    serving = manifest["metadata"].get("annotations", {}).get(SERVING_URI_ANNOTATION)
    if serving:
        promote["metadata"] = {"annotations": {SERVING_URI_ANNOTATION: serving}}
    promoted = api.patch(name, promote)
    status = wait(lambda s: s.ready and not s.canaries, f"{new} to receive 100% of traffic", promoted)
    log.info("promoted %s: %s now serves 100%% (was %s)", name, new, old)
    return RolloutResult("promoted", status.url, new, old, _standard_traffic(new))


def _meta_patch(manifest: dict[str, Any]) -> dict[str, Any]:
    """The canary's labels and annotations - except which model serves, still the previous one."""
    meta = manifest["metadata"]
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != SERVING_URI_ANNOTATION}
    return {"labels": meta.get("labels", {}), "annotations": annotations}


CLUSTER_SCHEME = "isvc://"


def serving_model_uri(api: InferenceServiceStore, name: str) -> str | None:
    """The storage URI of the model taking all of InferenceService ``name``'s traffic (None: no
    such InferenceService yet, a first deployment)."""
    found = api.get(name)
    if found is None:
        return None
    uri = found.get("metadata", {}).get("annotations", {}).get(SERVING_URI_ANNOTATION)
    if not uri:
        raise KubeApiError(
            f"InferenceService {name!r} in namespace {api.namespace!r} has no {SERVING_URI_ANNOTATION!r} "
            "annotation, so it was not rolled out by this package; give the champion's model URI instead"
        )
    return str(uri)


def resolve_cluster_uri(uri: str, host: str | None = None) -> str | None:
    """``isvc://<namespace>/<name>`` -> the storage URI of the model it serves (None if absent)."""
    namespace, _, name = uri.removeprefix(CLUSTER_SCHEME).partition("/")
    if not namespace or not name or "/" in name:
        raise KubeApiError(f"{uri!r} is not isvc://<namespace>/<name>")
    return serving_model_uri(InferenceServiceApi(namespace, host=host), name)
