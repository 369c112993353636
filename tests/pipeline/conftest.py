import logging

import pytest

from credit_risk.spec import feature_spec
from tests.helpers import CREDIT_SPEC, GERMAN_SPEC

logging.getLogger("tensorflow").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def german_spec():
    return feature_spec.load(GERMAN_SPEC)


@pytest.fixture(scope="session")
def credit_spec():
    return feature_spec.load(CREDIT_SPEC)


@pytest.fixture(scope="session")
def german_model_dir(tmp_path_factory, german_spec):
    """A small real exported model (2 epochs): for steps that need a model, not a good one."""
    from credit_risk.dataset import data
    from credit_risk.modeling import training
    from tests.helpers import GERMAN_CSV

    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    out = tmp_path_factory.mktemp("german-model") / "model"
    training.train_and_export(frame, german_spec, training.TrainingConfig(epochs=2), out)
    return out


@pytest.fixture(scope="session")
def german_run(tmp_path_factory):
    """The whole pipeline on german_credit with every default, run once on the KFP local runner and
    shared by the tests that only read its outputs (the end-to-end checks, the notebook): a full
    run costs minutes on 2 cores, and running it twice would test nothing more."""
    from credit_risk.app.local_run import run_local
    from tests.helpers import GERMAN_CSV

    return run_local(str(GERMAN_CSV), str(GERMAN_SPEC), tmp_path_factory.mktemp("german-run"))


@pytest.fixture(scope="session")
def gcs():
    """A bucket on the real fake-gcs-server on 127.0.0.1: yields (storage client, bucket name)."""
    from credit_risk import storage
    from tests.gcs_emulator import gcs_emulator

    with gcs_emulator():
        client = storage.gcs.client()
        client.create_bucket("credit-risk-test")
        yield client, "credit-risk-test"


@pytest.fixture(scope="session")
def s3():
    """A bucket on moto's S3 API server on 127.0.0.1: yields (boto3 client, bucket name)."""
    from credit_risk import storage
    from tests.s3_server import s3_server

    with s3_server():
        client = storage.s3.client()
        client.create_bucket(Bucket="credit-risk-test")
        yield client, "credit-risk-test"


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on 127.0.0.1 with the bundled CSVs loaded as tables
    ``german_credit`` and ``credit_data`` (tests/postgres_server.py)."""
    from tests.helpers import CREDIT_CSV, GERMAN_CSV
    from tests.postgres_server import load_csv, postgres_server

    with postgres_server() as pg:
        load_csv(pg, GERMAN_CSV, "german_credit")
        load_csv(pg, CREDIT_CSV, "credit_data")
        yield pg
