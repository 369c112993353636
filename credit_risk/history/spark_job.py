"""The PySpark job: raw loan history to applicant features, DataFrame API only (no Python UDF).

The same features, in the same words, as ``reference`` (a test compares them row by row). Runs
wherever Spark runs: ``local[N]`` inside a pipeline pod, or as the main file of a SparkApplication
or an EMR Serverless job run (``python -m credit_risk.history.spark_job --help``)::

    spark-submit credit_risk/history/spark_job.py --raw s3a://bucket/raw --out s3a://bucket/features \\
        --lag-months 1

Plan: two shuffles - applications joined to repayments on ``customer_id`` then aggregated by
``application_id`` (one pass of conditional sums/maxes for every window), the same for inquiries -
and a final join back to the applications. Spark spills both to local disk, so the job's memory does
not grow with the data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from credit_risk.history import schema


def session(
    master: str = "local[2]", driver_memory: str = "2g", app_name: str = "credit-risk-history", **conf: str
) -> Any:
    """A SparkSession for local work: loopback only, no UI, quiet logs (cluster jobs get theirs from
    spark-submit)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(conf.pop("shuffle_partitions", "8")))
        # input splits of 32 MB (not 128): a pod's few cores each get several tasks per table
        .config("spark.sql.files.maxPartitionBytes", "32m")
    )  # fmt: skip
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_table(spark: Any, raw: str, table: str) -> Any:
    frame = spark.read.parquet(f"{raw.rstrip('/')}/{table}")
    schema.check_columns(table, frame.columns, f"{raw}/{table}")
    return frame.select(*schema.RAW_SCHEMA[table])


def check_values(frame: Any, table: str, where: str) -> None:
    """One aggregate pass per table: nulls in key columns and rule breaks, named like the reference."""
    from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

    from credit_risk.errors import DataError

    # (column, what the message says, the failing-row condition): one aggregation counts them all
    tests = [(c, "is null", F.col(c).isNull()) for c in schema.NOT_NULL[table]]
    tests += [(r.column, f"breaks '{r}'", ~r.holds(F.col(r.column))) for r in schema.RULES[table]]
    counts = frame.agg(
        *[F.sum(failing.cast("long")).alias(f"t{i}") for i, (_, _, failing) in enumerate(tests)]
    )
    found = counts.collect()[0]
    for i, (column, what, failing) in enumerate(tests):
        if found[f"t{i}"]:
            example = frame.where(failing).limit(1).collect()
            raise DataError(
                f"{where}: column {column!r} {what} in {found[f't{i}']} row(s), e.g. {example[0].asDict()}"
            )


