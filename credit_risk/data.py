"""Read a dataset as the feature spec describes it, with errors that name column, row and value.

Rows are numbered from 1 for the first data row; ``file line`` is that number + 1 (the header).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from credit_risk import storage
from credit_risk.errors import DataError
from credit_risk.feature_spec import Feature, FeatureSpec

log = logging.getLogger(__name__)

MISSING_MARKERS = [""]  # only an empty cell is missing; "NA" may be a real category
MAX_EXAMPLES = 3
MAX_DUPLICATE_FRACTION = 0.01  # a few exact repeats happen in real data; more means a broken extract


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset, precise enough to find and fix."""

    column: str
    kind: str
    message: str


def read_raw(uri: str) -> pd.DataFrame:
    """Every column as text (missing = NaN), so nothing is silently coerced."""
    path = storage.local_copy(uri)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=MISSING_MARKERS)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{uri}: the file is empty (no header row)") from e
    except pd.errors.ParserError as e:
        raise DataError(f"{uri}: not a readable CSV: {e}") from e


def _rows(mask: pd.Series) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask.to_numpy())]


def _where(rows: list[int], values: list[str] | None = None) -> str:
    shown = rows[:MAX_EXAMPLES]
    parts = []
    for i, r in enumerate(shown):
        v = f" value {values[i]!r}" if values is not None else ""
        parts.append(f"row {r} (file line {r + 1}){v}")
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    return ", ".join(parts) + more


def _numeric_problems(f: Feature, col: pd.Series, nulls: pd.Series) -> list[Problem]:
    coerced = pd.to_numeric(col, errors="coerce")
    bad = coerced.isna() & ~nulls
    if bad.any():
        values = [str(v) for v in col[bad].head(MAX_EXAMPLES)]
        where = _where(_rows(bad), values)
        return [
            Problem(
                f.name, "not_numeric", f"column {f.name!r} is numeric in the spec but holds text at {where}"
            )
        ]
    if not np.isfinite(coerced[~nulls].to_numpy(dtype=float)).all():
        return [Problem(f.name, "not_finite", f"column {f.name!r} holds inf values")]
    low = coerced < f.min if f.min is not None else pd.Series(False, index=col.index)
    high = coerced > f.max if f.max is not None else pd.Series(False, index=col.index)
    outside = (low | high) & ~nulls
    if outside.any():
        values = [str(v) for v in col[outside].head(MAX_EXAMPLES)]
        bounds = f"[{'-inf' if f.min is None else f'{f.min:g}'}, {'inf' if f.max is None else f'{f.max:g}'}]"
        return [
            Problem(
                f.name,
                "out_of_range",
                f"column {f.name!r} must be in {bounds} but is not at {_where(_rows(outside), values)}",
            )
        ]
    return []


