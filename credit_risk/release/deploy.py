"""Deploy an approved model: infra-validate, publish a version, render and (optionally) roll out.

Reads the approval first and fails closed: a rejected (or missing / unreadable) approval is never
deployed and nothing else happens - no smoke test, no upload, no Kubernetes call; the record says
"not deployed" and why. For an approved model, in order (each step only after the previous passed):
  1. infra validation: our predictor loads the model in the serving environment and answers the
     sample requests (``infra_validation``);
  2. publish the model as an immutable, content-addressed version under ``serving_root``;
  3. render the InferenceService pointing at that version;
  4. with ``apply``: create/patch it through the Kubernetes API with a canary, smoke-query the
     canary and promote, or roll back and fail (``rollout``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from credit_risk import __version__, storage
from credit_risk.errors import ConfigError, CreditRiskError, DeployError
from credit_risk.evidence.gate import Decision
from credit_risk.lineage import version_name
from credit_risk.release import images
from credit_risk.release.rollout import MODE_ANNOTATION, MODEL_VERSION_KEY, SERVING_URI_ANNOTATION, STANDARD

log = logging.getLogger(__name__)

_DNS1123 = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts STORAGE_URI's content
RUN_AS_UID = 10001  # the non-root user of docker/serving.Dockerfile


@dataclass(frozen=True)
class DeployConfig:
    name: str
    namespace: str = "credit-risk"
    serving_image: str = field(default_factory=images.serving_image)
    service_account: str = "credit-risk-predictor"
    min_replicas: int = 1
    max_replicas: int = 3
    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "2Gi"
    workers: int = 2  # predictor worker processes per pod (one per CPU of cpu_limit)
    scale_metric: str = "concurrency"  # KServe autoscaling: in-flight requests per replica
    scale_target: int = 8
    logger_url: str = ""  # KServe payload logger sink (CloudEvents); "" = no payload logging
    serving_root: str = ""  # publish versions under <serving_root>/<name>/<version>; "" = serve model_uri
    apply: bool = False  # create/patch the InferenceService through the Kubernetes API
    kube_host: str = ""  # explicit API server URL; "" = in-cluster config, else ~/.kube/config
    canary_traffic_percent: int = 10
    rollout_timeout_seconds: float = 600.0
    poll_seconds: float = 5.0
    # KServe's deployment mode (annotation serving.kserve.io/deploymentMode; older names Serverless /
    # RawDeployment). Knative: revisions, traffic split, tag routing, concurrency autoscaling;
    # Standard: a Deployment + HPA (cpu/memory); the canary is a second Deployment (spec.canary).
    deployment_mode: str = "Knative"

    def __post_init__(self) -> None:
        for key in ("name", "namespace"):
            value = getattr(self, key)
            if not _DNS1123.match(value):
                raise ConfigError(
                    f"{key} {value!r} is not a DNS-1123 label (lowercase letters, digits, "
                    "'-', at most 45 characters, starting with a letter)"
                )
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ConfigError(
                f"replicas must satisfy 0 <= min_replicas <= max_replicas >= 1, got "
                f"{self.min_replicas}..{self.max_replicas}"
            )
        if self.serving_image.endswith(":latest") or ":" not in self.serving_image.split("/")[-1]:
            raise ConfigError(f"serving_image {self.serving_image!r} must carry a pinned tag, not latest")
        if not 1 <= self.workers <= 16:
            raise ConfigError(f"workers must be 1..16, got {self.workers}")
        if self.scale_metric not in ("concurrency", "rps", "cpu", "memory") or self.scale_target < 1:
            raise ConfigError(
                f"autoscaling must be concurrency|rps|cpu|memory with a target >= 1, got "
                f"{self.scale_metric}={self.scale_target}"
            )
        if self.deployment_mode not in DEPLOYMENT_MODES:
            raise ConfigError(
                f"deployment_mode must be one of {DEPLOYMENT_MODES}, got {self.deployment_mode!r}"
            )
        if self.deployment_mode == STANDARD and self.scale_metric in ("concurrency", "rps"):
            raise ConfigError(
                f"scale_metric {self.scale_metric!r} is a Knative autoscaler metric; in Standard mode the "
                "HPA scales on cpu or memory"
            )
        if self.logger_url and not re.match(r"^https?://", self.logger_url):
            raise ConfigError(f"logger_url {self.logger_url!r} must be an http(s) URL")
        self.rollout_config()  # validates the canary settings now, not after the upload

    def rollout_config(self) -> Any:
        from credit_risk.release.rollout import RolloutConfig

        return RolloutConfig(self.canary_traffic_percent, self.rollout_timeout_seconds, self.poll_seconds)


KNATIVE = "Knative"  # STANDARD comes from rollout, which rolls each mode out its own way
DEPLOYMENT_MODES = (KNATIVE, STANDARD)
# what KServe's storage initializer downloads from (a KFP artifact URI such as minio://... is not)
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "hdfs://", "webhdfs://", "https://", "http://")


def check_storage_uri(uri: str) -> None:
    """A STORAGE_URI KServe can fetch: one of ``STORAGE_SCHEMES``, or a path (tests, a local
    cluster with the model on a mounted volume); anything else fails naming the fix."""
    if "://" in uri and not uri.startswith(STORAGE_SCHEMES):
        raise DeployError(
            f"the model is at {uri!r}, which KServe's storage initializer cannot download "
            f"(it reads {', '.join(STORAGE_SCHEMES)}); a stock Kubeflow keeps KFP artifacts in MinIO "
            "(minio://): set serving_root to a gs:// or s3:// location so deploy publishes the model there"
        )


# What the deploy step did, in the record, the KFP metadata and the status page: exactly one of
REFUSED = "refused"  # the gate rejected the model, or the approval is missing/unreadable: nothing done
FAILED = "failed"  # infra validation, publish or rollout failed: nothing serves the new model
RENDERED = "rendered"  # approved and infra-validated, manifest written; apply=false: NOT applied
CREATED = "created"  # applied: a first InferenceService now serves the model (100 %)
PROMOTED = "promoted"  # applied as a canary, smoke-tested and promoted to 100 %
STATES = (REFUSED, FAILED, RENDERED, CREATED, PROMOTED)
_STATUS_TITLES = {REFUSED: "NOT DEPLOYED (refused)", FAILED: "FAILED", RENDERED: "RENDERED, NOT APPLIED",
                  CREATED: "DEPLOYED", PROMOTED: "DEPLOYED (canary promoted)"}  # fmt: skip


@dataclass
class DeployRecord:
    """What the deploy step did. ``state`` is one of ``STATES``; ``deployed`` is true only when the
    cluster now serves the new model (created or promoted) - never for a manifest that was only
    rendered. ``failed`` marks an error, as opposed to the correct refusal of a rejected model."""

    deployed: bool
    reason: str
    failed: bool = False
    state: str = REFUSED
    inference_service: str | None = None
    storage_uri: str | None = None
    model_version: str | None = None
    approval_id: str | None = None
    infra_validation: dict[str, Any] | None = None
    rollout: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def traffic_to_new_model(self) -> int:
        if not self.rollout:
            return 0
        revision = self.rollout["revision"]
        return sum(
            int(t.get("percent", 0) or 0)
            for t in self.rollout["traffic"]
            if t.get("revisionName") == revision
        )


def status_markdown(record: DeployRecord) -> str:
    """The deploy step's status for the KFP UI: verdict, version, URL, revision, traffic split."""
    verdict = _STATUS_TITLES[record.state]
    lines = [f"# Deployment: {verdict}", "", record.reason, ""]
    for label, value in (
        ("Model version", record.model_version),
        ("Approval record id", record.approval_id),
        ("Storage URI", record.storage_uri),
        ("Manifest", record.inference_service),
    ):
        if value:
            lines.append(f"- **{label}:** `{value}`")
    if record.infra_validation:
        lines.append(
            f"- **Infra validation:** predictor answered {record.infra_validation.get('instances')} sample "
            f"instances ({record.infra_validation.get('seconds')} s)"
        )
    if record.rollout:
        r = record.rollout
        lines += [
            f"- **Rollout:** {r['action']}, URL `{r['url']}`, ready revision `{r['revision']}`"
            + (f" (previous `{r['previous_revision']}`)" if r.get("previous_revision") else ""),
            "",
            "| revision | traffic % | tag |",
            "|---|---|---|",
            *[
                f"| {t.get('revisionName', '')} | {t.get('percent', 0)} | {t.get('tag', '')} |"
                for t in r["traffic"]
            ],
        ]
    return "\n".join(lines) + "\n"


