import pytest
import yaml

from credit_risk.errors import FeatureSpecError
from credit_risk.spec import feature_spec
from tests.helpers import GERMAN_CSV, GERMAN_SPEC, read_rows


def test_bundled_specs_cover_every_csv_column(german_spec, credit_spec):
    for spec in (german_spec, credit_spec):
        header, _ = read_rows(spec.data_path())
        assert sorted(header) == sorted(spec.columns)


def test_german_protected_attributes_kept_out_of_model(german_spec):
    protected = {f.name for f in german_spec.protected_features}
    inputs = {f.name for f in german_spec.model_features}
    assert protected == {"personal_status_and_sex", "age_in_years", "foreign_worker"}
    assert "personal_status_and_sex" not in inputs and "foreign_worker" not in inputs
    assert len(inputs) == 18


def test_round_trip_through_yaml(german_spec):
    again = feature_spec.from_dict(yaml.safe_load(german_spec.to_yaml()))
    assert again == german_spec


def test_an_origination_date_is_a_column_but_never_a_feature(german_spec):
    raw = _raw()
    raw["origination_date"] = "opened_on"
    spec = feature_spec.from_dict(raw)
    assert spec.date_column == "opened_on" and spec.columns == [*german_spec.columns, "opened_on"]
    assert (
        spec.feature_names == german_spec.feature_names and spec.model_features == german_spec.model_features
    )
    assert feature_spec.from_dict(yaml.safe_load(spec.to_yaml())) == spec
    assert german_spec.date_column is None and "origination_date" not in german_spec.to_dict()


def _raw():
    return yaml.safe_load(GERMAN_SPEC.read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["features"][0].update(type="text"), "features[0].type: expected one of"),
        (lambda r: r["features"].append(dict(r["features"][0])), "duplicate feature"),
        (lambda r: r.update(crosses=[["purpose", "no_such"]]), "crosses[0]: unknown feature 'no_such'"),
        (lambda r: r.update(crosses=[["purpose", "duration_in_month"]]), "only categoricals are crossed"),
        (lambda r: r["features"][0].update(nullable="yes"), "nullable: expected true/false"),
        (lambda r: r.update(label={"name": "duration_in_month"}), "is also the label"),
        (lambda r: r.update(colour="red"), "unknown keys ['colour']"),
        (lambda r: r.update(features=[]), "features: expected a non-empty list"),
        (lambda r: r.update(origination_date="2024-01-01"), "origination_date: expected a column name"),
        (lambda r: r.update(origination_date="default"), "origination_date: 'default' is also the label"),
        (lambda r: r.update(origination_date="age_in_years"), "is also the origination_date"),
    ],
)
def test_bad_spec_names_key_and_value(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(FeatureSpecError) as e:
        feature_spec.from_dict(raw, source_uri="spec.yaml")
    assert message in str(e.value)


def test_missing_spec_file_is_a_clear_error(tmp_path):
    with pytest.raises(FeatureSpecError, match="not found"):
        feature_spec.load(tmp_path / "nope.yaml")


def test_data_path_is_relative_to_spec(german_spec):
    assert german_spec.data_path() == str(GERMAN_CSV)


@pytest.mark.parametrize(
    "feature, message",
    [
        ({"name": "x", "type": "categorical", "min": 0}, "a range applies to numeric features only"),
        ({"name": "x", "type": "numeric", "min": 5, "max": 1}, "min 5 must be below max 1"),
        ({"name": "x", "type": "numeric", "max": "high"}, "max: expected a number, got 'high'"),
    ],
)
def test_bad_range_names_the_feature(feature, message):
    raw = _raw()
    raw["features"].append(feature)
    with pytest.raises(FeatureSpecError, match=message):
        feature_spec.from_dict(raw)


def test_range_check(german_spec):
    age = german_spec.feature("age_in_years")
    assert (age.min, age.max) == (18.0, 100.0)
    assert age.out_of_range(17.0) == "17.0 is below the minimum 18"
    assert age.out_of_range(40.0) is None
