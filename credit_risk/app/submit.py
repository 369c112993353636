"""Submit the compiled pipeline to a Kubeflow Pipelines endpoint with ``kfp.Client`` (CI's path).

Credentials come from the environment, never from arguments that end up in shell history or logs:
``KFP_TOKEN`` (bearer token, e.g. a service-account token) or ``KFP_COOKIE`` (an authservice
session cookie, ``name=value``). Parameters are checked against the compiled pipeline's inputs
before anything is sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from credit_risk import storage
from credit_risk.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TERMINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
# The Kubernetes service account our runs use: manifests/pipeline-namespace creates it in the
# Kubeflow profile namespace and manifests/base lets it manage the InferenceService in the serving
# namespace. "" = the profile's default-editor (whatever the cluster gives a run that names none).
RUNNER_SERVICE_ACCOUNT = "credit-risk-pipeline-runner"
NO_CACHE_WITH_UPLOAD = (
    "--no-cache applies to an inline pipeline spec only (kfp.Client cannot change a registered "
    "version's caching): drop --upload, or compile with the step's caching off (pipelines/policy.py)"
)


def caching_switch(no_cache: bool) -> bool | None:
    """``enable_caching`` for kfp.Client: False to disable every step's cache, else None - never
    True, which would overwrite the compiled per-step settings (a live ingest or a deploy cached)."""
    return False if no_cache else None


@dataclass(frozen=True)
class SubmitConfig:
    host: str
    namespace: str | None = None
    experiment: str = "credit-risk"
    pipeline_file: str | None = None
    run_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    wait: bool = False
    timeout_s: int = 3600
    upload: bool = False  # register the pipeline (and a version) in KFP, then run that version
    pipeline_name: str = "credit-risk-training"
    pipeline_root: str | None = None  # gs://, s3:// or minio://bucket/kfp-root: where the run's artifacts go
    service_account: str = RUNNER_SERVICE_ACCOUNT  # "" = the namespace's default (default-editor)
    no_cache: bool = False  # disable every step's cache for this run; else the compiled settings

    @property
    def root(self) -> str | None:
        return self.pipeline_root or None

    def __post_init__(self) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise ConfigError(f"--host must be an http(s) URL, got {self.host!r}")
        if self.timeout_s <= 0:
            raise ConfigError(f"--timeout must be > 0 seconds, got {self.timeout_s}")
        if self.no_cache and self.upload:
            raise ConfigError(NO_CACHE_WITH_UPLOAD)
        if self.pipeline_root:
            try:
                storage.check_pipeline_root(self.pipeline_root)
            except ValueError as e:
                raise ConfigError(f"--pipeline-root: {e}") from None


def pipeline_inputs(pipeline_file: str | Path) -> dict[str, dict[str, Any]]:
    """The compiled pipeline's parameter definitions (name -> {parameterType, defaultValue?})."""
    spec = next(yaml.safe_load_all(Path(pipeline_file).read_text()))
    params: dict[str, dict[str, Any]] = spec["root"]["inputDefinitions"]["parameters"]
    return params


