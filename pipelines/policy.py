"""How each step of the compiled pipelines runs on a cluster: caching, resources, retries. One table.

**Caching.** A step is cached only when its inputs determine its output. Not cached: ``ingest``
(a live table, or files that can change under the same URI), ``evaluate`` (an ``isvc://``
champion is whatever the cluster serves now), ``deploy`` (it acts on the cluster), and the
monitoring steps (a recurring run with fixed URIs must measure today's data, not return the first
run's PSI). ``kfp.Client(..., enable_caching=True)`` would overwrite every task's setting, so
``credit-risk submit``/``schedule`` pass ``enable_caching`` only to disable (``--no-cache``) and
otherwise leave these settings alone.

**Resources.** Requests sized from the steps measured on german_credit / credit_data in the image
(docs/containers.md) with headroom for larger data; memory limit = request (a pod is killed at its
limit, not slowed: the same figure both ways keeps scheduling honest), CPU limit 2x the request.
Override at compile time: ``credit-risk compile --step-resources train.cpu=8 train.memory=32Gi``.

**Object storage off AWS.** On AWS every pod reaches ``s3://`` through the runner's IRSA role
(the EKS webhook injects the web identity; nothing to compile). S3-compatible storage such as
Kubeflow's MinIO needs an endpoint and keys in every pod: ``credit-risk compile --s3-secret NAME
--s3-endpoint URL`` (``S3Access``) mounts that Kubernetes secret's ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` and sets ``AWS_ENDPOINT_URL_S3`` on every step, where boto3's standard
chain reads them. Keys are never parameters.

**Retries.** Steps that call remote services (PostgreSQL, object storage, a Beam runner) retry
with exponential backoff; ``deploy`` does not (a rollout that rolled back must not roll out again
on its own: its own calls to the Kubernetes API are retried where that is safe), nor ``train``
(a failure there is not transient, and a retry would re-spend the whole training).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from credit_risk.errors import ConfigError

BACKOFF_DURATION, BACKOFF_FACTOR, BACKOFF_MAX = "30s", 2.0, "600s"


@dataclass(frozen=True)
class StepPolicy:
    cpu: str  # request; the limit is cpu_limit
    memory: str  # request and limit
    cpu_limit: str
    cache: bool
    retries: int = 0


POLICIES: dict[str, StepPolicy] = {
    # Spark local[2] with a 2g driver heap by default: raise memory with history_driver_memory
    "history_features": StepPolicy(cpu="2", memory="4Gi", cpu_limit="2", cache=False, retries=1),
    "ingest": StepPolicy(cpu="1", memory="2Gi", cpu_limit="2", cache=False, retries=2),
    "validate": StepPolicy(cpu="2", memory="4Gi", cpu_limit="4", cache=True, retries=2),
    "split": StepPolicy(cpu="1", memory="2Gi", cpu_limit="2", cache=True, retries=1),
    "train": StepPolicy(cpu="4", memory="8Gi", cpu_limit="8", cache=True),
    "evaluate": StepPolicy(cpu="2", memory="4Gi", cpu_limit="4", cache=False, retries=1),
    "deploy": StepPolicy(cpu="1", memory="4Gi", cpu_limit="2", cache=False),
    "batch_score": StepPolicy(cpu="2", memory="4Gi", cpu_limit="4", cache=False, retries=2),
    "monitor": StepPolicy(cpu="2", memory="4Gi", cpu_limit="4", cache=False, retries=2),
}


def parse_overrides(items: list[str] | None) -> dict[str, StepPolicy]:
    """``["train.cpu=8", "train.memory=32Gi", "ingest.retries=0"]`` on top of ``POLICIES``."""
    out = dict(POLICIES)
    keys = [f.name for f in fields(StepPolicy) if f.name != "cache"]
    for item in items or []:
        target, sep, value = item.partition("=")
        step, dot, key = target.partition(".")
        if not sep or not dot:
            raise ConfigError(f"step resource override {item!r}: expected <step>.<key>=<value>")
        if step not in out:
            raise ConfigError(f"step resource override {item!r}: unknown step {step!r}; steps: {sorted(out)}")
        if key not in keys:
            raise ConfigError(f"step resource override {item!r}: unknown key {key!r}; keys: {keys}")
        typed: Any = value
        if key == "retries":
            if not value.isdigit() or int(value) > 10:
                raise ConfigError(f"step resource override {item!r}: retries must be an integer 0-10")
            typed = int(value)
        elif not value:
            raise ConfigError(f"step resource override {item!r}: empty value")
        out[step] = replace(out[step], **{key: typed})
    return out


_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")  # secret key = env var (boto3's)


@dataclass(frozen=True)
class S3Access:
    """What every pod of a run needs for S3-compatible storage that is not AWS's own (MinIO):
    ``secret``, a Kubernetes secret in the run's namespace with keys ``S3_SECRET_KEYS`` (the same
    keys KServe's S3 secret uses, manifests/overlays/minio); ``endpoint``, the S3 API URL
    (``AWS_ENDPOINT_URL_S3``); ``region`` (``AWS_REGION``), optional."""

    secret: str = ""
    endpoint: str = ""
    region: str = ""

    def __post_init__(self) -> None:
        if self.secret and not _DNS1123_SUBDOMAIN.match(self.secret):
            raise ConfigError(
                f"--s3-secret {self.secret!r} is not a Kubernetes secret name (DNS-1123 subdomain)"
            )
        if self.endpoint and not re.match(r"^https?://[^/\s]+/?$", self.endpoint):
            raise ConfigError(
                f"--s3-endpoint {self.endpoint!r}: expected the S3 API's base URL, e.g. "
                "http://minio-service.kubeflow:9000"
            )
        if self.region and not re.match(r"^[a-z0-9-]+$", self.region):
            raise ConfigError(f"--s3-region {self.region!r} is not a region name, e.g. us-east-1")

    def __bool__(self) -> bool:
        return bool(self.secret or self.endpoint or self.region)


def apply(
    task: Any, step: str, policies: dict[str, StepPolicy] | None = None, s3: S3Access | None = None
) -> Any:
    """Set ``step``'s caching, resources and retries (and ``s3``'s access, when given) on a
    pipeline task; returns the task."""
    policy = (policies or POLICIES)[step]
    task.set_caching_options(policy.cache)
    task.set_cpu_request(policy.cpu).set_cpu_limit(policy.cpu_limit)
    task.set_memory_request(policy.memory).set_memory_limit(policy.memory)
    if policy.retries:
        task.set_retry(
            num_retries=policy.retries,
            backoff_duration=BACKOFF_DURATION,
            backoff_factor=BACKOFF_FACTOR,
            backoff_max_duration=BACKOFF_MAX,
        )
    if s3 and s3.secret:
        from kfp import kubernetes

        kubernetes.use_secret_as_env(task, s3.secret, {key: key for key in S3_SECRET_KEYS})
    if s3 and s3.endpoint:
        task.set_env_variable("AWS_ENDPOINT_URL_S3", s3.endpoint.rstrip("/"))
    if s3 and s3.region:
        task.set_env_variable("AWS_REGION", s3.region)
    return task
