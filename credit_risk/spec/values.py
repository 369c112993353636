"""Raw values to the feature spec's types: the one typing rule of the package.

``type_columns`` is the one function that types raw values: each spec column (an Arrow array: CSV
text, Parquet or database values) by its kind's rule - ``numbers`` (float64), ``categories``
(text), ``labels`` (int64 0/1), ``dates`` (``YYYY-MM-DD`` text) - with the mask of its bad rows.
Two thin views of it:

- ``typed``: strict, a pandas frame for data that flows on (ingest, split, training, scoring,
  monitoring, the validated snapshot) - or one DataError naming the source, column, rows and values;
- ``typed_batch``: an Arrow batch for the statistics TFDV computes over data not yet checked - a
  bad value is null there, because ``data.DataChecks`` (which uses the same date rule) reports it.

``arrow_schema`` is the typed table's Parquet schema (the snapshot files).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit_risk.errors import DataError
from credit_risk.spec.feature_spec import FeatureSpec

DATE_FORMAT = "%Y-%m-%d"  # the one text form of a date (the spec's origination_date)


def arrow_schema(spec: FeatureSpec) -> Any:
    """The Parquet/Arrow schema of ``typed``'s output: the spec's columns in order."""
    import pyarrow as pa

    def kind(column: str) -> Any:
        if column == spec.label:
            return pa.int64()
        if column == spec.date_column:
            return pa.string()
        return pa.float64() if spec.feature(column).is_numeric else pa.string()

    return pa.schema([(c, kind(c)) for c in spec.columns])


def bad_values(
    label: str,
    column: pd.Series,
    bad: np.ndarray[Any, Any],
    first_row: int,
    line_offset: int | None,
    expected: str,
) -> str:
    """``column 'x' row 7 value 'n/a' is not a number`` (up to 3 examples, then a count)."""
    where = np.flatnonzero(bad)
    line = (
        (lambda i: f" (file line {first_row + i + line_offset})")
        if line_offset is not None
        else (lambda i: "")
    )
    examples = ", ".join(f"row {first_row + i}{line(i)} value {column.iloc[i]!r}" for i in where[:3])
    more = f" (+{len(where) - 3} more)" if len(where) > 3 else ""
    verb = "is" if len(where) == 1 else "are"
    return f"{label} {column.name!r} {examples}{more} {verb} not {expected}"


def to_dates(column: pd.Series) -> pd.Series:
    """The date rule (``dates``) as datetime64, NaT where a value is missing or not a date."""
    text = pd.Series(dates(arrow(column)).to_numpy(zero_copy_only=False), index=column.index, dtype=object)
    return pd.to_datetime(text, format=DATE_FORMAT)


# --- the one typing function and its rules, on Arrow arrays --------------------------------------------
def arrow(column: Any) -> Any:
    """A pandas column or an Arrow array as one Arrow array. An object column of mixed Python values
    (a database driver's numbers, text and None) that Arrow cannot hold as one type becomes text."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks()
    if isinstance(column, pa.Array):
        return column
    try:
        return pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if _missing(v) else str(v) for v in column], pa.string())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT


def _is_text(array: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(array.type) or pa.types.is_large_string(array.type))


def numbers(array: Any) -> Any:
    """float64; null where a value is missing or not a number. Text is parsed by pandas' rule (as
    ``data.DataChecks`` reads it; "nan" is not a number); the usual all-valid chunk takes one
    vectorised Arrow cast."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.float64())
    if not _is_text(array):
        return pc.cast(array, pa.float64())
    try:
        out = pc.cast(array, pa.float64())
        if not pc.any(pc.is_nan(out)).as_py():
            return out
    except pa.ArrowInvalid:
        pass
    parsed = pd.to_numeric(pd.Series(array.to_pandas(), dtype=object), errors="coerce")
    return pa.array(parsed.to_numpy(dtype=float), pa.float64(), mask=parsed.isna().to_numpy())


def labels(array: Any) -> Any:
    """int64 0/1; null where the value is missing or not 0 or 1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value = numbers(array)
    ok = pc.fill_null(pc.is_in(value, value_set=pa.array([0.0, 1.0])), False)
    return pc.cast(pc.if_else(ok, value, pa.scalar(None, pa.float64())), pa.int64())