def check_params(params: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> None:
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        raise ConfigError(f"unknown pipeline parameter(s) {unknown}; the pipeline takes {sorted(inputs)}")
    missing = sorted(
        k
        for k, v in inputs.items()
        if "defaultValue" not in v and not v.get("isOptional") and k not in params
    )
    if missing:
        raise ConfigError(f"missing required pipeline parameter(s) {missing} (pass --param name=value)")
    if "raw_history_uri" in inputs:  # the training pipeline: one source, checked before anything is sent
        from credit_risk.history.etl import check_source

        given = {k: str(params.get(k, inputs[k].get("defaultValue", ""))) for k in
                 ("raw_history_uri", "data_uri", "feature_spec_uri")}  # fmt: skip
        try:
            check_source(given["raw_history_uri"], given["data_uri"], given["feature_spec_uri"])
        except DataError as e:
            raise ConfigError(f"pipeline parameters: {e}") from None


def version_name(pipeline_file: str | Path) -> str:
    """Package version + content hash: the same YAML always maps to the same KFP version."""
    from credit_risk import __version__

    digest = hashlib.sha256(Path(pipeline_file).read_bytes()).hexdigest()[:12]
    return f"{__version__}-{digest}"


def upload(client: Any, pipeline_file: str, pipeline_name: str, namespace: str | None) -> tuple[str, str]:
    """Make sure the pipeline and this exact version exist in KFP; return (pipeline_id, version_id).

    An unknown pipeline is uploaded (KFP makes this file its first version); a known one gets a
    version named ``<package version>-<content hash>`` unless that version is already there, so
    re-submitting the same YAML never piles up duplicate versions.
    """
    name = version_name(pipeline_file)
    pipeline_id = client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(
            pipeline_file,
            pipeline_name=pipeline_name,
            namespace=namespace,
            description=f"credit-risk-kfp {name}",
        )
        # uploading a new pipeline also creates its first version, holding exactly this file
        first = client.list_pipeline_versions(pipeline.pipeline_id, page_size=1).pipeline_versions[0]
        log.info("created pipeline %s with version %s", pipeline.pipeline_id, first.pipeline_version_id)
        return pipeline.pipeline_id, first.pipeline_version_id
    for v in client.list_pipeline_versions(pipeline_id, page_size=200).pipeline_versions or []:
        if v.display_name == name:
            log.info("pipeline version %s (%s) already uploaded", name, v.pipeline_version_id)
            return pipeline_id, v.pipeline_version_id
    version = client.upload_pipeline_version(
        pipeline_file, pipeline_version_name=name, pipeline_id=pipeline_id
    )
    log.info("uploaded pipeline version %s (%s)", name, version.pipeline_version_id)
    return pipeline_id, version.pipeline_version_id


def _client(host: str, namespace: str | None) -> Any:
    import kfp

    return kfp.Client(
        host=host,
        namespace=namespace,
        existing_token=os.environ.get("KFP_TOKEN") or None,
        cookies=os.environ.get("KFP_COOKIE") or None,
    )


def submit(config: SubmitConfig) -> dict[str, Any]:
    """Create the run (and experiment if needed); with ``wait``, poll until it ends.

    Returns {"run_id", "experiment", "url", and with wait: "state", "seconds"}.
    """

    from credit_risk.pipelines.compile import COMPILED_FILE

    pipeline_file = str(config.pipeline_file or COMPILED_FILE)
    if not Path(pipeline_file).exists():
        raise ConfigError(f"pipeline file not found: {pipeline_file} (run `credit-risk compile`)")
    check_params(config.params, pipeline_inputs(pipeline_file))
    client = _client(config.host, config.namespace)
    outcome: dict[str, Any] = {"experiment": config.experiment}
    if config.upload:
        pipeline_id, version_id = upload(client, pipeline_file, config.pipeline_name, config.namespace)
        experiment = client.create_experiment(name=config.experiment, namespace=config.namespace)
        run = client.run_pipeline(
            experiment_id=experiment.experiment_id,
            job_name=config.run_name or f"{config.pipeline_name} {version_name(pipeline_file)}",
            pipeline_id=pipeline_id,
            version_id=version_id,
            params=config.params,
            pipeline_root=config.root,
            service_account=config.service_account or None,
        )
        run_id = run.run_id
        outcome.update({"pipeline_id": pipeline_id, "pipeline_version_id": version_id})
    else:
        run_id = client.create_run_from_pipeline_package(
            pipeline_file,
            arguments=config.params,
            run_name=config.run_name,
            experiment_name=config.experiment,
            namespace=config.namespace,
            pipeline_root=config.root,
            enable_caching=caching_switch(config.no_cache),
            service_account=config.service_account or None,
        ).run_id
    outcome.update({"run_id": run_id, "url": f"{config.host.rstrip('/')}/#/runs/details/{run_id}"})
    log.info("submitted run %s to %s (experiment %s)", run_id, config.host, config.experiment)
    if config.wait:
        start = time.monotonic()
        final = client.wait_for_run_completion(run_id, timeout=config.timeout_s)
        outcome["state"] = str(final.state)
        outcome["seconds"] = round(time.monotonic() - start, 1)
        log.info("run %s ended %s after %.0fs", run_id, final.state, outcome["seconds"])
    return outcome


@dataclass(frozen=True)
class ScheduleConfig:
    """A KFP recurring run of a compiled pipeline (the monitoring pipeline by default)."""

    host: str
    name: str
    params: dict[str, Any]
    cron: str | None = None  # KFP's 6-field cron: second minute hour day-of-month month day-of-week
    interval_seconds: int | None = None
    namespace: str | None = None
    experiment: str = "credit-risk-monitoring"
    pipeline_file: str | None = None
    max_concurrency: int = 1  # never two monitoring runs at once
    catchup: bool = False  # after a pause, run once - not once per missed slot
    enabled: bool = True
    service_account: str = RUNNER_SERVICE_ACCOUNT
    no_cache: bool = False

    def __post_init__(self) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise ConfigError(f"--host must be an http(s) URL, got {self.host!r}")
        if (self.cron is None) == (self.interval_seconds is None):
            raise ConfigError("give exactly one of --cron or --interval-seconds")
        if self.cron is not None and len(self.cron.split()) != 6:
            raise ConfigError(
                f"KFP cron expressions have 6 fields (second minute hour day-of-month month day-of-week), "
                f"got {len(self.cron.split())} in {self.cron!r}; e.g. '0 0 6 * * *' = daily at 06:00"
            )
        if self.interval_seconds is not None and self.interval_seconds < 60:
            raise ConfigError(f"--interval-seconds must be >= 60, got {self.interval_seconds}")
        if self.max_concurrency < 1:
            raise ConfigError(f"--max-concurrency must be >= 1, got {self.max_concurrency}")


def schedule(config: ScheduleConfig) -> dict[str, Any]:
    """Create the recurring run (and the experiment if needed); returns its id and schedule."""
    from credit_risk.pipelines.compile import MONITORING_COMPILED_FILE

    pipeline_file = str(config.pipeline_file or MONITORING_COMPILED_FILE)
    if not Path(pipeline_file).exists():
        raise ConfigError(f"pipeline file not found: {pipeline_file} (run `credit-risk compile`)")
    check_params(config.params, pipeline_inputs(pipeline_file))
    client = _client(config.host, config.namespace)
    experiment = client.create_experiment(name=config.experiment, namespace=config.namespace)
    job = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=config.name,
        cron_expression=config.cron,
        interval_second=config.interval_seconds,
        max_concurrency=config.max_concurrency,
        no_catchup=not config.catchup,
        params=config.params,
        pipeline_package_path=pipeline_file,
        enabled=config.enabled,
        enable_caching=caching_switch(config.no_cache),
        service_account=config.service_account or None,
    )
    log.info(
        "recurring run %s (%s) created in experiment %s", job.recurring_run_id, config.name, config.experiment
    )
    return {
        "recurring_run_id": job.recurring_run_id,
        "experiment": config.experiment,
        "schedule": config.cron or f"every {config.interval_seconds}s",
        "url": f"{config.host.rstrip('/')}/#/recurringrun/details/{job.recurring_run_id}",
    }
