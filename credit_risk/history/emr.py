"""The history job on AWS EMR Serverless: a job run on an existing Spark application, through boto3.

``etl.run_on_cluster`` stages the job's main file and the zip of the pure modules it imports under
``<out>/_job/`` on S3; the job run names them (``entryPoint``, ``--py-files``), so no virtualenv
archive is needed: the job imports nothing but pyspark, which EMR's runtime provides. The run is
followed (``get_job_run``) to ``SUCCESS``, or to ``FAILED`` (an error with EMR's ``stateDetails``)
or ``CANCELLED``; on a timeout, an interruption or SIGTERM it is cancelled (``cancel_job_run``).
EMR reads ``s3://`` natively (EMRFS): the URIs are passed as they are. Spark's driver logs go to
``<out>/_job/logs/`` (S3 monitoring configuration).

Credentials and region: boto3's standard chain (env, profile, IRSA on EKS), as for ``s3://``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from credit_risk import storage
from credit_risk.history.cluster import SparkJobError, follow

log = logging.getLogger(__name__)

SUCCEEDED = {"SUCCESS"}
FAILED = {"FAILED", "CANCELLED"}


@dataclass(frozen=True)
class EmrServerless:
    """Where ``etl.run_on_cluster`` sends the job: a job run on EMR Serverless application
    ``application_id`` (type Spark, EMR 7+: Spark 3.5; the job uses only DataFrame calls Spark 3.5
    has), as ``execution_role_arn`` (it needs S3 read on the raw data and write on the output)."""

    kind: ClassVar[str] = "emr-serverless"
    application_id: str
    execution_role_arn: str
    executor_instances: int = 2
    region: str | None = None
    client: Any = field(default=None, compare=False)

    def _client(self) -> Any:
        if self.client is not None:
            return self.client
        import boto3

        return boto3.client("emr-serverless", region_name=self.region)

    def request(self, name: str, main: str, py_files: str, raw: str, out: str, lag_months: int,
                timeout_seconds: float) -> dict[str, Any]:  # fmt: skip
        """The ``StartJobRun`` request (what a test and an operator can read back)."""
        for uri in (main, py_files, raw, out):
            if storage.scheme(uri) != storage.s3.SCHEME:
                raise SparkJobError(f"EMR Serverless reads s3:// only; got {uri!r}")
        return {
            "applicationId": self.application_id,
            "clientToken": name,  # idempotent: a retried step does not start a second run
            "name": name,
            "executionRoleArn": self.execution_role_arn,
            "jobDriver": {"sparkSubmit": {
                "entryPoint": main,
                "entryPointArguments": ["--raw", raw, "--out", out, "--lag-months", str(lag_months),
                                        "--no-keys"],
                "sparkSubmitParameters": f"--py-files {py_files} --conf spark.executor.instances="
                f"{self.executor_instances} --conf spark.sql.session.timeZone=UTC",
            }},
            "configurationOverrides": {"monitoringConfiguration": {"s3MonitoringConfiguration": {
                "logUri": main.rsplit("/", 1)[0] + "/logs/"}}},
            "executionTimeoutMinutes": max(5, int(timeout_seconds // 60) + 1),  # EMR's minimum is 5
            "tags": {"app.kubernetes.io/part-of": "credit-risk-kfp"},
        }  # fmt: skip

    def run(self, name: str, main: str, py_files: str, raw: str, out: str, lag_months: int,
            timeout_seconds: float, poll_seconds: float) -> str:  # fmt: skip
        from botocore.exceptions import ClientError

        client = self._client()
        request = self.request(name, main, py_files, raw, out, lag_months, timeout_seconds)
        try:
            run_id = client.start_job_run(**request)["jobRunId"]
        except ClientError as e:
            error = e.response.get("Error", {})
            raise SparkJobError(
                f"EMR Serverless application {self.application_id} refused the job run: "
                f"{error.get('Code')}: {error.get('Message')}"
            ) from None
        where = f"EMR Serverless job run {self.application_id}/{run_id}"
        log.info("started %s", where)

        def poll() -> tuple[str, str]:
            run = client.get_job_run(applicationId=self.application_id, jobRunId=run_id)["jobRun"]
            return run.get("state", ""), run.get("stateDetails", "")

        def cancel() -> None:
            try:
                client.cancel_job_run(applicationId=self.application_id, jobRunId=run_id)
                log.info("cancelled %s", where)
            except ClientError as e:
                log.error("could not cancel %s: %s", where, e)

        follow(where, poll, cancel, SUCCEEDED, FAILED, timeout_seconds, poll_seconds)
        return where
