import math

import numpy as np
import pytest

from credit_risk.spec import contract, feature_spec
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


def _tensors(instances, skip=()):
    out = {}
    for f in SPEC.model_features:
        if f.name in skip:
            continue
        datatype = "FP32" if f.is_numeric else "BYTES"
        out[f.name] = (datatype, [len(instances), 1], [i.get(f.name) for i in instances])
    return out


def test_v2_tensors_give_the_same_columns_as_v1_instances():
    instances = [GOOD, {**GOOD, "Age": 45, "Home": "owner"}]
    assert contract.parse_tensors(_tensors(instances), SPEC) == parse(*instances)


def test_v2_nullable_tensor_may_be_left_out_required_may_not():
    assert contract.parse_tensors(_tensors([GOOD], skip={"Income"}), SPEC)["Income"] == [None]
    with pytest.raises(contract.RequestError, match="field 'Age': is a required input tensor but is missing"):
        contract.parse_tensors(_tensors([GOOD], skip={"Age"}), SPEC)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.update(Age=("BYTES", [1, 1], ["30"])), "field 'Age': datatype BYTES is not one of"),
        (lambda t: t.update(Home=("FP32", [1, 1], [1.0])), "field 'Home': datatype FP32"),
        (
            lambda t: t.update(Age=("FP32", [2, 1], [30.0])),
            "field 'Age': shape [2, 1] does not hold 1 values",
        ),
        (lambda t: t.update(Age=("FP32", [2], [30.0, 40.0])), "disagree on the number of instances"),
        (lambda t: t.update(Salary=("FP32", [1], [1.0])), "unknown input tensor(s) ['Salary']"),
        (
            lambda t: t.update(Age=("FP32", [1, 1], [150.0])),
            "instance 0, field 'Age': 150.0 is above the maximum 100",
        ),
    ],
)
def test_v2_bad_tensors_are_named(mutate, message):
    tensors = _tensors([GOOD])
    mutate(tensors)
    with pytest.raises(contract.RequestError) as e:
        contract.parse_tensors(tensors, SPEC)
    assert message in str(e.value)


def test_metadata_lists_every_model_input():
    meta = contract.input_metadata(SPEC)
    assert [m["name"] for m in meta] == [f.name for f in SPEC.model_features]
    assert {m["name"]: m["datatype"] for m in meta}["Home"] == "BYTES"
    assert contract.output_metadata() == [
        {"name": "pd", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "decision", "datatype": "BYTES", "shape": [-1, 1]},
        {"name": "score", "datatype": "FP32", "shape": [-1, 1]},
    ]
    full = [m["name"] for m in contract.output_metadata(graded=True, explained=True)]
    assert full == ["pd", "decision", "score", "grade", "reason_codes", "reasons"]
    assert contract.output_metadata(graded=True, explained=True)[-1]["shape"] == [-1, -1]


def test_reason_features_never_include_protected_attributes():
    german = feature_spec.load(CREDIT_SPEC.parent / "german_credit.spec.yaml")
    names = {f.name for f in contract.reason_features(german)}
    assert "age_in_years" not in names and "personal_status_and_sex" not in names
    assert "duration_in_month" in names


def test_occlusion_grid_and_reasons_against_a_hand_computed_case():
    spec = feature_spec.from_dict(
        {
            "name": "toy",
            "label": "y",
            "features": [
                {"name": "a", "type": "numeric", "reason_text": "Too much a"},
                {"name": "b", "type": "categorical", "description": "kind of b"},
                {"name": "c", "type": "numeric", "protected": True},
            ],
        }
    )
    arrays = contract.columns_to_arrays({"a": [5.0, 1.0], "b": ["x", "y"], "c": [30.0, 40.0]}, spec)
    grid = contract.occlusion_arrays(arrays, {"a": 1.0, "b": "y", "c": 35.0}, spec)
    # rows: applicants (2), then a -> baseline (2), then b -> baseline (2); c is protected: never occluded
    assert grid["a"].ravel().tolist() == [5.0, 1.0, 1.0, 1.0, 5.0, 1.0]
    assert grid["b"].ravel().tolist() == ["x", "y", "x", "y", "y", "y"]
    assert grid["c"].ravel().tolist() == [30.0, 40.0] * 3
    scores = np.array([0.5, 0.2, 0.3, 0.2, 0.45, 0.2])  # applicant, a-occluded, b-occluded
    pds, reasons = contract.reasons_from_scores(scores, 2, spec, top_k=4)
    assert pds.tolist() == [0.5, 0.2]
    a = {"feature": "a", "contribution": 0.2, "statement": "Too much a"}  # its reason_text
    b = {"feature": "b", "contribution": 0.05, "statement": "Kind of b"}  # from its description
    assert reasons[0] == [a, b]
    assert reasons[1] == []  # the second applicant is the baseline: nothing pushes its PD up
    assert contract.reasons_from_scores(scores, 2, spec, top_k=1)[1][0] == [a]
    # a decline must state a reason: with nothing positive, the top-ranked feature, marked as such
    _, forced = contract.reasons_from_scores(scores, 2, spec, top_k=4, at_least_one=np.array([True, True]))
    assert forced[0] == [a, b]
    assert forced[1] == [
        {"feature": "a", "contribution": 0.0, "statement": "Too much a", "basis": "largest_effect"}
    ]
    codes, statements = contract.reason_tensors([forced[0], None], top_k=3)
    assert codes == ["a", "b", "", "", "", ""] and statements == ["Too much a", "Kind of b", "", "", "", ""]


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"parameters": {"reasons": "yes"}}, "parameters.reasons must be true or false"),
        ({"parameters": {"top_k": 0}}, "parameters.top_k must be an integer from 1 to 20"),
        ({"parameters": []}, "'parameters' must be an object"),
    ],
)
def test_bad_options(payload, message):
    with pytest.raises(contract.RequestError, match=message):
        contract.parse_options(payload)
    assert contract.parse_options({}) == (True, contract.DEFAULT_TOP_REASONS)


