"""The PySpark job: raw loan history to applicant features, DataFrame API only (no Python UDF).

The same features, in the same words, as ``reference`` (a test compares them row by row). Runs
wherever Spark runs: ``local[N]`` inside a pipeline pod, or as the main file of a SparkApplication
or an EMR Serverless job run (``python -m credit_risk.history.spark_job --help``)::

    spark-submit credit_risk/history/spark_job.py --raw s3a://bucket/raw --out s3a://bucket/features \\
        --lag-months 1

Plan: two shuffles - applications joined to repayments on ``customer_id`` then aggregated by
``application_id`` (one pass of conditional sums/maxes for every window), the same for inquiries -
and a final join back to the applications. Spark spills both to local disk, so the job's memory does
not grow with the data. The raw-value checks are counted while the tables are read for the features
(``DataFrame.observe``): the data is read once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any

from credit_risk.history import schema

TASKS_PER_CORE = 4  # input splits and shuffle partitions per core: tasks even out over the cores


def cores(master: str) -> int:
    """The task slots of a local master: ``local`` 1, ``local[N]`` N, ``local[*]`` the cores this
    process may run on (``local[N,F]``, with retries, as ``local[N]``)."""
    from credit_risk.errors import ConfigError

    found = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master.strip())
    if not found:
        raise ConfigError(f"spark master: expected local, local[N] or local[*], got {master!r}")
    slots = found.group(1) or "1"
    return len(os.sched_getaffinity(0)) if slots == "*" else max(int(slots), 1)


def session(
    master: str = "local[2]", driver_memory: str = "2g", app_name: str = "credit-risk-history", **conf: str
) -> Any:
    """A SparkSession for local work: loopback only, no UI, quiet logs (cluster jobs get theirs from
    spark-submit).

    Work is cut into ``TASKS_PER_CORE`` tasks per core, in equal parts: input files are split so
    (``spark.sql.files.minPartitionNum``; at most 32 MB a split) and every shuffle has that many
    partitions, which adaptive execution does not merge - merged to about one per core, they come
    out uneven (three tasks on two cores leave one idle a third of the time)."""
    from pyspark.sql import SparkSession

    tasks = TASKS_PER_CORE * cores(master)
    builder = (
        SparkSession.builder.master(master).appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(conf.pop("shuffle_partitions", tasks)))
        .config("spark.sql.adaptive.coalescePartitions.enabled", "false")
        .config("spark.sql.files.maxPartitionBytes", "32m")
        .config("spark.sql.files.minPartitionNum", str(tasks))
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


def _tests(table: str) -> list[tuple[str, str, Any]]:
    """(column, what the message says, the failing-row condition) for every check of ``table``."""
    from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

    tests = [(c, "is null", F.col(c).isNull()) for c in schema.NOT_NULL[table]]
    return tests + [(r.column, f"breaks '{r}'", ~r.holds(F.col(r.column))) for r in schema.RULES[table]]


def _counts(table: str) -> list[Any]:
    """One aggregate per check (failing rows) and the rows seen: what a pass over ``table`` counts."""
    from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

    counts = [F.sum(failing.cast("long")).alias(f"t{i}") for i, (_, _, failing) in enumerate(_tests(table))]
    return [*counts, F.count(F.lit(1)).alias("rows")]


def _refuse(frame: Any, table: str, where: str, found: dict[str, Any]) -> None:
    """A DataError naming the first failing check of ``table`` with its count and an example row."""
    from credit_risk.errors import DataError

    for i, (column, what, failing) in enumerate(_tests(table)):
        if found.get(f"t{i}"):
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


# AQE may skip a scan whose join partner turned out empty; the checks counted during that scan
# must see every row, so the job keeps that rule off while it runs
_SKIPS_SCANS = "org.apache.spark.sql.execution.adaptive.AQEPropagateEmptyRelation"


def run(
    spark: Any, raw: str, out: str, lag_months: int, check: bool = True, keys: bool = True
) -> dict[str, Any]:
    """Read ``raw``, write the feature rows as Parquet under ``out``; returns counts and seconds.

    The raw-value checks (nulls in key columns, rule breaks) are counted in the same pass that
    computes the features (``DataFrame.observe``), not in a pass of their own; when one fails,
    what was written under ``out`` is deleted and a DataError names the column, the count and an
    example row. ``keys=False`` leaves out application_id (the snapshot holds exactly the feature
    spec's columns, as validate requires; application_date stays: it is the spec's origination_date)."""
    from pyspark.sql import Observation

    start = time.perf_counter()
    raw_tables = {t: read_table(spark, raw, t) for t in schema.TABLES}
    tables, seen = dict(raw_tables), {}
    if check:
        for table, frame in raw_tables.items():
            seen[table] = Observation(f"checks_{table}")
            tables[table] = frame.observe(seen[table], *_counts(table))
    rows = features(
        tables[schema.APPLICATIONS], tables[schema.REPAYMENTS], tables[schema.INQUIRIES], lag_months
    )
    if not keys:
        rows = rows.drop(schema.APPLICATION_ID)
    excluded = spark.conf.get("spark.sql.adaptive.optimizer.excludedRules", "") or ""
    spark.conf.set(
        "spark.sql.adaptive.optimizer.excludedRules", ",".join(r for r in (excluded, _SKIPS_SCANS) if r)
    )
    try:
        rows.write.mode("errorifexists").parquet(out)
    finally:
        if excluded:
            spark.conf.set("spark.sql.adaptive.optimizer.excludedRules", excluded)
        else:
            spark.conf.unset("spark.sql.adaptive.optimizer.excludedRules")
    found = {table: observation.get for table, observation in seen.items()}
    try:
        for table, counts in found.items():
            _refuse(raw_tables[table], table, f"{raw}/{table}", counts)
    except Exception:
        _delete(spark, out)
        raise
    return {
        "seconds": round(time.perf_counter() - start, 3),
        "lag_months": lag_months,
        "raw": raw,
        "raw_rows": {table: int(counts["rows"]) for table, counts in found.items()},
        "out": out,
    }


def _delete(spark: Any, path: str) -> None:
    """Remove ``path`` (a directory the job wrote) through Spark's own file system client, so the
    same call works on local disk, s3a:// and gs://."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).delete(hadoop_path, True)


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