def dates(array: Any) -> Any:
    """``YYYY-MM-DD`` text; null where missing or not a date. Text must be ISO (15/01/2024 vs
    01/15/2024 is never guessed); Parquet/database dates and timestamps are taken as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if _is_text(array):
        parsed = pc.strptime(array, format=DATE_FORMAT, unit="s", error_is_null=True)
        text = pc.strftime(parsed, format=DATE_FORMAT)
        # strptime rolls 2024-02-30 over to March and reads 2024-1-5: only a date that prints back
        # as it was written is one
        same = pc.fill_null(pc.equal(text, pc.cast(array, pa.string())), False)
        return pc.if_else(same, text, pa.scalar(None, pa.string()))
    if pa.types.is_timestamp(kind):
        return pc.cast(pc.cast(array, pa.date32()), pa.string())
    if pa.types.is_date(kind):
        return pc.cast(array, pa.string())
    return pa.nulls(len(array), pa.string())


def categories(array: Any) -> Any:
    """Text; a Parquet or database column of numbers (or anything else) as its text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(array.type):
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.string())
    return pc.cast(array, pa.string())


# (what the column is, the rule, what a bad value is not): the spec's four kinds of column
_RULES = {
    "numeric": ("column", numbers, "a number"),
    "categorical": ("column", categories, ""),
    "label": ("label", labels, "0 or 1"),
    "date": ("column", dates, "a date (YYYY-MM-DD)"),
}


def kind_of(spec: FeatureSpec, column: str) -> str:
    """Which of the four kinds a spec column is: numeric, categorical, label or date."""
    if column == spec.label:
        return "label"
    if column == spec.date_column:
        return "date"
    return "numeric" if spec.feature(column).is_numeric else "categorical"


def type_columns(columns: dict[str, Any], spec: FeatureSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one typing function: each of the spec's columns (Arrow arrays) by its kind's rule. Returns
    the typed arrays and, per column with bad values, the mask of its bad rows (a value present
    that does not parse; for the label and the date, a missing value too)."""
    import pyarrow.compute as pc

    typed_columns, bad = {}, {}
    for name, array in columns.items():
        kind = kind_of(spec, name)
        out = _RULES[kind][1](array)
        if kind != "categorical":
            wrong = (
                pc.is_null(out) if kind in ("label", "date") else pc.and_(pc.is_null(out), pc.is_valid(array))
            )
            mask = wrong.to_numpy(zero_copy_only=False)
            if mask.any():
                bad[name] = mask
        typed_columns[name] = out
    return typed_columns, bad


def typed(
    raw: pd.DataFrame,
    spec: FeatureSpec,
    where: str,
    first_row: int,
    line_offset: int | None = None,
    model_inputs_only: bool = False,
) -> pd.DataFrame:
    """Spec columns with spec types (numerics float64, categoricals str/NaN, label int64, the
    origination date ``YYYY-MM-DD`` text), or one DataError naming the source, and for every column
    with bad values the rows (from ``first_row``; ``line_offset`` also gives the file line) and
    values. ``model_inputs_only``: just the model's input features, no label (data to score)."""
    import pyarrow as pa

    features = spec.model_features if model_inputs_only else list(spec.features)
    needed = [f.name for f in features] if model_inputs_only else spec.columns
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(
            f"{where}: column(s) {missing} named by feature spec {spec.name!r} are not in the data"
        )
    typed_columns, bad = type_columns({c: arrow(raw[c]) for c in needed}, spec)
    order = [f.name for f in features] + ([] if model_inputs_only else [spec.label, spec.date_column])
    problems = [
        bad_values(_RULES[kind_of(spec, c)][0], raw[c].reset_index(drop=True), bad[c], first_row, line_offset,
                   _RULES[kind_of(spec, c)][2])
        for c in order if c in bad
    ]  # fmt: skip
    if problems:
        raise DataError(f"{where}: " + "; ".join(problems))
    frame = pa.Table.from_arrays([typed_columns[c] for c in needed], names=needed).to_pandas()
    for name in frame.select_dtypes(include="object").columns:
        frame[name] = frame[name].where(frame[name].notna(), np.nan)
    return frame


def typed_batch(batch: Any, spec: FeatureSpec) -> Any:
    """A raw RecordBatch with spec types for TFDV, by the same rules as ``typed``: a value that does
    not parse becomes null here (``data.DataChecks`` reports it by row); other columns as text."""
    import pyarrow as pa

    names = list(batch.schema.names)
    known = [n for n in names if n in spec.columns]
    typed_columns, _ = type_columns({n: batch.column(names.index(n)) for n in known}, spec)
    arrays = [
        typed_columns[n] if n in typed_columns else categories(batch.column(i)) for i, n in enumerate(names)
    ]
    return pa.RecordBatch.from_arrays(arrays, names=names)
