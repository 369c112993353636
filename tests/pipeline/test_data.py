import pandas as pd
import pytest

from credit_risk.dataset import data
from credit_risk.errors import DataError
from tests.helpers import CREDIT_CSV, GERMAN_CSV, read_rows, write_rows


def _kinds(problems):
    return {(p.column, p.kind) for p in problems}


def test_bundled_data_has_no_problems(german_spec, credit_spec):
    assert data.find_problems(data.read_raw(str(GERMAN_CSV)), german_spec) == []
    assert data.find_problems(data.read_raw(str(CREDIT_CSV)), credit_spec) == []


def test_load_types_columns_and_keeps_missing_values(credit_spec):
    frame = data.load_dataset(str(CREDIT_CSV), credit_spec)
    assert len(frame) == 4454
    assert frame["Income"].dtype == "float64" and frame["Income"].isna().sum() == 381
    assert frame["Home"].isna().sum() == 6
    assert frame["default"].dtype == "int64"
    assert abs(frame["default"].mean() - 0.282) < 0.001


def test_text_in_numeric_column_names_column_row_and_value(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    col = header.index("credit_amount")
    rows[6][col] = "lots"
    problems = data.find_problems(
        data.read_raw(str(write_rows(tmp_path / "d.csv", header, rows))), german_spec
    )
    assert _kinds(problems) == {("credit_amount", "not_numeric")}
    assert "row 7 (file line 8) value 'lots'" in problems[0].message


def test_missing_column_and_bad_label(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    drop = header.index("purpose")
    header2 = [h for i, h in enumerate(header) if i != drop]
    rows2 = [[v for i, v in enumerate(r) if i != drop] for r in rows]
    rows2[0][-1] = "2"
    problems = data.find_problems(
        data.read_raw(str(write_rows(tmp_path / "d.csv", header2, rows2))), german_spec
    )
    assert _kinds(problems) == {("purpose", "missing_column"), ("default", "bad_label")}
    assert any("row 1 (file line 2) value '2'" in p.message for p in problems)


def test_null_in_non_nullable_column(tmp_path, credit_spec):
    header, rows = read_rows(CREDIT_CSV)
    rows[3][header.index("Age")] = ""
    problems = data.find_problems(
        data.read_raw(str(write_rows(tmp_path / "d.csv", header, rows))), credit_spec
    )
    assert _kinds(problems) == {("Age", "unexpected_null")}
    assert "row 4" in problems[0].message


def test_zero_rows_single_class_and_empty_file(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    assert _kinds(
        data.find_problems(data.read_raw(str(write_rows(tmp_path / "h.csv", header, []))), german_spec)
    ) == {("*", "no_rows")}
    good = [r for r in rows if r[-1] == "0"]
    assert ("default", "single_class") in _kinds(
        data.find_problems(data.read_raw(str(write_rows(tmp_path / "s.csv", header, good))), german_spec)
    )
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        data.read_raw(str(tmp_path / "e.csv"))


def test_load_dataset_lists_every_problem(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    rows[0][header.index("duration_in_month")] = "x"
    rows[1][header.index("purpose")] = ""
    with pytest.raises(DataError) as e:
        data.load_dataset(str(write_rows(tmp_path / "d.csv", header, rows)), german_spec)
    assert "'duration_in_month'" in str(e.value) and "'purpose'" in str(e.value)


def test_split_is_stratified_seeded_and_disjoint(german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec).reset_index()
    train, held = data.split_train_eval(frame, german_spec, 0.25, seed=7)
    train2, _ = data.split_train_eval(frame, german_spec, 0.25, seed=7)
    assert len(held) == 250 and len(train) == 750
    assert set(train["index"]).isdisjoint(held["index"])
    assert train["index"].tolist() == train2["index"].tolist()
    assert abs(held["default"].mean() - 0.30) < 0.01
    with pytest.raises(DataError, match="eval_fraction"):
        data.split_train_eval(frame, german_spec, 0.9, seed=7)


def test_sample_request_uses_model_inputs_and_null(credit_spec):
    body = data.sample_request(str(CREDIT_CSV), credit_spec, rows=2, offset=28)
    assert set(body["instances"][0]) == {f.name for f in credit_spec.model_features}
    assert body["instances"][1]["Income"] is None  # row 29 has a missing income
    assert isinstance(body["instances"][0]["Age"], float)


def test_load_dataset_types_each_column_by_the_spec_from_csv_and_parquet(tmp_path, german_spec):
    """One typing rule (values.typed) whatever the file: the same frame from CSV text and Parquet."""
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    assert list(frame.columns) == german_spec.columns
    for f in german_spec.features:
        assert frame[f.name].dtype == ("float64" if f.is_numeric else object), f.name
    assert frame["default"].dtype == "int64"
    frame.to_parquet(tmp_path / "g.parquet", index=False)
    pd.testing.assert_frame_equal(data.load_dataset(str(tmp_path / "g.parquet"), german_spec), frame)


def test_out_of_range_value_names_row_and_value(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    rows[4][header.index("age_in_years")] = "7"
    path = write_rows(tmp_path / "d.csv", header, rows)
    (problem,) = data.find_problems(data.read_raw(str(path)), german_spec)
    assert (problem.column, problem.kind) == ("age_in_years", "out_of_range")
    assert "must be in [18, 100]" in problem.message and "row 5 (file line 6) value '7'" in problem.message


def test_unexpected_column_is_a_problem(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    path = write_rows(tmp_path / "d.csv", [*header, "zip_code"], [[*r, "12345"] for r in rows])
    (problem,) = data.find_problems(data.read_raw(str(path)), german_spec)
    assert (problem.column, problem.kind) == ("zip_code", "unexpected_column")


def test_duplicated_rows_above_the_limit(tmp_path, german_spec):
    header, rows = read_rows(GERMAN_CSV)
    few = write_rows(tmp_path / "few.csv", header, rows + rows[:5])  # 0.5 %: tolerated
    assert data.find_problems(data.read_raw(str(few)), german_spec) == []
    many = write_rows(tmp_path / "many.csv", header, rows + rows[:30])  # 2.9 %
    (problem,) = data.find_problems(data.read_raw(str(many)), german_spec)
    assert problem.kind == "duplicate_rows" and "30 of 1030 rows" in problem.message
    assert "row 1001 (file line 1002)" in problem.message


def test_wrong_delimiter_reports_every_missing_column(tmp_path, credit_spec, german_spec):
    header, rows = read_rows(CREDIT_CSV)
    (tmp_path / "semi.csv").write_text("\n".join(";".join(r) for r in [header, *rows[:20]]) + "\n")
    problems = data.find_problems(data.read_raw(str(tmp_path / "semi.csv")), credit_spec)
    assert {p.kind for p in problems} == {"missing_column", "unexpected_column"}
    assert sum(p.kind == "missing_column" for p in problems) == len(credit_spec.columns)
    # german_credit's values contain commas: the file does not even parse, and says where
    header, rows = read_rows(GERMAN_CSV)
    (tmp_path / "semi2.csv").write_text("\n".join(";".join(r) for r in [header, *rows[:20]]) + "\n")
    with pytest.raises(DataError, match=r"not a readable CSV: file line 2: Expected 1 columns, got 2"):
        data.read_raw(str(tmp_path / "semi2.csv"))


def test_an_unreadable_line_deep_in_a_csv_is_named_by_its_file_line(tmp_path):
    """The reader parses ~1 MB blocks: the line is counted across them (the header is line 1)."""
    rows = ["a,b", *(f"{i},{i}" for i in range(400_000))]
    rows.insert(300_001, "1,2,3")  # file line 300,002
    (tmp_path / "deep.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"file line 300002: Expected 2 columns, got 3"):
        data.read_raw(str(tmp_path / "deep.csv"))