def find_problems(
    raw: pd.DataFrame, spec: FeatureSpec, max_duplicate_fraction: float = MAX_DUPLICATE_FRACTION
) -> list[Problem]:
    """Check a raw (all-text) frame against the spec. Returns every problem, not just the first."""
    problems: list[Problem] = []
    missing = [c for c in spec.columns if c not in raw.columns]
    for col in [c for c in raw.columns if c not in spec.columns]:
        problems.append(
            Problem(
                col,
                "unexpected_column",
                f"column {col!r} is not in feature spec {spec.name!r}; add it to the spec "
                "(model_input: false to keep it out of the model) or drop it",
            )
        )
    for col in missing:
        problems.append(
            Problem(
                col, "missing_column", f"column {col!r} is missing; the file has columns {list(raw.columns)}"
            )
        )
    if len(raw) == 0:
        problems.append(Problem("*", "no_rows", "the dataset has a header but zero rows"))
        return problems
    duplicated = raw.duplicated()
    if duplicated.mean() > max_duplicate_fraction:
        problems.append(
            Problem(
                "*",
                "duplicate_rows",
                f"{int(duplicated.sum())} of {len(raw)} rows ({duplicated.mean():.1%}) repeat an "
                f"earlier row, above the limit of {max_duplicate_fraction:.1%}; first at "
                f"{_where(_rows(duplicated))}",
            )
        )
    for f in spec.features:
        if f.name in missing:
            continue
        col = raw[f.name]
        nulls = col.isna()
        if nulls.all():
            problems.append(Problem(f.name, "all_null", f"column {f.name!r} has no values at all"))
            continue
        if nulls.any() and not f.nullable:
            problems.append(
                Problem(
                    f.name,
                    "unexpected_null",
                    f"column {f.name!r} is not nullable in the spec but is empty at {_where(_rows(nulls))}",
                )
            )
        if f.is_numeric:
            problems += _numeric_problems(f, col, nulls)
    if spec.label not in missing:
        label = raw[spec.label]
        bad = ~label.isin(["0", "1"])
        if bad.any():
            rows = _rows(bad)
            values = [str(v) for v in label[bad].head(MAX_EXAMPLES)]
            problems.append(
                Problem(
                    spec.label,
                    "bad_label",
                    f"label {spec.label!r} must be 0 or 1 but is not at {_where(rows, values)}",
                )
            )
        elif label.nunique() < 2:
            problems.append(
                Problem(
                    spec.label,
                    "single_class",
                    f"label {spec.label!r} has a single class ({label.iloc[0]}); "
                    "a PD model needs both defaults and non-defaults",
                )
            )
    return problems


def typed_frame(raw: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Spec columns with their spec types: numerics float64, categoricals str (NaN when missing).

    A numeric column that does not parse is left as text, so TFDV sees and reports its real type.
    Extra columns are kept (as text) so validation can report them.
    """
    out = raw.copy()
    for f in spec.features:
        if f.name in out.columns and f.is_numeric:
            coerced = pd.to_numeric(out[f.name], errors="coerce")
            if not (coerced.isna() & out[f.name].notna()).any():
                out[f.name] = coerced.astype("float64")
    if spec.label in out.columns and out[spec.label].isin(["0", "1"]).all():
        out[spec.label] = out[spec.label].astype("int64")
    return out


def load_dataset(uri: str, spec: FeatureSpec) -> pd.DataFrame:
    """Read, check and type a dataset; raises DataError listing every problem."""
    raw = read_raw(uri)
    problems = find_problems(raw, spec)
    if problems:
        raise DataError(
            f"{uri} does not match feature spec {spec.name!r}:\n"
            + "\n".join(f"  - {p.message}" for p in problems)
        )
    log.info("read %d rows x %d columns from %s", len(raw), len(raw.columns), uri)
    return typed_frame(raw, spec)[spec.columns]


def split_train_eval(
    df: pd.DataFrame, spec: FeatureSpec, eval_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified, seeded split; the eval rows are never seen by training."""
    from sklearn.model_selection import train_test_split

    if not 0.05 <= eval_fraction <= 0.5:
        raise DataError(f"eval_fraction must be in [0.05, 0.5], got {eval_fraction}")
    train, evaluation = train_test_split(
        df, test_size=eval_fraction, random_state=seed, stratify=df[spec.label]
    )
    return train.reset_index(drop=True), evaluation.reset_index(drop=True)


def instances(frame: pd.DataFrame, spec: FeatureSpec) -> list[dict[str, Any]]:
    """Rows as KServe V1 instances: model inputs only, JSON types, missing = null."""
    out = []
    for _, row in frame.iterrows():
        out.append(
            {
                f.name: (
                    None if pd.isna(row[f.name]) else float(row[f.name]) if f.is_numeric else str(row[f.name])
                )
                for f in spec.model_features
            }
        )
    return out


def sample_request(uri: str, spec: FeatureSpec, rows: int = 1, offset: int = 0) -> dict[str, Any]:
    """A KServe V1 body ``{"instances": [...]}`` from rows of a dataset."""
    frame = load_dataset(uri, spec).iloc[offset : offset + rows]
    if frame.empty:
        raise DataError(f"{uri} has no rows at offset {offset}")
    return {"instances": instances(frame, spec)}
