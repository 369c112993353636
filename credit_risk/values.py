"""Raw values to the feature spec's types: the one typing rule of the package.

``typed`` is the strict form every step uses on data that flows on (ingest, split, training,
scoring, monitoring, the validated snapshot): numerics float64, categoricals text (NaN when
missing), the label int64 0/1, the origination date ``YYYY-MM-DD`` text - or one DataError naming
the source, column, rows and values. ``typed_batch`` is the same types on Arrow for the statistics
TFDV computes over data not yet checked: a value that does not parse becomes null there, because
``data.DataChecks`` reports it by row (a test holds the two equal on valid data). ``arrow_schema``
is the typed table's Parquet schema (the snapshot files).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from credit_risk.errors import DataError
from credit_risk.feature_spec import FeatureSpec

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
    """ISO dates (``YYYY-MM-DD``) and date/timestamp objects (a Parquet date32, a database date) as
    datetime64; NaT where a value is missing or not a date. Text is never guessed (15/01/2024 vs
    01/15/2024)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column
    text = column.astype("string")
    parsed = pd.to_datetime(text, format=DATE_FORMAT, errors="coerce")
    objects = parsed.isna() & column.notna() & ~column.map(lambda v: isinstance(v, str))
    if objects.any():
        parsed = parsed.fillna(pd.to_datetime(column[objects], errors="coerce"))
    return parsed


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
    features = spec.model_features if model_inputs_only else list(spec.features)
    needed = [f.name for f in features] if model_inputs_only else spec.columns
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(
            f"{where}: column(s) {missing} named by feature spec {spec.name!r} are not in the data"
        )
    out, problems = {}, []
    for f in features:
        col = raw[f.name]
        if f.is_numeric:
            num = pd.to_numeric(col, errors="coerce")
            bad = (num.isna() & col.notna()).to_numpy()
            if bad.any():
                problems.append(bad_values("column", col, bad, first_row, line_offset, "a number"))
            out[f.name] = num.astype("float64")
        else:
            # CSV cells are already text; a Parquet or database column may hold numbers or None
            text = col if col.dtype == object else col.astype(str)
            out[f.name] = text.where(col.notna(), np.nan)
    if not model_inputs_only:
        label = pd.to_numeric(raw[spec.label], errors="coerce")
        bad = (~label.isin([0, 1])).to_numpy()
        if bad.any():
            problems.append(bad_values("label", raw[spec.label], bad, first_row, line_offset, "0 or 1"))
        out[spec.label] = label
        if spec.date_column:
            dates = to_dates(raw[spec.date_column])
            bad = dates.isna().to_numpy()
            if bad.any():
                problems.append(
                    bad_values(
                        "column", raw[spec.date_column], bad, first_row, line_offset, "a date (YYYY-MM-DD)"
                    )
                )
            out[spec.date_column] = dates.dt.strftime(DATE_FORMAT)
    if problems:
        raise DataError(f"{where}: " + "; ".join(problems))
    if not model_inputs_only:
        out[spec.label] = out[spec.label].astype("int64")
    return pd.DataFrame(out, index=raw.index)[needed].reset_index(drop=True)


def typed_batch(batch: Any, spec: FeatureSpec) -> Any:
    """A raw batch with spec types for TFDV: numerics float64, label int64, the rest string.

    Unparseable numbers and labels become null here (``data.DataChecks`` reports them by row).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    numeric = {f.name for f in spec.features if f.is_numeric}
    arrays, names = [], []
    for name, raw in zip(batch.schema.names, batch.columns, strict=True):
        column = raw
        if name in numeric or name == spec.label:
            target = pa.int64() if name == spec.label else pa.float64()
            if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type):
                column = _parse_numbers(raw, target, labels=name == spec.label)
            else:
                column = pc.cast(column, target)
        elif not pa.types.is_string(raw.type):
            column = pc.cast(raw, pa.string())
        arrays.append(column)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _parse_numbers(text: Any, target: Any, labels: bool) -> Any:
    """Text -> numbers; a cell that does not parse (or, for the label, is not 0/1) becomes null.
    The usual all-valid batch takes one vectorised cast; only a batch with bad cells pays for the
    per-cell pattern match."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not labels or pc.all(pc.is_in(text, pa.array(["0", "1"])), skip_nulls=True).as_py() is not False:
        try:
            return pc.cast(text, target)
        except pa.ArrowInvalid:
            pass
    trimmed = pc.utf8_trim_whitespace(text)
    ok = pc.match_substring_regex(trimmed, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    if labels:
        ok = pc.and_(ok, pc.is_in(trimmed, pa.array(["0", "1"])))
    return pc.cast(pc.if_else(ok, trimmed, pa.scalar(None, pa.string())), target)
