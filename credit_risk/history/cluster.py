"""The history job on a Spark cluster: the Kubeflow Spark Operator's ``SparkApplication``.

For raw history too large for one pod: the same ``spark_job`` module runs on the cluster's Spark.
``stage`` uploads the job's main file and the few pure modules it imports (a zip for
``deps.pyFiles``) next to the output, so any Spark 4 image with Python runs it - nothing of this
package needs to be installed in the Spark image (``spark_image``, a documented parameter).
``render`` builds the ``sparkoperator.k8s.io/v1beta2`` object; ``run`` creates it through the
Kubernetes API and follows ``status.applicationState.state`` to ``COMPLETED`` (success) or
``FAILED`` / ``SUBMISSION_FAILED`` (an error with the operator's message); on a timeout, an
interruption or SIGTERM (what a KFP cancel sends the pod) it deletes the application, which stops
its driver and executors, and raises.

URIs: ``s3://`` is written ``s3a://`` for Spark's Hadoop S3A connector; ``gs://`` and local
(``file://``) paths stay as they are.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import signal
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from credit_risk import storage
from credit_risk.errors import CreditRiskError

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication"
SUCCEEDED = {"COMPLETED"}
FAILED = {"FAILED", "SUBMISSION_FAILED"}
# the modules spark_job imports (pure Python: no pandas, no cloud SDK); a test keeps this list true
JOB_MODULES = ("__init__.py", "errors.py", "history/__init__.py", "history/schema.py", "history/spark_job.py")
MAIN_FILE, PY_FILES = "spark_job.py", "credit_risk_history.zip"


class SparkJobError(CreditRiskError):
    """The cluster job failed, was refused, timed out or was cancelled (names which and why)."""


@dataclass(frozen=True)
class ClusterJob:
    name: str  # the SparkApplication's name (a DNS-1123 label)
    namespace: str
    spark_image: str  # any Spark 4 image with Python 3, e.g. one built FROM apache/spark
    raw: str
    out: str
    lag_months: int = 0
    spark_version: str = "4.0.0"
    service_account: str = "spark-operator-spark"  # the Spark Operator Helm chart's default
    driver_cores: int = 1
    driver_memory: str = "4g"
    executor_instances: int = 2
    executor_cores: int = 2
    executor_memory: str = "4g"
    spark_conf: dict[str, str] = field(default_factory=dict)


def job_name(out: str) -> str:
    """A stable, DNS-1123 name per output: re-running for the same output finds the same object."""
    return "credit-risk-history-" + hashlib.sha256(out.encode()).hexdigest()[:12]


def stage(staging_uri: str) -> tuple[str, str]:
    """Upload the main file and the modules it imports (zip) under ``staging_uri``; returns their
    URIs (as written, not yet Spark's)."""
    package = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="credit-risk-spark-stage-") as tmp:
        zipped = Path(tmp) / PY_FILES
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
            for module in JOB_MODULES:
                z.write(package / module, f"credit_risk/{module}")
        main = Path(tmp) / MAIN_FILE
        main.write_bytes((package / "history" / "spark_job.py").read_bytes())
        base = staging_uri.rstrip("/")
        for local in (main, zipped):
            if storage.is_remote(base):
                storage.upload_file(local, f"{base}/{local.name}")
            else:  # a path every Spark pod mounts (or this machine, in tests)
                Path(base).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, Path(base) / local.name)
    return f"{base}/{MAIN_FILE}", f"{base}/{PY_FILES}"


def render(job: ClusterJob, main_file: str, py_files: str) -> dict[str, Any]:
    """The SparkApplication for ``job`` (validated by the API server against the operator's CRD)."""
    from credit_risk.history.schema import check_lag

    check_lag(job.lag_months)
    labels = {"app.kubernetes.io/name": "credit-risk-history", "app.kubernetes.io/part-of": "credit-risk-kfp"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": job.name, "namespace": job.namespace, "labels": labels},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": job.spark_image,
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": storage.hadoop_uri(main_file),
            "arguments": [
                "--raw",
                storage.hadoop_uri(job.raw),
                "--out",
                storage.hadoop_uri(job.out),
                "--lag-months",
                str(job.lag_months),
                "--no-keys",
            ],
            "deps": {"pyFiles": [storage.hadoop_uri(py_files)]},
            "sparkVersion": job.spark_version,
            "sparkConf": {"spark.sql.session.timeZone": "UTC", **job.spark_conf},
            "restartPolicy": {"type": "Never"},
            "driver": {
                "cores": job.driver_cores,
                "memory": job.driver_memory,
                "serviceAccount": job.service_account,
                "labels": labels,
            },
            "executor": {
                "instances": job.executor_instances,
                "cores": job.executor_cores,
                "memory": job.executor_memory,
                "labels": labels,
            },
        },
    }


