"""Deploy decision + InferenceService rendering. Reads the approval first; fails closed.

A rejected (or missing / unreadable) approval is never deployed: the record says "not deployed" and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from credit_risk import __version__, images
from credit_risk.errors import ConfigError
from credit_risk.gate import Decision

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


@dataclass
class DeployRecord:
    deployed: bool
    reason: str
    inference_service: str | None = None
    storage_uri: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def render_inference_service(storage_uri: str, config: DeployConfig, model_version: str) -> dict[str, Any]:
    """A ``serving.kserve.io/v1beta1`` InferenceService running our predictor on ``storage_uri``."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": config.name,
            "namespace": config.namespace,
            "labels": {
                "app.kubernetes.io/name": config.name,
                "app.kubernetes.io/part-of": "credit-risk-kfp",
                "credit-risk/package-version": __version__,
            },
            "annotations": {
                "credit-risk/model-version": model_version,
                "credit-risk/storage-uri": storage_uri,
            },
        },
        "spec": {
            "predictor": {
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
                        ],
                        "env": [{"name": "STORAGE_URI", "value": storage_uri}],
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
        },
    }


def read_decision(path: str | Path) -> tuple[Decision | None, str]:
    """The approval decision, or None with the reason it cannot be trusted."""
    try:
        return Decision.from_json(Path(path).read_text()), ""
    except FileNotFoundError:
        return None, f"no approval record at {path}"
    except (ValueError, TypeError, KeyError) as e:
        return None, f"approval record at {path} is unreadable: {e}"


def deploy(
    approval_path: str | Path, model_uri: str, config: DeployConfig, manifest_path: str | Path
) -> DeployRecord:
    """Render the InferenceService for an approved model; otherwise record why not. Never raises
    for a rejection - not deploying a rejected model is the correct, successful outcome."""
    decision, problem = read_decision(approval_path)
    if decision is None:
        return DeployRecord(False, f"not deployed: {problem} (fail closed)")
    if not decision.approved:
        return DeployRecord(False, "not deployed: model rejected by the gate: " + "; ".join(decision.reasons))
    model_version = Path(model_uri.rstrip("/")).name + "@" + decision.timestamp
    manifest = render_inference_service(model_uri, config, model_version)
    Path(manifest_path).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest_path).write_text(yaml.safe_dump(manifest, sort_keys=False))
    return DeployRecord(True, "approved: InferenceService rendered", str(manifest_path), model_uri)
