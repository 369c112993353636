"""A seeded, realistic raw loan history at any size (10k to 100M+ records), written in bounded chunks.

The process (docs/history.md, "Generated data") - known, so what a model can learn is known:

- each customer has a latent risk ``z ~ N(0, 1)``;
- 1-4 credit accounts, opened 1-48 months before the first application, each with one repayment
  record per month until 6 months after it (records after the application exist, as in a real
  warehouse: the point-in-time rule must drop them); credit limit lognormal per account; utilisation
  ``sigmoid(-0.6 + 0.9 z + noise)`` drifting up for risky customers (``+0.04 z`` per month);
  a month is past due with probability ``sigmoid(-3.4 + 1.3 z)``, by 30-180 days;
- hard inquiries: Poisson(``1.5 exp(0.4 z)``) in the two years before the application, a few after;
- 10 % of customers apply a second time 3-12 months later (their first application's later
  records must count for the second one only);
- income, amount and term per application; ``default ~ Bernoulli(sigmoid(-2.0 + 1.0 z +
  1.2 (debt_to_income - 0.3) + 0.1 (term/12 - 3)))``: history is informative because it is driven
  by the same ``z`` the label is; a default happens ``1 + Binomial(11, sigmoid(-0.2 - 0.6 z))``
  months after the application (``months_to_default``, for the cumulative default curves).

Memory holds one chunk of customers at a time (``chunk_customers``); each chunk is one Parquet part
per table. The output appears whole or not at all (written beside the target, then renamed).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from credit_risk.history import schema

log = logging.getLogger(__name__)

RECORDS_PER_CUSTOMER = 60  # expected rows over the three tables per customer (measured by a test)
MANIFEST = "raw.json"
ROW_GROUP_ROWS = 262_144  # Spark splits a file by row groups: several per part keep every core busy
FIRST_APPLICATION_MONTH = schema.month_index(2020, 1)
LAST_APPLICATION_MONTH = schema.month_index(2024, 12)
_EPOCH_MONTH = schema.month_index(1970, 1)


@dataclass(frozen=True)
class GeneratedHistory:
    path: str
    seed: int
    customers: int
    rows: dict[str, int]
    seconds: float

    @property
    def records(self) -> int:
        return sum(self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records": self.records}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _month_start(index: np.ndarray) -> np.ndarray:
    return (index - _EPOCH_MONTH).astype("datetime64[M]").astype("datetime64[D]")


def _chunk(
    rng: np.random.Generator,
    first_customer: int,
    first_application: int,
    n: int,
    timing: np.random.Generator | None = None,
) -> dict[str, pa.Table]:
    customer = np.arange(first_customer, first_customer + n, dtype=np.int64)
    z = rng.normal(size=n)
    # applications: one per customer, a second one for 10 %
    a1 = rng.integers(FIRST_APPLICATION_MONTH, LAST_APPLICATION_MONTH + 1, n)
    again = rng.random(n) < 0.10
    a2 = a1[again] + rng.integers(3, 13, int(again.sum()))
    app_customer = np.concatenate([customer, customer[again]])
    app_z = np.concatenate([z, z[again]])
    app_month = np.concatenate([a1, a2])
    m = len(app_customer)
    app_date = _month_start(app_month) + rng.integers(0, 28, m).astype("timedelta64[D]")
    income = np.round(np.exp(rng.normal(10.8 - 0.15 * app_z, 0.4)), 0)
    amount = np.round(income * np.exp(rng.normal(-1.3 + 0.1 * app_z, 0.5)), 0)
    term = rng.choice(np.array([12.0, 24.0, 36.0, 48.0, 60.0]), m)
    age = np.clip(np.round(rng.normal(40 - 3 * app_z, 11)), 18, 85)
    dti = amount / income
    p_default = _sigmoid(-2.0 + 1.0 * app_z + 1.2 * (dti - 0.3) + 0.1 * (term / 12 - 3))
    default = (rng.random(m) < p_default).astype(np.int64)
    # when a default happens: riskier applicants sooner (its own generator, so the other columns are
    # the same with and without it)
    timing = np.random.default_rng(first_customer) if timing is None else timing
    months = 1 + timing.binomial(11, _sigmoid(-0.2 - 0.6 * app_z))
    applications = pa.table({
        "application_id": np.arange(first_application, first_application + m, dtype=np.int64),
        "customer_id": app_customer,
        "application_date": pa.array(app_date, pa.date32()),
        "income": income, "loan_amount": amount, "term_months": term, "applicant_age": age,
        "default": default,
        schema.MONTHS_TO_DEFAULT: pa.array(np.where(default == 1, months, 0), pa.int64(), mask=default == 0),
    })  # fmt: skip

    # accounts and their monthly records, up to 6 months after the last application
    last_app = a1.copy()
    last_app[again] = a2
    n_accounts = 1 + np.minimum(rng.poisson(0.8, n), 3)
    acc_customer_pos = np.repeat(np.arange(n), n_accounts)
    k = len(acc_customer_pos)
    acc_open = a1[acc_customer_pos] - rng.integers(1, 49, k)
    acc_last = last_app[acc_customer_pos] + 6
    months = acc_last - acc_open + 1
    acc_limit = np.round(np.exp(rng.normal(8.3, 0.7, k)), -1) + 100.0
    acc_logit_u = -0.6 + 0.9 * z[acc_customer_pos] + rng.normal(0, 0.5, k)
    rec_acc = np.repeat(np.arange(k), months)
    r = len(rec_acc)
    offset = np.arange(r) - np.repeat(np.cumsum(months) - months, months)
    rec_month = acc_open[rec_acc] + offset
    rec_pos = acc_customer_pos[rec_acc]
    rz = z[rec_pos]
    util = _sigmoid(acc_logit_u[rec_acc] + 0.04 * rz * (rec_month - a1[rec_pos]) + rng.normal(0, 0.3, r))
    limit = acc_limit[rec_acc]
    late = rng.random(r) < _sigmoid(-3.4 + 1.3 * rz)
    severity = np.minimum(1 + rng.poisson(0.4 + 0.4 * np.maximum(rz, 0)), 6)
    repayments = pa.table({
        "customer_id": customer[rec_pos],
        "account_id": first_customer * 4 + np.arange(k, dtype=np.int64)[rec_acc],
        "month": pa.array(_month_start(rec_month), pa.date32()),
        "balance": np.round(util * limit, 2), "credit_limit": limit,
        "days_past_due": np.where(late, 30 * severity, 0).astype(np.int64),
    })  # fmt: skip

    # inquiries: in the two years before the first application, and a few after it
    before = rng.poisson(1.5 * np.exp(0.4 * z))
    after = rng.poisson(0.5, n)
    inq_pos = np.concatenate([np.repeat(np.arange(n), before), np.repeat(np.arange(n), after)])
    sign = np.concatenate([-np.ones(before.sum(), np.int64), np.ones(after.sum(), np.int64)])
    first_date = app_date[:n]
    inq_date = first_date[inq_pos] + (sign * rng.integers(0, 731, len(inq_pos))).astype("timedelta64[D]")
    inquiries = pa.table({
        "customer_id": customer[inq_pos],
        "inquiry_date": pa.array(inq_date, pa.date32()),
    })  # fmt: skip
    return {schema.APPLICATIONS: applications, schema.REPAYMENTS: repayments, schema.INQUIRIES: inquiries}


def generate(out: str | Path, records: int, seed: int = 0, chunk_customers: int = 20_000) -> GeneratedHistory:
    """Write about ``records`` raw rows (all three tables together) under ``out``."""
    if records < 1:
        raise ValueError(f"records: expected a positive count, got {records}")
    target = Path(out)
    if target.exists():
        raise FileExistsError(f"{target} exists; choose a new directory (nothing is overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    customers = max(1, round(records / RECORDS_PER_CUSTOMER))
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    rows = dict.fromkeys(schema.TABLES, 0)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for table in schema.TABLES:
            (staging / table).mkdir()
        done, part, application = 0, 0, 1
        while done < customers:
            n = min(chunk_customers, customers - done)
            tables = _chunk(rng, done + 1, application, n, np.random.default_rng([seed, part]))
            for table, frame in tables.items():
                pq.write_table(
                    frame, staging / table / f"part-{part:05d}.parquet", row_group_size=ROW_GROUP_ROWS
                )
                rows[table] += frame.num_rows
            application += tables[schema.APPLICATIONS].num_rows
            done += n
            part += 1
            log.info("generated %d/%d customers, %d records (%.0f s)", done, customers, sum(rows.values()),
                     time.perf_counter() - start)  # fmt: skip
        result = GeneratedHistory(str(target), seed, customers, rows, round(time.perf_counter() - start, 3))
        (staging / MANIFEST).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result