def model_version(decision: Decision) -> str:
    """The version name of the model an approval record approved."""
    try:
        return version_name(decision.model_fingerprint)
    except ConfigError:
        raise ConfigError(
            f"the approval record has no usable model fingerprint: {decision.model_fingerprint!r}"
        ) from None


def approval_id(record_text: str) -> str:
    """Short content hash of the approval record the deployment was authorised by."""
    return hashlib.sha256(record_text.encode()).hexdigest()[:16]


POD_TMPFS = "/dev/shm"  # noqa: S108 - the pod's own tmpfs, private to the container


def render_inference_service(
    storage_uri: str, config: DeployConfig, model_version: str, approval_id: str = ""
) -> dict[str, Any]:
    """A ``serving.kserve.io/v1beta1`` InferenceService running our predictor on ``storage_uri``."""
    predictor: dict[str, Any] = {
        "serviceAccountName": config.service_account,
        # the predictor never talks to the Kubernetes API
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        # Knative: the autoscaler's metric (concurrency/rps); Standard: the HPA's (cpu/memory)
        "scaleMetric": config.scale_metric,
        "scaleTarget": config.scale_target,
        "containers": [
            {
                "name": "kserve-container",
                "image": config.serving_image,
                "imagePullPolicy": "Always",
                "args": [
                    "--model_name",
                    config.name,
                    "--model_dir",
                    MODEL_MOUNT,
                    "--host",
                    "0.0.0.0",  # noqa: S104 - in the pod, behind the KServe ingress
                    "--http_port",
                    "8080",
                    "--workers",
                    str(config.workers),
                ],
                # KServe's storage initializer downloads STORAGE_URI into /mnt/models (with the
                # service account's bucket credentials) before the predictor starts
                # the root filesystem is read-only: temporary files (TensorFlow's, the supervisor's
                # metrics directory) and HOME go to /dev/shm, the tmpfs every pod has - no volume,
                # so no Knative emptyDir feature flag is needed
                "env": [
                    {"name": "STORAGE_URI", "value": storage_uri},
                    {"name": "TMPDIR", "value": POD_TMPFS},
                    {"name": "HOME", "value": POD_TMPFS},
                ],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": config.cpu_request, "memory": config.memory_request},
                    "limits": {"cpu": config.cpu_limit, "memory": config.memory_limit},
                },
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS_UID,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "readinessProbe": {
                    "httpGet": {"path": f"/v1/models/{config.name}", "port": 8080},
                    "initialDelaySeconds": 10,
                    "periodSeconds": 5,
                },
                "livenessProbe": {
                    "httpGet": {"path": "/", "port": 8080},
                    "initialDelaySeconds": 30,
                    "periodSeconds": 10,
                    "failureThreshold": 6,
                },
            }
        ],
    }
    if config.logger_url:
        predictor["logger"] = {"mode": "all", "url": config.logger_url}
    labels = {
        "app.kubernetes.io/name": config.name,
        "app.kubernetes.io/part-of": "credit-risk-kfp",
        "credit-risk/package-version": __version__,
        MODEL_VERSION_KEY: model_version,
    }
    annotations = {
        MODEL_VERSION_KEY: model_version,
        "credit-risk/storage-uri": storage_uri,
        SERVING_URI_ANNOTATION: storage_uri,  # kept at the previous model by a canary update
        MODE_ANNOTATION: config.deployment_mode,
    }
    if config.deployment_mode == KNATIVE:
        # a URL per revision (latest/prev tags): the canary is smoke-queried directly
        annotations["serving.kserve.io/enable-tag-routing"] = "true"
    if approval_id:
        labels["credit-risk/approval-id"] = annotations["credit-risk/approval-id"] = approval_id
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": config.name,
            "namespace": config.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def read_decision(path: str | Path) -> tuple[Decision | None, str, str]:
    """The approval decision and the record's text, or None with the reason it cannot be trusted."""
    try:
        text = Path(path).read_text()
        return Decision.from_json(text), "", text
    except FileNotFoundError:
        return None, f"no approval record at {path}", ""
    except (ValueError, TypeError, KeyError) as e:
        return None, f"approval record at {path} is unreadable: {e}", ""