def features(apps: Any, repayments: Any, inquiries: Any, lag_months: int) -> Any:
    """The output rows (id, date, every feature as double, label as long); not sorted."""
    from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

    lag = schema.check_lag(lag_months)
    a_index = schema.month_index(F.year(schema.APPLICATION_DATE), F.month(schema.APPLICATION_DATE)).alias(
        "_a"
    )
    a = apps.select(schema.APPLICATION_ID, schema.CUSTOMER_ID, schema.APPLICATION_DATE, a_index)
    r = repayments.withColumn("_m", schema.month_index(F.year("month"), F.month("month")))
    j = a.join(r, schema.CUSTOMER_ID).withColumn("_age", F.col("_a") - lag - 1 - F.col("_m"))
    j = j.where(F.col("_age") >= 0)  # the boundary: only months closed (and reported) before the application
    age, dpd = F.col("_age"), F.col("days_past_due")
    late = dpd > 0

    def count(cond: Any) -> Any:
        return F.sum(F.when(cond, 1).otherwise(0))

    aggs = [(F.max(age) + 1).alias("months_on_book"), count(age == 0).alias("active_accounts"),
            F.min(F.when(late, age)).alias("_late_age")]  # fmt: skip
    for w in schema.DELINQUENCY_WINDOWS:
        aggs += [count(age < w).alias(f"_n{w}"), count((age < w) & late).alias(f"delinquent_months_{w}m")]
    for w in schema.WORST_DPD_WINDOWS:
        aggs.append(F.max(F.when(age < w, dpd).otherwise(0)).alias(f"worst_dpd_{w}m"))
    for w in schema.UTILISATION_WINDOWS:
        aggs += [F.sum(F.when(age < w, F.col("balance")).otherwise(0.0)).alias(f"_bal{w}"),
                 F.sum(F.when(age < w, F.col("credit_limit")).otherwise(0.0)).alias(f"_lim{w}")]  # fmt: skip
    rep = j.groupBy(schema.APPLICATION_ID).agg(*aggs)

    ji = a.join(inquiries, schema.CUSTOMER_ID).where(F.col("inquiry_date") < F.col(schema.APPLICATION_DATE))
    applied = F.col(schema.APPLICATION_DATE)
    inq = ji.groupBy(schema.APPLICATION_ID).agg(*[
        count(F.col("inquiry_date") >= F.add_months(applied, -w)).alias(f"inquiries_{w}m")
        for w in schema.INQUIRY_WINDOWS
    ])  # fmt: skip

    out = apps.join(rep, schema.APPLICATION_ID, "left").join(inq, schema.APPLICATION_ID, "left")
    cols: dict[str, Any] = {"debt_to_income": F.col("loan_amount") / F.col("income")}
    for w in schema.DELINQUENCY_WINDOWS:
        n = F.col(f"_n{w}")
        cols[f"delinquency_ratio_{w}m"] = F.when(n > 0, F.col(f"delinquent_months_{w}m") / n).otherwise(0.0)
    for w in schema.UTILISATION_WINDOWS:
        lim = F.col(f"_lim{w}")
        cols[f"utilisation_{w}m"] = F.when(lim > 0, F.col(f"_bal{w}") / lim).otherwise(0.0)
    cols["months_since_delinquency"] = F.least(F.coalesce(F.col("_late_age"), F.lit(schema.NEVER_DELINQUENT)),
                                                F.lit(schema.NEVER_DELINQUENT))  # fmt: skip
    out = out.withColumns(cols).withColumn(
        "utilisation_trend", F.col("utilisation_3m") - F.col("utilisation_12m")
    )
    selected = [F.col(schema.APPLICATION_ID), F.col(schema.APPLICATION_DATE)]
    selected += [F.coalesce(F.col(c).cast("double"), F.lit(0.0)).alias(c) for c in schema.feature_columns()]
    return out.select(*selected, F.col(schema.LABEL).cast("long").alias(schema.LABEL))


def run(
    spark: Any, raw: str, out: str, lag_months: int, check: bool = True, keys: bool = True
) -> dict[str, Any]:
    """Read ``raw``, write the feature rows as Parquet under ``out``; returns counts and seconds.
    ``keys=False`` leaves out application_id (the snapshot holds exactly the feature spec's
    columns, as validate requires; application_date stays: it is the spec's origination_date)."""
    start = time.perf_counter()
    tables = {t: read_table(spark, raw, t) for t in schema.TABLES}
    if check:
        for table, frame in tables.items():
            check_values(frame, table, f"{raw}/{table}")
    rows = features(
        tables[schema.APPLICATIONS], tables[schema.REPAYMENTS], tables[schema.INQUIRIES], lag_months
    )
    if not keys:
        rows = rows.drop(schema.APPLICATION_ID)
    rows.write.mode("errorifexists").parquet(out)
    return {
        "seconds": round(time.perf_counter() - start, 3),
        "lag_months": lag_months,
        "raw": raw,
        "out": out,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="spark_job", description="Raw loan history to point-in-time applicant features (PySpark)."
    )
    p.add_argument(
        "--raw", required=True, help="directory/prefix holding applications/, repayments/, inquiries/"
    )
    p.add_argument("--out", required=True, help="where the feature rows go (Parquet; must not exist)")
    p.add_argument("--lag-months", type=int, default=0, help="reporting lag of monthly records (default 0)")
    p.add_argument("--master", default=None, help="Spark master when not run by spark-submit (e.g. local[2])")
    p.add_argument("--no-check", action="store_true", help="skip the null/rule pass over the raw tables")
    p.add_argument("--no-keys", action="store_true", help="leave out application_id (the snapshot's columns)")
    args = p.parse_args(argv)
    if args.master:
        spark = session(args.master)
    else:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("credit-risk-history").getOrCreate()
    try:
        print(
            json.dumps(
                run(
                    spark, args.raw, args.out, args.lag_months, check=not args.no_check, keys=not args.no_keys
                )
            )
        )
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
