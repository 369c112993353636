"""The one typing rule (credit_risk.spec.values) and the typed Parquet tables the steps hand on."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from credit_risk.dataset import data, data_stats
from credit_risk.errors import DataError
from credit_risk.spec import values
from tests.helpers import CREDIT_CSV, GERMAN_CSV


@pytest.mark.parametrize("csv", [GERMAN_CSV, CREDIT_CSV], ids=["german_credit", "credit_data"])
def test_strict_typing_and_the_statistics_typing_agree_on_valid_data(csv, german_spec, credit_spec):
    spec = german_spec if csv == GERMAN_CSV else credit_spec
    strict = values.typed(data.read_raw(str(csv)), spec, str(csv), 1, 1)
    batches = [values.typed_batch(b, spec) for b in data_stats.raw_batches(str(csv), batch_rows=4096)]
    lenient = pd.concat([b.to_pandas() for b in batches], ignore_index=True)[spec.columns]
    lenient = lenient.where(lenient.notna(), np.nan)  # Arrow's null is None in an object column
    pd.testing.assert_frame_equal(strict, lenient)
    assert batches[0].schema.equals(values.arrow_schema(spec).remove_metadata())


def test_strict_typing_names_every_bad_column_with_rows_and_values(german_spec):
    raw = data.read_raw(str(GERMAN_CSV)).head(5)
    raw.loc[3, "duration_in_month"] = "six"
    raw.loc[1, "default"] = "2"
    with pytest.raises(DataError) as e:
        values.typed(raw, german_spec, "d.csv", 1, line_offset=1)
    assert "column 'duration_in_month' row 4 (file line 5) value 'six' is not a number" in str(e.value)
    assert "label 'default' row 2 (file line 3) value '2' is not 0 or 1" in str(e.value)
    lenient = values.typed_batch(pa.RecordBatch.from_pandas(raw, preserve_index=False), german_spec)
    assert lenient.column(lenient.schema.names.index("duration_in_month")).null_count == 1


def test_a_typed_table_is_parquet_by_its_content_and_never_half_written(tmp_path, german_spec):
    frame = data.load_dataset(str(GERMAN_CSV), german_spec)
    target = tmp_path / "validated_data"  # a KFP artifact path: no extension
    with data_stats.TypedTableWriter(target, german_spec) as table:
        table.write(frame.head(600))
        assert not target.exists()  # only the partial file beside it, until commit
        table.write(frame.iloc[600:])
        table.commit()
    assert data_stats.is_parquet(str(target)) and not data_stats.is_parquet(str(GERMAN_CSV))
    pd.testing.assert_frame_equal(data.load_dataset(str(target), german_spec), frame)
    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError), data_stats.TypedTableWriter(broken, german_spec) as table:
        table.write(frame.head(10))
        raise RuntimeError("the step fails half-way")
    assert list(tmp_path.iterdir()) == [target]  # no table, no partial
    with data_stats.TypedTableWriter(tmp_path / "empty", german_spec) as table:
        table.commit()
    assert list(pd.read_parquet(tmp_path / "empty").columns) == german_spec.columns


def test_one_date_rule_for_typing_and_the_row_checks(tmp_path):
    """ISO text that prints back as written, Parquet/database dates as they are; strptime alone
    would roll 2024-02-30 over to March. The row checks (data.DataChecks) use the same rule."""
    import datetime as dt

    from credit_risk.spec import feature_spec

    text = pa.array(["2024-01-15", "2024-02-30", "2024-1-5", "15/01/2024", None, "2024-02-29"])
    assert values.dates(text).to_pylist() == ["2024-01-15", None, None, None, None, "2024-02-29"]
    stamps = pd.Series(pd.to_datetime(["2024-03-01 10:30", None]))
    assert values.dates(values.arrow(stamps)).to_pylist() == ["2024-03-01", None]
    objects = pd.Series([dt.date(2024, 5, 6), None], dtype=object)
    assert values.dates(values.arrow(objects)).to_pylist() == ["2024-05-06", None]
    spec = feature_spec.from_dict(
        {"name": "d", "label": "default", "origination_date": "booked_on",
         "features": [{"name": "x", "type": "numeric"}]}
    )  # fmt: skip
    raw = pd.DataFrame({"x": ["1", "2"], "default": ["0", "1"], "booked_on": ["2024-01-15", "2024-02-30"]})
    (problem,) = [p for p in data.find_problems(raw, spec) if p.kind == "bad_date"]
    assert "row 2 (file line 3) value '2024-02-30'" in problem.message
