import logging

import pytest

from credit_risk import feature_spec
from tests.helpers import CREDIT_SPEC, GERMAN_SPEC

logging.getLogger("tensorflow").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def german_spec():
    return feature_spec.load(GERMAN_SPEC)


@pytest.fixture(scope="session")
def credit_spec():
    return feature_spec.load(CREDIT_SPEC)
