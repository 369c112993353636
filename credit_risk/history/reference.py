"""The vectorised pandas reference of the history features: for data that fits in memory, and the
yardstick the PySpark job is tested against (same raw data, same features).

Each function states the boundary rule once, in the same words as ``schema``: a repayment record
counts iff ``index(month) + lag < index(application_date)``; an inquiry iff ``inquiry_date <
application_date``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from credit_risk import storage
from credit_risk.errors import DataError
from credit_risk.history import schema


def read_table(raw: str, table: str) -> pd.DataFrame:
    """One raw table (every Parquet part under ``<raw>/<table>``, local, gs:// or s3://)."""
    from credit_risk.dataset import data_stats  # the one way this package opens Parquet (pyarrow_hotfix)

    frames = []
    for uri in storage.list_files(f"{raw.rstrip('/')}/{table}", suffixes=(".parquet",)):
        with storage.open_read(uri) as stream:
            arrow = data_stats.parquet_file(stream, uri).read()
        schema.check_columns(table, arrow.column_names, uri)
        frames.append(arrow.select(list(schema.RAW_SCHEMA[table])).to_pandas(date_as_object=False))
    frame = pd.concat(frames, ignore_index=True)
    check_values(frame, table, f"{raw}/{table}")
    return frame


def check_values(frame: pd.DataFrame, table: str, where: str) -> None:
    """Refuse nulls in key columns and values outside the raw rules, naming row, column and value."""
    for column in schema.NOT_NULL[table]:
        bad = frame.index[frame[column].isna()]
        if len(bad):
            raise DataError(f"{where}: column {column!r} is null in {len(bad)} row(s), first at row {bad[0]}")
    for rule in schema.RULES[table]:
        bad = frame.index[~rule.holds(frame[rule.column]).to_numpy()]
        if len(bad):
            raise DataError(
                f"{where}: column {rule.column!r} breaks '{rule}' in {len(bad)} row(s), "
                f"first at row {bad[0]} (value {frame.at[bad[0], rule.column]!r})"
            )


def _index(dates: pd.Series) -> pd.Series:
    return schema.month_index(dates.dt.year, dates.dt.month)


def repayment_features(apps: pd.DataFrame, repayments: pd.DataFrame, lag_months: int) -> pd.DataFrame:
    """Per application_id: the repayment-history features (applications without history: absent)."""
    lag = schema.check_lag(lag_months)
    a = apps[[schema.APPLICATION_ID, schema.CUSTOMER_ID]].assign(_a=_index(apps[schema.APPLICATION_DATE]))
    j = a.merge(repayments.assign(_m=_index(repayments["month"])), on=schema.CUSTOMER_ID)
    j["_age"] = j["_a"] - lag - 1 - j["_m"]
    j = j[j["_age"] >= 0]  # the boundary: only months closed (and reported) before the application
    age, dpd = j["_age"].to_numpy(), j["days_past_due"].to_numpy()
    late = dpd > 0
    cols: dict[str, np.ndarray] = {"_oldest": age, "active_accounts": (age == 0).astype(np.int64)}
    for w in schema.DELINQUENCY_WINDOWS:
        cols[f"_n{w}"] = (age < w).astype(np.int64)
        cols[f"delinquent_months_{w}m"] = ((age < w) & late).astype(np.int64)
    for w in schema.WORST_DPD_WINDOWS:
        cols[f"worst_dpd_{w}m"] = np.where(age < w, dpd, 0)
    cols["_late_age"] = np.where(late, age, schema.NEVER_DELINQUENT)
    for w in schema.UTILISATION_WINDOWS:
        cols[f"_bal{w}"] = np.where(age < w, j["balance"].to_numpy(), 0.0)
        cols[f"_lim{w}"] = np.where(age < w, j["credit_limit"].to_numpy(), 0.0)
    frame = pd.DataFrame(cols, index=j[schema.APPLICATION_ID].to_numpy())
    maxes = [c for c in cols if c == "_oldest" or c.startswith("worst_dpd_")]
    g = frame.groupby(level=0)
    out = pd.concat(
        [
            g[maxes].max(),
            g[["_late_age"]].min(),
            g[[c for c in cols if c not in {*maxes, "_late_age"}]].sum(),
        ],
        axis=1,
    )
    out["months_on_book"] = out.pop("_oldest") + 1
    out["months_since_delinquency"] = np.minimum(out.pop("_late_age"), schema.NEVER_DELINQUENT)
    for w in schema.DELINQUENCY_WINDOWS:
        n = out.pop(f"_n{w}")
        out[f"delinquency_ratio_{w}m"] = np.where(
            n > 0, out[f"delinquent_months_{w}m"] / n.where(n > 0, 1), 0.0
        )
    for w in schema.UTILISATION_WINDOWS:
        bal, lim = out.pop(f"_bal{w}"), out.pop(f"_lim{w}")
        out[f"utilisation_{w}m"] = np.where(lim > 0, bal / lim.where(lim > 0, 1.0), 0.0)
    out.index.name = schema.APPLICATION_ID
    return out


def inquiry_features(apps: pd.DataFrame, inquiries: pd.DataFrame) -> pd.DataFrame:
    """Per application_id: inquiries in each window before the application date."""
    a = apps[[schema.APPLICATION_ID, schema.CUSTOMER_ID, schema.APPLICATION_DATE]].copy()
    for w in schema.INQUIRY_WINDOWS:
        a[f"_start{w}"] = a[schema.APPLICATION_DATE] - pd.DateOffset(months=w)
    j = a.merge(inquiries, on=schema.CUSTOMER_ID)
    j = j[j["inquiry_date"] < j[schema.APPLICATION_DATE]]  # the boundary: strictly before the application
    cols = {
        f"inquiries_{w}m": (j["inquiry_date"] >= j[f"_start{w}"]).to_numpy().astype(np.int64)
        for w in schema.INQUIRY_WINDOWS
    }
    out = pd.DataFrame(cols, index=j[schema.APPLICATION_ID].to_numpy()).groupby(level=0).sum()
    out.index.name = schema.APPLICATION_ID
    return out


def features(
    apps: pd.DataFrame, repayments: pd.DataFrame, inquiries: pd.DataFrame, lag_months: int
) -> pd.DataFrame:
    """The output snapshot: id, date, label and every feature column, float64, sorted by id."""
    out = apps.set_index(schema.APPLICATION_ID)
    out = out.join(repayment_features(apps, repayments, lag_months)).join(inquiry_features(apps, inquiries))
    out["debt_to_income"] = out["loan_amount"] / out["income"]
    history = [f.name for f in schema.history_features()]
    fill = {name: 0.0 for name in history}
    fill["months_since_delinquency"] = float(schema.NEVER_DELINQUENT)
    out = out.fillna(fill)
    out["utilisation_trend"] = out["utilisation_3m"] - out["utilisation_12m"]
    typed = out[schema.feature_columns()].astype("float64")
    typed.insert(0, schema.APPLICATION_DATE, out[schema.APPLICATION_DATE].dt.date)
    typed[schema.LABEL] = out[schema.LABEL].astype("int64")
    return typed.sort_index().reset_index()


def run(raw: str, lag_months: int) -> pd.DataFrame:
    """Read the three tables under ``raw`` and compute the features (all in memory)."""
    return features(
        read_table(raw, schema.APPLICATIONS),
        read_table(raw, schema.REPAYMENTS),
        read_table(raw, schema.INQUIRIES),
        lag_months,
    )
