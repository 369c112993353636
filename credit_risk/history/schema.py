"""The raw loan-history schema, the point-in-time boundary and the applicant feature catalog.

Pure and typed: every name a raw table or a history feature has is declared here once; the
generator, the pandas reference, the PySpark job and the feature spec the ETL publishes all read it.

Raw data is a directory with one folder of Parquet parts per table::

    <raw>/applications/part-*.parquet   one row per application
    <raw>/repayments/part-*.parquet     one row per account and calendar month
    <raw>/inquiries/part-*.parquet      one row per credit inquiry

The boundary (docs/history.md, "Point in time"): features of an application dated ``A`` use only
what was known strictly before ``A``.

- A repayment record describes calendar month ``M`` (its ``month`` column is the month's first
  day). It is known once that month has closed and ``lag_months`` further months have passed: it
  counts iff ``index(M) + lag_months < index(A)``, where ``index(d) = 12 * year + month - 1``. With
  lag 0 the November record counts for an application on 1 December and not for one on 30 November.
  Its *age* is ``index(A) - lag_months - 1 - index(M)``: 0 is the newest month that can count, and
  a ``w``-month window holds ages ``0 .. w-1``.
- An inquiry dated ``D`` counts iff ``D < A``; in a ``w``-month window iff also
  ``D >= add_months(A, -w)`` (calendar months, the day clamped to the month's end as both pandas'
  ``DateOffset`` and Spark's ``add_months`` do).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from credit_risk.errors import DataError

APPLICATIONS, REPAYMENTS, INQUIRIES = "applications", "repayments", "inquiries"
TABLES = (APPLICATIONS, REPAYMENTS, INQUIRIES)

# column -> (arrow type name, description); the generator writes exactly these and the readers
# refuse a table that lacks one
RAW_SCHEMA: dict[str, dict[str, tuple[str, str]]] = {
    APPLICATIONS: {
        "application_id": ("int64", "unique per application"),
        "customer_id": ("int64", "the applicant; joins the two history tables"),
        "application_date": ("date32", "day the application was made: the point-in-time boundary"),
        "income": ("float64", "declared annual income"),
        "loan_amount": ("float64", "amount applied for"),
        "term_months": ("float64", "requested term in months"),
        "applicant_age": ("float64", "age in years at application"),
        "default": ("int64", "1 = defaulted within 12 months of the application, 0 = did not"),
    },
    REPAYMENTS: {
        "customer_id": ("int64", "account holder"),
        "account_id": ("int64", "credit account (card, loan, ...)"),
        "month": ("date32", "first day of the calendar month the record describes"),
        "balance": ("float64", "balance at month end"),
        "credit_limit": ("float64", "credit limit at month end (> 0)"),
        "days_past_due": ("int64", "days past due at month end (0, 30, 60, ... 180)"),
    },
    INQUIRIES: {
        "customer_id": ("int64", "who was inquired about"),
        "inquiry_date": ("date32", "day of the hard credit inquiry"),
    },
}
# optional raw columns: read by the portfolio analytics (vintage.default_curves), never by the ETL
OPTIONAL_SCHEMA: dict[str, dict[str, tuple[str, str]]] = {
    APPLICATIONS: {
        "months_to_default": ("int64", "months from the application to the default, 1-12; null without one"),
    },
}
LABEL = "default"
MONTHS_TO_DEFAULT = "months_to_default"
APPLICATION_ID, CUSTOMER_ID, APPLICATION_DATE = "application_id", "customer_id", "application_date"

# columns that must never be null, and the value rules a raw row must meet (both engines check them)
NOT_NULL = {
    APPLICATIONS: [APPLICATION_ID, CUSTOMER_ID, APPLICATION_DATE, "income", "loan_amount", "default"],
    REPAYMENTS: [CUSTOMER_ID, "month", "balance", "credit_limit", "days_past_due"],
    INQUIRIES: [CUSTOMER_ID, "inquiry_date"],
}


@dataclass(frozen=True)
class Rule:
    """A value rule a raw column must meet. Both engines evaluate the same object: ``holds`` takes a
    pandas Series or a Spark Column (both have the comparison operators and ``isin``)."""

    column: str
    op: str  # ">", ">=" or "in"
    value: int | tuple[int, ...]

    def holds(self, column: Any) -> Any:
        """True where a value meets the rule (a missing value never does in pandas; Spark gives null)."""
        if self.op == "in":
            return column.isin(list(self.value) if isinstance(self.value, tuple) else [self.value])
        return _COMPARISONS[self.op](column, self.value)

    def __str__(self) -> str:
        """The rule as SQL reads it (``income > 0``, ``default IN (0, 1)``): what messages quote."""
        if self.op == "in":
            values = self.value if isinstance(self.value, tuple) else (self.value,)
            return f"{self.column} IN ({', '.join(str(v) for v in values)})"
        return f"{self.column} {self.op} {self.value}"


_COMPARISONS = {">": operator.gt, ">=": operator.ge}
RULES: dict[str, tuple[Rule, ...]] = {
    APPLICATIONS: (Rule("income", ">", 0), Rule("loan_amount", ">=", 0), Rule("default", "in", (0, 1))),
    REPAYMENTS: (Rule("credit_limit", ">", 0), Rule("balance", ">=", 0), Rule("days_past_due", ">=", 0)),
    INQUIRIES: (),
}

DELINQUENCY_WINDOWS = (3, 6, 12, 24)  # months of reported history
WORST_DPD_WINDOWS = (12, 24)
UTILISATION_WINDOWS = (3, 12)
INQUIRY_WINDOWS = (3, 6, 12)
NEVER_DELINQUENT = 120  # months_since_delinquency when no counted month was past due (the cap)


@dataclass(frozen=True)
class HistoryFeature:
    name: str
    description: str
    reason_text: str = ""
    monotone: str | None = None  # increasing | decreasing: the direction risk should move
    min: float | None = 0.0
    max: float | None = None


def history_features() -> tuple[HistoryFeature, ...]:
    """The features computed from history, in output order (docs/history.md has the table)."""
    # fmt: off
    out = [
        HistoryFeature("months_on_book", "reported months of the oldest counted record",
                       "Length of credit history", "decreasing"),
        HistoryFeature("active_accounts", "accounts with a record in the newest countable month",
                       "Number of active accounts"),
    ]
    for w in DELINQUENCY_WINDOWS:
        last = f"in the last {w} reported months"
        out.append(HistoryFeature(f"delinquent_months_{w}m", f"account-months past due {last}",
                                  "Recent missed payments", "increasing"))
        out.append(HistoryFeature(f"delinquency_ratio_{w}m", f"share of account-months past due {last} "
                                  "(0 without records)", "Share of recent payments missed", "increasing",
                                  max=1.0))
    for w in WORST_DPD_WINDOWS:
        out.append(HistoryFeature(f"worst_dpd_{w}m", f"worst days past due in the last {w} reported months "
                                  "(0 without records)", "Severity of past delinquency", "increasing"))
    out.append(HistoryFeature(
        "months_since_delinquency",
        f"reported months since the newest past-due month; {NEVER_DELINQUENT} when none (the cap)",
        "Time since last delinquency", "decreasing", max=float(NEVER_DELINQUENT)))
    for w in UTILISATION_WINDOWS:
        out.append(HistoryFeature(f"utilisation_{w}m", f"total balance / total limit over the last {w} "
                                  "reported months (0 without records)", "Credit utilisation", "increasing"))
    out.append(HistoryFeature(
        "utilisation_trend", "utilisation_3m - utilisation_12m (positive: rising utilisation)",
        "Rising credit utilisation", "increasing", min=None))
    for w in INQUIRY_WINDOWS:
        out.append(HistoryFeature(f"inquiries_{w}m", f"credit inquiries in the {w} months before applying",
                                  "Recent credit inquiries", "increasing"))
    # fmt: on
    return tuple(out)


APPLICATION_FEATURES: tuple[dict[str, Any], ...] = (
    {"name": "income", "min": 0, "reason_text": "Level of income", "monotone": "decreasing"},
    {"name": "loan_amount", "min": 0, "reason_text": "Amount requested"},
    {"name": "term_months", "min": 1, "max": 480, "reason_text": "Length of the requested loan term"},
    {"name": "debt_to_income", "min": 0, "reason_text": "Amount requested relative to income",
     "monotone": "increasing", "description": "loan_amount / income"},
    # age is a protected basis under US ECOA: kept out of the model, used for fairness slices
    {"name": "applicant_age", "min": 18, "max": 100, "protected": True, "model_input": False},
)  # fmt: skip


def feature_columns() -> list[str]:
    """The output snapshot's feature columns in order (without the id, the date and the label)."""
    return [f["name"] for f in APPLICATION_FEATURES] + [f.name for f in history_features()]


