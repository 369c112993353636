"""Submit the compiled pipeline to a Kubeflow Pipelines endpoint with ``kfp.Client`` (CI's path).

Credentials come from the environment, never from arguments that end up in shell history or logs:
``KFP_TOKEN`` (bearer token, e.g. a service-account token) or ``KFP_COOKIE`` (an authservice
session cookie, ``name=value``). Parameters are checked against the compiled pipeline's inputs
before anything is sent.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from credit_risk.errors import ConfigError

log = logging.getLogger(__name__)

TERMINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}


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

    def __post_init__(self) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise ConfigError(f"--host must be an http(s) URL, got {self.host!r}")
        if self.timeout_s <= 0:
            raise ConfigError(f"--timeout must be > 0 seconds, got {self.timeout_s}")


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


def submit(config: SubmitConfig) -> dict[str, Any]:
    """Create the run (and experiment if needed); with ``wait``, poll until it ends.

    Returns {"run_id", "experiment", "url", and with wait: "state", "seconds"}.
    """
    import kfp

    from credit_risk.pipelines.compile import COMPILED_FILE

    pipeline_file = str(config.pipeline_file or COMPILED_FILE)
    if not Path(pipeline_file).exists():
        raise ConfigError(f"pipeline file not found: {pipeline_file} (run `credit-risk compile`)")
    check_params(config.params, pipeline_inputs(pipeline_file))
    client = kfp.Client(
        host=config.host,
        namespace=config.namespace,
        existing_token=os.environ.get("KFP_TOKEN") or None,
        cookies=os.environ.get("KFP_COOKIE") or None,
    )
    result = client.create_run_from_pipeline_package(
        pipeline_file,
        arguments=config.params,
        run_name=config.run_name,
        experiment_name=config.experiment,
        namespace=config.namespace,
    )
    outcome: dict[str, Any] = {
        "run_id": result.run_id,
        "experiment": config.experiment,
        "url": f"{config.host.rstrip('/')}/#/runs/details/{result.run_id}",
    }
    log.info("submitted run %s to %s (experiment %s)", result.run_id, config.host, config.experiment)
    if config.wait:
        start = time.monotonic()
        run = client.wait_for_run_completion(result.run_id, timeout=config.timeout_s)
        outcome["state"] = str(run.state)
        outcome["seconds"] = round(time.monotonic() - start, 1)
        log.info("run %s ended %s after %.0fs", result.run_id, run.state, outcome["seconds"])
    return outcome