def test_scorecard_points_against_hand_computed_values():
    card = contract.Scorecard(base=600, base_odds=50, pdo=20)
    assert card.points(1 / 51) == pytest.approx(600.0)  # odds 50:1 -> base points
    assert card.points(1 / 101) == pytest.approx(620.0, abs=0.01)  # odds doubled (~100:1) -> +pdo
    assert card.points(1 / 26) == pytest.approx(580.0, abs=0.01)  # odds halved -> -pdo
    assert card.points(0.0) > card.points(0.01) > card.points(0.5) > card.points(1.0)  # finite at the ends


def test_decision_at_the_threshold():
    assert contract.decide(0.49, 0.5) == contract.APPROVE
    assert contract.decide(0.5, 0.5) == contract.DECLINE


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "must be a JSON object with 'inputs'"),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"inputs": [5]}, r"inputs\[0\] must be an object"),
        ({"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [1]}]}, r"inputs\[0\].name"),
        ({"inputs": [{"name": "Age", "datatype": 3, "shape": [1], "data": [1]}]}, "field 'Age': 'datatype'"),
        (
            {"inputs": [{"name": "Age", "datatype": "FP32", "shape": [True], "data": [1]}]},
            "'shape' must be a list of integers",
        ),
        ({"inputs": [{"name": "Age", "datatype": "FP32", "shape": [1], "data": 1}]}, "'data' must be a list"),
        (
            {"id": 7, "inputs": [{"name": "Age", "datatype": "FP32", "shape": [1], "data": [1]}]},
            "'id' must be a string",
        ),
    ],
)
def test_v2_envelope_errors_name_the_part(body, message):
    with pytest.raises(contract.RequestError, match=message):
        contract.parse_v2_body(body)


def test_v2_envelope_flattens_nested_data_and_refuses_duplicates():
    tensors, request_id = contract.parse_v2_body(
        {"id": "r1", "inputs": [{"name": "Age", "datatype": "FP32", "shape": [2, 1], "data": [[30], [40]]}]}
    )
    assert request_id == "r1" and tensors == {"Age": ("FP32", [2, 1], [30, 40])}
    duplicate = {"name": "Age", "datatype": "FP32", "shape": [1], "data": [1]}
    with pytest.raises(contract.RequestError, match="given twice"):
        contract.parse_v2_body({"inputs": [duplicate, duplicate]})


# --- the per-row reference the vectorised occlusion and ranking replaced (kept to pin them) ------
def _reference_occlusion(arrays, baseline, spec):
    features = contract.reason_features(spec)
    out = {}
    for f in spec.model_features:
        blocks = [arrays[f.name]]
        for g in features:
            block = arrays[f.name]
            if g.name == f.name:
                value = baseline[f.name]
                make = contract.numeric_array if f.is_numeric else contract.categorical_array
                block = make([value] * len(block))
            blocks.append(block)
        out[f.name] = np.concatenate(blocks)
    return out


def _reference_reasons(pds, n, spec, top_k):
    features = contract.reason_features(spec)
    grid = np.asarray(pds, dtype=np.float64).reshape(1 + len(features), n)
    contributions = grid[0][None, :] - grid[1:]
    reasons = []
    for i in range(n):
        order = sorted(range(len(features)), key=lambda j: (-contributions[j, i], j))
        rounded = [(j, round(float(contributions[j, i]), 6)) for j in order[:top_k]]
        reasons.append(
            [
                {"feature": features[j].name, "contribution": c, "statement": features[j].reason_statement}
                for j, c in rounded
                if c > 0
            ]
        )
    return grid[0], reasons


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_vectorised_occlusion_and_reasons_equal_the_per_row_reference(n):
    german = feature_spec.load(CREDIT_SPEC.parent / "german_credit.spec.yaml")
    rng = np.random.default_rng(n)
    columns = {
        f.name: (
            [None if rng.random() < 0.1 else float(rng.integers(0, 50)) for _ in range(n)]
            if f.is_numeric
            else [None if rng.random() < 0.1 else f"v{rng.integers(0, 3)}" for _ in range(n)]
        )
        for f in german.model_features
    }
    baseline = {f.name: (7.0 if f.is_numeric else "v1") for f in german.model_features}
    arrays = contract.columns_to_arrays(columns, german)
    got, want = (
        contract.occlusion_arrays(arrays, baseline, german),
        _reference_occlusion(arrays, baseline, german),
    )
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
        np.testing.assert_array_equal(got[name], want[name])
    rows = len(next(iter(got.values())))
    # scores with many exact ties and tiny pushes, where the ordering rules matter
    scores = np.round(rng.random(rows) * 4, 0) / 8 + rng.choice([0, 1e-7, 3e-7], size=rows)
    for top_k in (1, 3, 20):
        pds, reasons = contract.reasons_from_scores(scores, n, german, top_k)
        ref_pds, ref_reasons = _reference_reasons(scores, n, german, top_k)
        assert pds.tolist() == ref_pds.tolist() and reasons == ref_reasons