def _api(api_client: Any | None) -> Any:
    from kubernetes import client

    from credit_risk import kube

    return client.CustomObjectsApi(api_client or kube.api_client())


def _delete(api: Any, job: ClusterJob) -> None:
    from kubernetes.client.rest import ApiException

    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, job.namespace, PLURAL, job.name)
        log.info(
            "deleted SparkApplication %s/%s (its driver and executors go with it)", job.namespace, job.name
        )
    except ApiException as e:
        if e.status != 404:
            log.error(
                "could not delete SparkApplication %s/%s: %s %s", job.namespace, job.name, e.status, e.reason
            )


def follow(
    where: str,
    poll: Callable[[], tuple[str, str]],
    cancel: Callable[[], None],
    succeeded: set[str],
    failed: set[str],
    timeout_seconds: float,
    poll_seconds: float,
) -> str:
    """Poll ``poll() -> (state, message)`` until a terminal state; on a timeout, an interrupt or
    SIGTERM (a KFP cancel) ``cancel()`` the job and raise. Returns the succeeded state. One loop
    for every engine: the Spark Operator, EMR Serverless."""
    previous = signal.getsignal(signal.SIGTERM)
    in_main = _in_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    start, state = time.monotonic(), ""
    try:
        while True:
            new, message = poll()
            elapsed = time.monotonic() - start
            if new != state:
                state = new
                log.info("%s: %s after %.0f s", where, state or "(no state yet)", elapsed)
            if state in succeeded:
                return state
            if state in failed:
                raise SparkJobError(f"{where} ended {state}: {message or 'no message'}")
            if elapsed > timeout_seconds:
                cancel()
                raise SparkJobError(
                    f"{where} timed out after {timeout_seconds:.0f} s in state {state or 'none'}; cancelled"
                )
            time.sleep(poll_seconds)
    except (KeyboardInterrupt, _CancelledError):
        cancel()
        raise SparkJobError(f"{where} cancelled in state {state or 'none'}; cancelled") from None
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def run(
    job: ClusterJob,
    main_file: str,
    py_files: str,
    timeout_seconds: float = 3600,
    poll_seconds: float = 10,
    api_client: Any | None = None,
) -> str:
    """Create the SparkApplication and follow it to COMPLETED (deleted on timeout or cancel)."""
    from kubernetes.client.rest import ApiException

    api = _api(api_client)
    body = render(job, main_file, py_files)
    where = f"SparkApplication {job.namespace}/{job.name}"
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, job.namespace, PLURAL, body)
    except ApiException as e:
        raise SparkJobError(f"{where} was refused: {e.status} {e.reason}: {_message(e)}") from None
    log.info("created %s (image %s)", where, job.spark_image)

    def poll() -> tuple[str, str]:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, job.namespace, PLURAL, job.name)
        app = (obj.get("status") or {}).get("applicationState") or {}
        return app.get("state", ""), app.get("errorMessage", "")

    return follow(where, poll, lambda: _delete(api, job), SUCCEEDED, FAILED, timeout_seconds, poll_seconds)


@dataclass(frozen=True)
class SparkOperator:
    """Where ``etl.run_on_cluster`` sends the job: a SparkApplication in ``namespace``."""

    kind: ClassVar[str] = "spark-operator"
    namespace: str
    spark_image: str
    executor_instances: int = 2
    api_client: Any = field(default=None, compare=False)

    def run(self, name: str, main: str, py_files: str, raw: str, out: str, lag_months: int,
            timeout_seconds: float, poll_seconds: float) -> str:  # fmt: skip
        job = ClusterJob(name=name, namespace=self.namespace, spark_image=self.spark_image, raw=raw, out=out,
                         lag_months=lag_months, executor_instances=self.executor_instances)  # fmt: skip
        run(job, main, py_files, timeout_seconds, poll_seconds, self.api_client)
        return f"SparkApplication {self.namespace}/{name} ({self.spark_image})"


class _CancelledError(Exception):
    pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _CancelledError(signum)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _message(error: Any) -> str:
    import json

    try:
        return str(json.loads(error.body).get("message", error.body))
    except (TypeError, ValueError):
        return str(error.body)
