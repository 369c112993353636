import json

import pandas as pd
import pytest

from credit_risk import steps
from credit_risk.dataset import data, validation
from credit_risk.errors import DataValidationError
from tests.helpers import CREDIT_CSV, GERMAN_CSV, GERMAN_SPEC, read_rows, write_rows


@pytest.mark.parametrize(
    "csv_path, spec_fixture, rows", [(GERMAN_CSV, "german_spec", 1000), (CREDIT_CSV, "credit_spec", 4454)]
)
def test_bundled_data_passes_and_writes_every_output(tmp_path, request, csv_path, spec_fixture, rows):
    result = validation.validate(str(csv_path), request.getfixturevalue(spec_fixture), tmp_path)
    assert result.passed, result.summary()
    assert result.num_rows == rows
    for name in (
        validation.STATS_FILE,
        validation.SCHEMA_FILE,
        validation.TFDV_ANOMALIES_FILE,
        validation.STATS_HTML_FILE,
        validation.REPORT_FILE,
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert "<facets-overview" in (tmp_path / validation.STATS_HTML_FILE).read_text()
    assert json.loads((tmp_path / validation.REPORT_FILE).read_text())["passed"] is True


def test_schema_carries_spec_types_presence_and_label_domain(tmp_path, credit_spec):
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    validation.validate(str(CREDIT_CSV), credit_spec, tmp_path)
    schema = tfdv.load_schema_text(str(tmp_path / validation.SCHEMA_FILE))
    by_name = {f.name: f for f in schema.feature}
    assert by_name["Income"].type == schema_pb2.FLOAT and by_name["Income"].presence.min_fraction == 0.0
    assert by_name["Age"].presence.min_fraction == 1.0
    assert by_name["Home"].type == schema_pb2.BYTES
    assert (by_name["default"].int_domain.min, by_name["default"].int_domain.max) == (0, 1)


def test_text_in_numeric_column_is_reported_by_tfdv_and_by_row(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    rows[41][header.index("age_in_years")] = "forty"
    path = write_rows(tmp_path / "bad.csv", header, rows)
    result = validation.validate(str(path), german_spec, tmp_path / "out")
    assert not result.passed
    by_source = {(a.source, a.column) for a in result.anomalies}
    assert by_source == {("tfdv", "age_in_years"), ("spec", "age_in_years")}
    tfdv_kind = next(a.kind for a in result.anomalies if a.source == "tfdv")
    assert "FEATURE_TYPE_LOW_FRACTION_PRESENT" in tfdv_kind  # the text became a missing value
    assert "row 42 (file line 43) value 'forty'" in result.summary()


def test_missing_column_is_reported(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    drop = header.index("housing")
    path = write_rows(
        tmp_path / "bad.csv",
        [h for i, h in enumerate(header) if i != drop],
        [[v for i, v in enumerate(r) if i != drop] for r in rows],
    )
    result = validation.validate(str(path), german_spec, tmp_path / "out")
    assert {a.column for a in result.anomalies} == {"housing"}
    assert any("missing" in a.description.lower() for a in result.anomalies)


def test_validate_step_fails_and_writes_no_snapshot(tmp_path):
    header, rows = read_rows(GERMAN_CSV)
    rows[0][header.index("duration_in_month")] = "six"
    path = write_rows(tmp_path / "bad.csv", header, rows)
    snapshot = tmp_path / "snapshot.csv"
    with pytest.raises(DataValidationError, match="duration_in_month"):
        steps.validate_step(str(path), str(GERMAN_SPEC), str(tmp_path / "out"), str(snapshot))
    assert not snapshot.exists()


def test_validate_step_snapshot_is_exactly_the_spec_columns(tmp_path, german_spec):
    snapshot = tmp_path / "validated_data"  # a KFP artifact path: no extension
    steps.validate_step(str(GERMAN_CSV), str(GERMAN_SPEC), str(tmp_path / "out"), str(snapshot))
    typed = pd.read_parquet(snapshot)  # typed by the spec: later steps never parse text again
    assert list(typed.columns) == german_spec.columns and len(typed) == 1000
    pd.testing.assert_frame_equal(typed, data.load_dataset(str(GERMAN_CSV), german_spec))
    assert data.load_dataset(str(snapshot), german_spec).equals(typed)  # read back by its content
    assert not list(tmp_path.glob(".*partial"))


def test_out_of_range_is_reported_by_tfdv_from_the_spec_range(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    rows[10][header.index("age_in_years")] = "150"
    result = validation.validate(
        str(write_rows(tmp_path / "bad.csv", header, rows)), german_spec, tmp_path / "o"
    )
    by_source = {(a.source, a.column, a.kind) for a in result.anomalies}
    assert ("spec", "age_in_years", "out_of_range") in by_source
    assert any(a.source == "tfdv" and a.column == "age_in_years" for a in result.anomalies)