InfraValidator = Callable[[str, str], dict[str, Any]]  # (model_dir, model_name) -> what was checked


def deploy(
    approval_path: str | Path,
    model_dir: str,
    config: DeployConfig,
    manifest_path: str | Path,
    model_uri: str = "",
    infra_validator: InfraValidator | None = None,
    api: Any = None,
) -> DeployRecord:
    """Deploy an approved model (module docstring); a rejection is recorded, never raised.

    ``model_dir`` is the exported model on local disk; ``model_uri`` is where it already lives (the
    pipeline artifact URI), served as is when no ``serving_root`` is configured. ``infra_validator``
    and ``api`` default to the real predictor process and the real Kubernetes API.
    """
    decision, problem, record_text = read_decision(approval_path)
    if decision is None:
        return DeployRecord(False, f"not deployed: {problem} (fail closed)")
    if not decision.approved:
        return DeployRecord(False, "not deployed: model rejected by the gate: " + "; ".join(decision.reasons))

    from credit_risk.release.rollout import InferenceServiceApi, rollout

    record = DeployRecord(False, "", approval_id=approval_id(record_text))
    try:
        record.model_version = version = model_version(decision)
        from credit_risk.release.infra_validation import infra_validate

        record.infra_validation = (infra_validator or infra_validate)(model_dir, config.name)

        if config.serving_root:
            record.storage_uri = storage.join(config.serving_root, config.name, version)
            fresh = storage.publish_dir(model_dir, record.storage_uri)
            log.info("%s model version %s", "published" if fresh else "reusing published", record.storage_uri)
        else:
            record.storage_uri = model_uri or str(model_dir)
        check_storage_uri(record.storage_uri)

        manifest = render_inference_service(record.storage_uri, config, version, record.approval_id or "")
        Path(manifest_path).parent.mkdir(parents=True, exist_ok=True)
        Path(manifest_path).write_text(yaml.safe_dump(manifest, sort_keys=False))
        record.inference_service = str(manifest_path)

        if not config.apply:
            record.state = RENDERED
            record.reason = (
                "approved and infra-validated: InferenceService rendered, not applied "
                f"(apply_to_cluster=false); apply it with: kubectl apply -n {config.namespace} -f "
                "<the inference_service artifact>"
            )
            return record
        from credit_risk.release.infra_validation import http_smoke, sample_requests

        store = api or InferenceServiceApi(config.namespace, host=config.kube_host or None)
        expected = (record.infra_validation or {}).get("pds")  # a wrong model's answers differ
        smoke = http_smoke(config.name, sample_requests(model_dir), expected_pds=expected)
        result = rollout(store, manifest, smoke, config.rollout_config())
        record.rollout = result.to_dict()
        if result.action not in (CREATED, PROMOTED):
            raise DeployError(f"rollout ended in {result.action!r}: {result.reason}")
        record.state = result.action
        record.deployed = True
        record.reason = f"approved: {result.action} {result.revision} at {result.url}"
        return record
    except (CreditRiskError, OSError) as e:  # SmokeTest/Rollout/KubeApi/Publish errors and I/O
        stage = "rollout" if record.inference_service else "infra validation / publish"
        # the manifest of a model that did not go out must not be picked up by anyone
        Path(manifest_path).unlink(missing_ok=True)
        record.inference_service = None
        record.failed = True
        record.state = FAILED
        record.reason = f"not deployed: {stage} failed: {e}"
        return record