def feature_spec_dict(name: str = "loan_history", data_file: str | None = None) -> dict[str, Any]:
    """The feature spec (``credit_risk.spec.feature_spec`` keys) of the ETL's output snapshot."""
    features: list[dict[str, Any]] = [{"type": "numeric", **f} for f in APPLICATION_FEATURES]
    for f in history_features():
        entry: dict[str, Any] = {"name": f.name, "type": "numeric", "description": f.description}
        for key in ("min", "max", "monotone"):
            if getattr(f, key) is not None:
                entry[key] = getattr(f, key)
        if f.reason_text:
            entry["reason_text"] = f.reason_text
        features.append(entry)
    spec: dict[str, Any] = {
        "name": name,
        "description": "applicant features computed point-in-time from raw loan history "
        "(credit_risk.history; docs/history.md)",
        "label": {"name": LABEL, "description": RAW_SCHEMA[APPLICATIONS][LABEL][1]},
        # the split holds out the latest applications (out of time) and evaluation tabulates them
        # by cohort (credit_risk.evidence.vintage)
        "origination_date": APPLICATION_DATE,
        "features": features,
        "slices": [{"name": "age_band", "feature": "applicant_age", "bins": [18, 25, 35, 50, 100]}],
        "master_scale": {"grades": 7},
    }
    if data_file:
        spec["data_file"] = data_file
    return spec


def month_index(year: Any, month: Any) -> Any:
    """``12 * year + month - 1``: consecutive integers for consecutive calendar months."""
    return year * 12 + month - 1


def check_lag(lag_months: int) -> int:
    if isinstance(lag_months, bool) or not isinstance(lag_months, int) or not 0 <= lag_months <= 12:
        raise DataError(f"reporting lag: expected a whole number of months from 0 to 12, got {lag_months!r}")
    return lag_months


def check_columns(table: str, columns: list[str], where: str) -> None:
    """Refuse a raw table that lacks a column of RAW_SCHEMA, naming what is missing."""
    missing = [c for c in RAW_SCHEMA[table] if c not in columns]
    if missing:
        raise DataError(
            f"{where}: the {table} table lacks column(s) {missing}; it has {sorted(columns)} "
            f"(expected {list(RAW_SCHEMA[table])}, docs/history.md)"
        )
