import contextlib
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, VENVS, free_port, wait_http_ok

MODEL_NAME = "credit-risk"


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory):
    """A model trained and exported by the pipeline environment (TF 2.16), as production does."""
    out = tmp_path_factory.mktemp("serving-fixture")
    python = VENVS / "pipeline" / "bin" / "python"
    assert python.exists(), "the pipeline environment is missing: run bin/setup-envs"
    subprocess.run(
        [str(python), "-m", "tests.make_serving_fixture", str(out)], cwd=REPO, check=True, timeout=600
    )
    return out


@pytest.fixture(scope="session")
def expected(fixture_dir):
    return json.loads((fixture_dir / "expected.json").read_text())


@pytest.fixture(scope="session")
def model_dir(fixture_dir):
    return fixture_dir / "model"


@pytest.fixture(scope="session")
def loaded_model(model_dir):
    from credit_risk.serving.model import CreditRiskModel

    model = CreditRiskModel(MODEL_NAME, str(model_dir))
    model.load()
    return model


@contextlib.contextmanager
def running_server(log_path, *args, env=None, ready_timeout=120):
    """The real predictor process on 127.0.0.1 with ``args``; yields (base URL, process)."""
    port = free_port()
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "credit_risk.serving",
                "--model_name",
                MODEL_NAME,
                "--http_port",
                str(port),
                *args,
            ],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base}/v1/models/{MODEL_NAME}", proc, timeout=ready_timeout)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def server(model_dir, tmp_path_factory):
    """The real predictor process (one worker) on 127.0.0.1, stopped at the end of the session."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(log, "--model_dir", str(model_dir)) as (base, _):
        yield base
