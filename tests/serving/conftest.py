import json
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


@pytest.fixture(scope="session")
def server(model_dir, tmp_path_factory):
    """The real predictor process on 127.0.0.1, stopped at the end of the session."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "credit_risk.serving",
                "--model_dir",
                str(model_dir),
                "--model_name",
                MODEL_NAME,
                "--http_port",
                str(port),
            ],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{base}/v1/models/{MODEL_NAME}", proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
