import math

import numpy as np
import pytest

from credit_risk import contract, feature_spec
from tests.helpers import CREDIT_SPEC

SPEC = feature_spec.load(CREDIT_SPEC)
GOOD = {
    "Seniority": 9,
    "Home": "rent",
    "Time": 60,
    "Age": 30,
    "Marital": "married",
    "Records": "no",
    "Job": "freelance",
    "Expenses": 73,
    "Income": 129.0,
    "Assets": 0.0,
    "Debt": 0.0,
    "Amount": 800,
    "Price": 846,
}


def parse(*instances, **kw):
    return contract.parse_instances({"instances": list(instances)}, SPEC, **kw)


def test_good_instances_become_column_arrays():
    arrays = contract.columns_to_arrays(parse(GOOD, {**GOOD, "Income": None, "Home": None}), SPEC)
    assert arrays["Age"].dtype == np.float32 and arrays["Age"].shape == (2, 1)
    assert math.isnan(arrays["Income"][1, 0])
    assert arrays["Home"][1, 0] == contract.MISSING_CATEGORY
    assert arrays["Home"][0, 0] == "rent"


def test_missing_nullable_field_means_null():
    instance = dict(GOOD)
    del instance["Debt"]
    assert parse(instance)["Debt"] == [None]


@pytest.mark.parametrize(
    "change, index_field, message",
    [
        ({"Age": "thirty"}, "instance 1, field 'Age'", "expected a number, got str 'thirty'"),
        ({"Age": True}, "instance 1, field 'Age'", "expected a number, got bool"),
        ({"Age": None}, "instance 1, field 'Age'", "required and may not be null"),
        ({"Home": 3}, "instance 1, field 'Home'", "expected a string, got int 3"),
        ({"colour": "red"}, "instance 1, field 'colour'", "unknown field(s) ['colour']"),
    ],
)
def test_bad_value_names_instance_and_field(change, index_field, message):
    with pytest.raises(contract.RequestError) as e:
        parse(GOOD, {**GOOD, **change})
    assert str(e.value).startswith(index_field) and message in str(e.value)
    assert e.value.index == 1


def test_missing_required_field():
    instance = dict(GOOD)
    del instance["Amount"]
    with pytest.raises(contract.RequestError, match="instance 0, field 'Amount': is required but missing"):
        parse(instance)


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "must be a JSON object"),
        ({}, "'instances' must be a non-empty list"),
        ({"instances": []}, "non-empty"),
        ({"instances": [[1, 2]]}, "instance 0: expected an object"),
    ],
)
def test_bad_body_shape(payload, message):
    with pytest.raises(contract.RequestError, match=message):
        contract.parse_instances(payload, SPEC)


def test_batch_limit():
    with pytest.raises(contract.RequestError, match="batch of 3 instances exceeds the limit of 2"):
        parse(GOOD, GOOD, GOOD, max_instances=2)


def test_non_finite_number():
    with pytest.raises(contract.RequestError, match="finite"):
        parse({**GOOD, "Income": float("inf")})


def test_out_of_range_value_is_refused():
    with pytest.raises(contract.RequestError, match="instance 0, field 'Age': 150 is above the maximum 100"):
        parse({**GOOD, "Age": 150})
    with pytest.raises(contract.RequestError, match="field 'Income': -5 is below the minimum 0"):
        parse({**GOOD, "Income": -5})
