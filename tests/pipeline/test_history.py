"""Raw loan history to applicant features (credit_risk/history): a hand-computed fixture, the
point-in-time boundary (a record on or after it never changes a feature; one just before it does),
the PySpark job equal to the pandas reference, clear errors on bad raw data, and the ETL output
consumed unchanged by validation."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit_risk.app import cli
from credit_risk.dataset import validation
from credit_risk.errors import DataError
from credit_risk.history import etl, generate, reference, schema
from credit_risk.spec import contract, feature_spec

SPARK_GROUP = "spark-session"  # one worker under -n: the tests share one local Spark (JVM start ~10 s)


# --- fixtures ---------------------------------------------------------------------------------
def _write_raw(root: Path, apps: pd.DataFrame, rep: pd.DataFrame, inq: pd.DataFrame) -> str:
    """Write three frames as a raw directory (dates as Parquet date32, as the generator does)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for table, frame in ((schema.APPLICATIONS, apps), (schema.REPAYMENTS, rep), (schema.INQUIRIES, inq)):
        (root / table).mkdir(parents=True)
        columns = {}
        for column, (kind, _) in schema.RAW_SCHEMA[table].items():
            values = frame[column]
            if kind == "date32":
                columns[column] = pa.array(pd.to_datetime(values).dt.date, pa.date32())
            elif values.isna().any():  # a null the test plants (what a raw table may hold)
                columns[column] = pa.array(
                    values.astype(object).where(values.notna(), None), pa.from_numpy_dtype(np.dtype(kind))
                )
            else:
                columns[column] = pa.array(values.to_numpy().astype(kind))
        pq.write_table(pa.table(columns), root / table / "part-00000.parquet")
    return str(root)


def _hand_fixture() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    apps = pd.DataFrame({
        "application_id": [10, 20, 30], "customer_id": [1, 2, 3],
        "application_date": pd.to_datetime(["2024-12-01", "2024-11-30", "2024-05-31"]),
        "income": [50_000.0, 40_000.0, 30_000.0], "loan_amount": [10_000.0, 8_000.0, 3_000.0],
        "term_months": [36.0, 24.0, 12.0], "applicant_age": [40.0, 30.0, 50.0], "default": [1, 0, 0],
    })  # fmt: skip
    rep = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 1, 2],
        "account_id": [100, 100, 100, 100, 101, 200],
        "month": pd.to_datetime(["2024-09-01", "2024-10-01", "2024-11-01", "2024-12-01", "2023-12-01",
                                 "2024-11-01"]),
        "balance": [50.0, 80.0, 90.0, 100.0, 10.0, 40.0],
        "credit_limit": [100.0, 100.0, 100.0, 100.0, 200.0, 100.0],
        "days_past_due": [0, 30, 0, 90, 60, 30],
    })  # fmt: skip
    inq = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 1, 3, 3],
        "inquiry_date": pd.to_datetime(["2024-11-30", "2024-09-01", "2024-08-31", "2024-12-01", "2023-12-01",
                                        "2024-02-29", "2024-02-28"]),
    })  # fmt: skip
    return apps, rep, inq


def _by_id(frame: pd.DataFrame) -> dict[int, dict]:
    return {int(r["application_id"]): r for r in frame.to_dict("records")}


def _sigterm_when_followed(fake, limit: float = 30.0):
    """SIGTERM this process - what a KFP cancel sends the pod - once ``fake`` (an API fake with a
    ``requests`` log) has been asked for the job's status twice: the follow loop, whose handler
    turns the signal into a cancel, is running and holds the state it read. A fixed delay raced
    the staging upload under load (the signal landed before the loop's handler was in place)."""
    import os
    import signal
    import threading
    import time

    stop = threading.Event()

    def send() -> None:
        deadline = time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline:
            # the second status read: the first one's answer is the state the loop holds
            if sum(method == "GET" for method, _ in list(fake.requests)) >= 2:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=send, daemon=True).start()
    return stop


# --- the feature definitions, by hand ------------------------------------------------------------
def test_features_match_a_hand_computed_table():
    out = _by_id(reference.features(*_hand_fixture(), lag_months=0))
    a = out[10]  # 2024-12-01: Nov (age 0), Oct (1), Sep (2), Dec 2023 (11) count; Dec 2024 does not
    assert (a["months_on_book"], a["active_accounts"]) == (12, 1)
    assert (a["delinquent_months_3m"], a["delinquency_ratio_3m"]) == (1, pytest.approx(1 / 3))
    assert (a["delinquent_months_6m"], a["delinquency_ratio_6m"]) == (1, pytest.approx(1 / 3))
    assert (a["delinquent_months_12m"], a["delinquency_ratio_12m"]) == (2, 0.5)
    assert (a["delinquent_months_24m"], a["worst_dpd_12m"], a["worst_dpd_24m"]) == (2, 60, 60)
    assert a["months_since_delinquency"] == 1
    assert a["utilisation_3m"] == pytest.approx(220 / 300) and a["utilisation_12m"] == pytest.approx(
        230 / 500
    )
    assert a["utilisation_trend"] == pytest.approx(220 / 300 - 230 / 500)
    # inquiries: 30 Nov and 1 Sep (= the 3-month window's start) in 3m; 31 Aug in 6m; 1 Dec 2023 in
    # 12m; 1 Dec 2024 (the application day itself) never
    assert (a["inquiries_3m"], a["inquiries_6m"], a["inquiries_12m"]) == (2, 3, 4)
    assert a["debt_to_income"] == pytest.approx(0.2)
    b = out[20]  # 2024-11-30: its November record is not closed yet -> no history at all
    assert (b["months_on_book"], b["delinquent_months_24m"], b["utilisation_3m"]) == (0, 0, 0)
    assert b["months_since_delinquency"] == schema.NEVER_DELINQUENT
    c = out[30]  # 2024-05-31 minus 3 months is 2024-02-29 (clamped): counted; 28 Feb is not
    assert (c["inquiries_3m"], c["inquiries_6m"]) == (1, 2)


def test_a_reporting_lag_shifts_every_window_by_whole_months():
    a = _by_id(reference.features(*_hand_fixture(), lag_months=1))[10]
    # November is not reported yet: October is the newest countable month (age 0)
    assert (a["months_on_book"], a["delinquent_months_3m"], a["delinquency_ratio_3m"]) == (11, 1, 0.5)
    assert a["months_since_delinquency"] == 0 and a["utilisation_3m"] == pytest.approx(130 / 200)
    assert a["inquiries_3m"] == 2  # inquiries are dated events: no reporting lag
    b = _by_id(reference.features(*_hand_fixture(), lag_months=1))[20]
    assert b["months_on_book"] == 0


def test_the_snapshot_has_the_spec_columns_typed_and_sorted():
    out = reference.features(*_hand_fixture(), lag_months=0)
    assert list(out.columns) == ["application_id", "application_date", *schema.feature_columns(), "default"]
    assert out["application_id"].tolist() == [10, 20, 30]
    assert (
        set(out[schema.feature_columns()].dtypes) == {np.dtype("float64")} and out["default"].dtype == "int64"
    )
    spec = feature_spec.from_dict(schema.feature_spec_dict())
    assert spec.feature_names == schema.feature_columns() and spec.label == "default"
    assert [f.name for f in spec.protected_features] == ["applicant_age"]


# --- point in time --------------------------------------------------------------------------------
def _boundary(apps: pd.DataFrame, lag: int) -> pd.DataFrame:
    """Per customer: the month index and date of the first and of the last application."""
    a = apps.assign(_a=schema.month_index(apps.application_date.dt.year, apps.application_date.dt.month))
    return a.groupby("customer_id").agg(
        first_a=("_a", "min"), first_date=("application_date", "min"),
        last_a=("_a", "max"), last_date=("application_date", "max"),
    ).reset_index()  # fmt: skip


def _poison_after_boundary(apps, rep, inq, lag: int, rng: np.random.Generator):
    """Raw data changed only on or after the boundary of every application of its customer (the
    last one's): those records made as bad as possible, new records exactly at the boundary month
    and on the application day added."""
    b = _boundary(apps, lag)
    rep = rep.merge(b, on="customer_id")
    m = schema.month_index(rep.month.dt.year, rep.month.dt.month)
    after = m + lag >= rep.last_a
    assert after.any() and (~after).any()
    rep.loc[after, "days_past_due"] = 180
    rep.loc[after, "balance"] = rep.loc[after, "credit_limit"] * 3
    at = b.sample(frac=0.5, random_state=int(rng.integers(1 << 30)))
    month0 = at.last_a - lag  # the first month that must not count
    extra = pd.DataFrame({
        "customer_id": at.customer_id, "account_id": -at.customer_id,
        "month": pd.to_datetime({"year": month0 // 12, "month": month0 % 12 + 1, "day": 1}),
        "balance": 999.0, "credit_limit": 1000.0, "days_past_due": 120,
    })  # fmt: skip
    rep = pd.concat([rep[list(schema.RAW_SCHEMA[schema.REPAYMENTS])], extra], ignore_index=True)
    more_inq = pd.DataFrame({"customer_id": np.repeat(b.customer_id, 2),
                             "inquiry_date": np.repeat(b.last_date, 2).to_numpy()})  # fmt: skip
    more_inq.loc[1::2, "inquiry_date"] += pd.Timedelta(days=40)
    return apps, rep, pd.concat([inq, more_inq], ignore_index=True)


def _just_before_boundary(apps, rep, inq, lag: int):
    """One past-due month and one inquiry just before the first boundary of every customer."""
    b = _boundary(apps, lag)
    month = b.first_a - lag - 1
    extra = pd.DataFrame({
        "customer_id": b.customer_id, "account_id": -b.customer_id,
        "month": pd.to_datetime({"year": month // 12, "month": month % 12 + 1, "day": 1}),
        "balance": 10.0, "credit_limit": 1000.0, "days_past_due": 90,
    })  # fmt: skip
    day_before = pd.DataFrame(
        {"customer_id": b.customer_id, "inquiry_date": b.first_date - pd.Timedelta(days=1)}
    )
    return apps, pd.concat([rep, extra], ignore_index=True), pd.concat([inq, day_before], ignore_index=True)


@pytest.fixture(scope="module")
def raw_small(tmp_path_factory) -> str:
    return generate.generate(tmp_path_factory.mktemp("hist") / "raw", records=20_000, seed=7).path


def _tables(raw: str):
    return tuple(reference.read_table(raw, t) for t in schema.TABLES)


@pytest.mark.parametrize("lag", [0, 2])
def test_a_record_on_or_after_the_boundary_never_changes_a_feature(raw_small, lag):
    apps, rep, inq = _tables(raw_small)
    before = reference.features(apps, rep, inq, lag)
    poisoned = reference.features(
        *_poison_after_boundary(apps, rep, inq, lag, np.random.default_rng(lag)), lag
    )
    pd.testing.assert_frame_equal(poisoned, before)
    # and the test can fail: the same kind of record one month (one day) earlier changes features
    moved = reference.features(*_just_before_boundary(apps, rep, inq, lag), lag)
    first = moved.groupby(
        apps.set_index("application_id").loc[moved.application_id, "customer_id"].to_numpy()
    ).head(1)
    assert (
        moved.loc[first.index, "delinquent_months_3m"] > before.loc[first.index, "delinquent_months_3m"]
    ).all()
    assert (moved.loc[first.index, "inquiries_3m"] > before.loc[first.index, "inquiries_3m"]).all()


# --- the generator ------------------------------------------------------------------------------
def test_the_generator_is_seeded_sized_and_writes_history_past_the_application(tmp_path):
    one = generate.generate(tmp_path / "a", records=20_000, seed=3, chunk_customers=100)
    two = generate.generate(tmp_path / "b", records=20_000, seed=3, chunk_customers=100)
    assert one.rows == two.rows and abs(one.records - 20_000) / 20_000 < 0.1
    assert len(list((tmp_path / "a" / schema.REPAYMENTS).glob("part-*.parquet"))) == 4  # 334 customers / 100
    for table in schema.TABLES:
        pd.testing.assert_frame_equal(reference.read_table(str(tmp_path / "a"), table),
                                      reference.read_table(str(tmp_path / "b"), table))  # fmt: skip
    assert json.loads((tmp_path / "a" / generate.MANIFEST).read_text())["records"] == one.records
    apps, rep, _ = _tables(str(tmp_path / "a"))
    b = _boundary(apps, 0)
    later = rep.merge(b, on="customer_id")
    assert (schema.month_index(later.month.dt.year, later.month.dt.month) >= later.first_a).mean() > 0.1
    assert 0.05 < apps["default"].mean() < 0.4
    with pytest.raises(FileExistsError):
        generate.generate(tmp_path / "a", records=10)


def test_history_features_carry_signal_about_the_label(tmp_path):
    """The known process: the label depends on the latent risk that drives the history, so the
    history features alone rank defaults better than chance (a model can learn from them)."""
    from sklearn.metrics import roc_auc_score

    out = reference.run(generate.generate(tmp_path / "raw", records=120_000, seed=11).path, 0)
    assert roc_auc_score(out["default"], out["delinquency_ratio_24m"]) > 0.6
    assert roc_auc_score(out["default"], -out["months_since_delinquency"]) > 0.6


# --- bad raw data ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "column", "value", "says"),
    [
        (schema.APPLICATIONS, "application_date", None,
         "'application_date' is null in 1 row(s), first at row 1"),
        (schema.REPAYMENTS, "credit_limit", 0.0,
         "'credit_limit' breaks 'credit_limit > 0' in 1 row(s), first at row 2 (value 0.0)"),
        (schema.APPLICATIONS, "default", 2, "'default' breaks 'default IN (0, 1)'"),
    ],
)  # fmt: skip
def test_bad_raw_values_are_refused_naming_column_row_and_value(tmp_path, table, column, value, says):
    frames = dict(zip(schema.TABLES, _hand_fixture(), strict=True))
    frames[table] = frames[table].astype({column: "object"}) if value is None else frames[table]
    row = 1 if table == schema.APPLICATIONS else 2
    frames[table].loc[row, column] = value
    raw = tmp_path / "raw"
    if value is None:
        for (
            t
        ) in schema.TABLES:  # a null date cannot go through _write_raw's cast: write it as Parquet directly
            (raw / t).mkdir(parents=True)
            f = frames[t].copy()
            for c, (kind, _) in schema.RAW_SCHEMA[t].items():
                if kind == "date32":
                    f[c] = pd.to_datetime(f[c]).dt.date
            f.to_parquet(raw / t / "part-00000.parquet", index=False)
    else:
        _write_raw(raw, *frames.values())
    with pytest.raises(DataError, match=re.escape(says)):
        reference.run(str(raw), 0)


def test_a_table_missing_a_column_is_refused_with_the_expected_ones(tmp_path):
    apps, rep, inq = _hand_fixture()
    raw = _write_raw(tmp_path / "raw", apps, rep, inq)
    pd.read_parquet(Path(raw) / "inquiries").drop(columns="inquiry_date").to_parquet(
        Path(raw) / "inquiries" / "part-00000.parquet")  # fmt: skip
    with pytest.raises(DataError, match=r"inquiries table lacks column\(s\) \['inquiry_date'\]"):
        reference.run(raw, 0)
    with pytest.raises(DataError, match="reporting lag: expected a whole number of months from 0 to 12"):
        reference.features(apps, rep, inq, lag_months=13)


# --- the ETL step's output is what validation consumes -------------------------------------------------
def test_the_etl_snapshot_and_its_spec_pass_validation_unchanged(raw_small, tmp_path, capsys):
    out = tmp_path / "features"
    assert (
        cli.main(["etl", "--raw", raw_small, "-o", str(out), "--engine", "pandas", "--lag-months", "1"]) == 0
    )
    assert "applications, 24 features" in capsys.readouterr().out
    assert (out / "_PUBLISHED.json").exists()
    summary = json.loads((out / etl.SUMMARY_FILE).read_text())
    assert summary["engine"] == "pandas" and summary["raw_manifest"]["seed"] == 7
    spec = feature_spec.load(str(out / etl.SPEC_FILE))
    result = validation.validate(
        spec.data_path(), spec, str(tmp_path / "validation"), validation.ValidationConfig()
    )
    assert result.passed, result.summary()
    # a second run to the same place never overwrites the published snapshot
    with pytest.raises(Exception, match="already published"):
        etl.run(raw_small, str(out), engine="pandas")


# --- the PySpark job ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from credit_risk.history import spark_job

    session = spark_job.session("local[2]", "1g", shuffle_partitions="4")
    yield session
    session.stop()


def _spark_features(spark, raw: str, out: Path, lag: int) -> pd.DataFrame:
    from credit_risk.history import spark_job

    spark_job.run(spark, raw, str(out), lag)
    frame = pd.read_parquet(out).sort_values("application_id").reset_index(drop=True)
    return frame.assign(application_date=pd.to_datetime(frame.application_date).dt.date)


@pytest.mark.xdist_group(SPARK_GROUP)
@pytest.mark.parametrize("lag", [0, 1])
def test_the_spark_job_equals_the_pandas_reference(spark, raw_small, tmp_path, lag):
    ref = reference.run(raw_small, lag)
    got = _spark_features(spark, raw_small, tmp_path / "out", lag)
    pd.testing.assert_frame_equal(got[ref.columns], ref, check_exact=False, rtol=1e-12)


@pytest.mark.xdist_group(SPARK_GROUP)
def test_the_spark_job_matches_the_hand_table_and_keeps_the_boundary(spark, tmp_path):
    fixture = _hand_fixture()
    got = _spark_features(spark, _write_raw(tmp_path / "raw", *fixture), tmp_path / "out", 0)
    ref = reference.features(*fixture, lag_months=0)
    pd.testing.assert_frame_equal(got[ref.columns], ref, check_exact=False, rtol=1e-12)
    # the boundary on the Spark side: poisoned-after-boundary raw data gives the same features
    apps, rep, inq = _poison_after_boundary(*fixture, lag=0, rng=np.random.default_rng(0))
    poisoned = _spark_features(spark, _write_raw(tmp_path / "raw2", apps, rep, inq), tmp_path / "out2", 0)
    pd.testing.assert_frame_equal(poisoned[ref.columns], ref, check_exact=False, rtol=1e-12)


@pytest.mark.xdist_group(SPARK_GROUP)
@pytest.mark.parametrize(
    ("table", "column", "value", "says"),
    [
        (schema.REPAYMENTS, "days_past_due", -30,
         r"repayments: column 'days_past_due' breaks 'days_past_due >= 0' in 1 row\(s\), e.g. .*-30"),
        # a null join key: the join would drop that row; the check pass still sees it
        (schema.REPAYMENTS, "customer_id", None,
         r"repayments: column 'customer_id' is null in 1 row\(s\), e.g. .*'customer_id': None"),
        (schema.INQUIRIES, "customer_id", None, r"inquiries: column 'customer_id' is null in 1 row\(s\)"),
        (schema.APPLICATIONS, "default", 2, r"applications: column 'default' breaks 'default IN \(0, 1\)'"),
    ],
)  # fmt: skip
def test_the_spark_job_refuses_bad_raw_values_naming_the_column(spark, tmp_path, table, column, value, says):
    from credit_risk.history import spark_job

    frames = dict(zip(schema.TABLES, _hand_fixture(), strict=True))
    if value is None:
        frames[table][column] = frames[table][column].astype("Int64")
    frames[table].loc[1, column] = pd.NA if value is None else value
    raw = _write_raw(tmp_path / "raw", *frames.values())
    with pytest.raises(DataError, match=says):
        spark_job.run(spark, raw, str(tmp_path / "out"), 0)
    assert not (tmp_path / "out").exists()


@pytest.mark.xdist_group(SPARK_GROUP)
def test_the_etl_spark_engine_publishes_the_same_snapshot_as_pandas(
    spark, raw_small, tmp_path, monkeypatch, caplog
):
    """End to end through etl.run on Spark local[2] in this process (the pod's path; the session
    already active here is used, as in a notebook, and left running)."""
    spark_out, pandas_out = tmp_path / "spark", tmp_path / "pandas"
    monkeypatch.setattr(etl, "PROGRESS_SECONDS", 0.2)
    with caplog.at_level("INFO", logger=etl.log.name):
        etl.run(raw_small, str(spark_out), lag_months=1, engine="spark", driver_memory="1g")
    # progress while Spark works: the running stages with their finished / total tasks
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("etl: spark ")]
    assert progress and any(re.search(r"stage \d+ \d+/\d+ tasks", line) for line in progress), progress
    etl.run(raw_small, str(pandas_out), lag_months=1, engine="pandas")
    assert (spark_out / etl.SPEC_FILE).read_text() == (pandas_out / etl.SPEC_FILE).read_text()
    key = [schema.APPLICATION_DATE, *schema.feature_columns(), "default"]
    a = pd.read_parquet(spark_out / etl.DATA_DIR).sort_values(key).reset_index(drop=True)
    b = pd.read_parquet(pandas_out / etl.DATA_DIR).sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns) == key  # the date stays: the spec's origination_date
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert json.loads((spark_out / etl.SUMMARY_FILE).read_text())["spark_master"] == "local[2]"
    assert spark.range(3).count() == 3  # still running


# --- the pipeline's first step ----------------------------------------------------------------------
def test_the_source_step_passes_applicant_rows_through_and_refuses_no_or_two_sources(tmp_path):
    out = etl.history_step("", "gs://b/rows.csv", "gs://b/spec.yaml", str(tmp_path / "a"), "gs://root/a")
    assert (out.data_uri, out.feature_spec_uri, out.result) == ("gs://b/rows.csv", "gs://b/spec.yaml", None)
    assert json.loads((tmp_path / "a" / etl.PASSTHROUGH_FILE).read_text())["source"] == "applicant rows"
    # a PostgreSQL run has no data_uri: the spec alone passes through (ingest runs the query)
    assert etl.history_step("", "", "spec.yaml", str(tmp_path / "b"), str(tmp_path / "b")).data_uri == ""
    with pytest.raises(DataError, match="no training data: set feature_spec_uri with data_uri or sql_query"):
        etl.history_step("", "rows.csv", "", str(tmp_path / "c"), str(tmp_path / "c"))
    with pytest.raises(DataError, match="replaces data_uri and feature_spec_uri"):
        etl.history_step("raw/", "rows.csv", "spec.yaml", str(tmp_path / "d"), str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()


def test_artifact_uris_become_what_later_steps_read():
    from credit_risk import storage

    assert storage.readable_artifact_uri("minio://mlpipeline/v2/artifacts/run/history-features/features") == (
        "s3://mlpipeline/v2/artifacts/run/history-features/features"
    )
    assert storage.readable_artifact_uri("gs://bucket/root/features/") == "gs://bucket/root/features"
    assert storage.readable_artifact_uri("/tmp/root/features") == "/tmp/root/features"


def test_the_training_pipeline_runs_end_to_end_from_raw_history(tmp_path, capsys):
    """The local runner, the compiled components, Spark local[2] inside the first step's process:
    raw history -> features + spec -> ingest -> validate -> split -> train -> evaluate -> deploy."""
    pytest.importorskip("pyspark")
    raw = generate.generate(tmp_path / "raw", records=150_000, seed=5).path
    summary = tmp_path / "summary.json"
    rc = cli.main([
        "run-local", "--raw-history", raw, "--history-lag-months", "1",
        "--pipeline-root", str(tmp_path / "root"),
        "--epochs", "4", "--param", "ensemble_size=1", "--param", "history_driver_memory=1g",
        "--summary-json", str(summary),
    ])  # fmt: skip
    s = json.loads(summary.read_text())
    assert s["succeeded"], s
    assert rc in (0, 3) and s["verdict"] in ("approved", "rejected")
    # the terminal shows one line per step (name, status, seconds, key figures); KFP's output is in the log
    out = capsys.readouterr().out
    steps_shown = re.findall(r"^  \[(\d)\] ([\w-]+) +(SUCCESS|FAILURE) +([\d.]+) s(.*)$", out, re.M)
    assert [t for _, t, _, _, _ in steps_shown] == [
        "history-features", "ingest", "validate", "split", "train", "evaluate", "deploy"
    ] and all(status == "SUCCESS" for _, _, status, _, _ in steps_shown), out  # fmt: skip
    figures = {t: f for _, t, _, _, f in steps_shown}
    assert "source raw history" in figures["history-features"] and "decision" in figures["evaluate"], out
    assert "executor_input" not in out and "Executing task" not in out
    (log,) = (tmp_path / "root").glob("run-local-*.log")
    assert "Executing task 'train'" in log.read_text()
    run_dir = Path(s["run_dir"])
    meta = json.loads((run_dir / "history-features" / "executor_output.json").read_text())
    features = meta["artifacts"]["features"]["artifacts"][0]["metadata"]
    assert (
        features["source"] == "raw history" and features["engine"] == "spark" and features["lag_months"] == 1
    )
    assert features["rows"] > 2000 and features["features"] == len(schema.feature_columns())
    # every later step read the history's spec: the model's inputs are its features
    model_spec = feature_spec.load(str(Path(s["artifacts"]["model"]) / contract.SPEC_FILE))
    assert model_spec.name == "loan_history"
    assert {f.name for f in model_spec.model_features} == set(schema.feature_columns()) - {"applicant_age"}
    assert s["decision"]["metrics"]["auc"] > 0.65, s["decision"]["metrics"]
    # the applications are dated: the held-out rows are the latest ones, judged cohort by cohort
    assert model_spec.date_column == schema.APPLICATION_DATE
    approval = json.loads(Path(s["artifacts"]["approval"]).read_text())
    cohorts = approval["vintage"]["cohorts"]
    assert cohorts and str(pd.Period(approval["vintage"]["out_of_time_cutoff"], "Q")) == cohorts[0]["cohort"]
    assert [c["group"] for c in approval["checks"] if c["name"] == "min_cohort_p_value"] == [
        c["cohort"] for c in cohorts
    ]
    with pytest.raises(SystemExit):
        cli.main(["run-local", "--raw-history", raw, "--history-engine", "duckdb"])
    assert cli.main(["run-local", "--raw-history", raw, "--dataset", "german_credit"]) == 1
    assert "--raw-history replaces --dataset/--data/--spec" in capsys.readouterr().err


# --- on a Spark cluster: the Spark Operator's SparkApplication ----------------------------------------
def test_the_sparkapplication_is_valid_against_the_operators_crd_and_names_what_it_runs(tmp_path):
    import copy

    from credit_risk.history import cluster
    from tests.helpers import SPARK_CRD, crd_schema
    from tests.kube_api_fake import SchemaValidator

    job = cluster.ClusterJob(
        name=cluster.job_name("s3://b/features"),
        namespace="credit-risk",
        spark_image="registry.example/spark:4.0.0-python3",
        raw="s3://b/raw",
        out="s3://b/features/data",
        lag_months=1,
    )
    obj = cluster.render(
        job, "s3://b/features/_job/spark_job.py", "s3://b/features/_job/credit_risk_history.zip"
    )
    SchemaValidator(crd_schema(SPARK_CRD, "v1beta2")).admit(obj)  # raises InvalidError; returns pruned fields
    assert (
        SchemaValidator(crd_schema(SPARK_CRD, "v1beta2")).admit(copy.deepcopy(obj)) == []
    )  # nothing unknown
    spec = obj["spec"]
    assert spec["mainApplicationFile"] == "s3a://b/features/_job/spark_job.py"  # Spark's S3A connector
    assert spec["arguments"] == [
        "--raw",
        "s3a://b/raw",
        "--out",
        "s3a://b/features/data",
        "--lag-months",
        "1",
        "--no-keys",
    ]
    assert spec["restartPolicy"] == {"type": "Never"} and spec["type"] == "Python"
    assert len(obj["metadata"]["name"]) <= 63 and obj["metadata"]["name"] == cluster.job_name(
        "s3://b/features"
    )


def test_the_staged_zip_alone_imports_the_job(tmp_path):
    """The Spark image has none of this package: the zip in deps.pyFiles must be enough. Run with
    ``-S`` (no site .pth files, so not this checkout's editable install) and only the zip and
    pyspark's folder on the path; the job pulls in neither pandas nor the storage layer."""
    import subprocess
    import sys

    import pyspark

    from credit_risk.history import cluster

    _, zipped = cluster.stage(str(tmp_path / "job"))
    site = str(Path(pyspark.__file__).parent.parent)
    code = (
        f"import sys; sys.path[:0] = [{zipped!r}, {site!r}]; import credit_risk.history.spark_job as m; "
        f"assert m.__file__.startswith({zipped!r}), m.__file__; "
        "assert not {'pandas', 'credit_risk.storage'} & set(sys.modules), sorted(sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.xdist_group(SPARK_GROUP)
def test_a_sparkapplication_runs_the_job_and_the_output_is_published_after_completion(raw_small, tmp_path):
    from credit_risk.history import cluster
    from tests.spark_operator_fake import FakeSparkOperator

    out = tmp_path / "features"
    with FakeSparkOperator() as op:
        engine = cluster.SparkOperator("credit-risk", "registry.example/spark:4", api_client=op.api_client())
        result = etl.run_on_cluster(
            raw_small, str(out), engine, lag_months=1, poll_seconds=0.5, timeout_seconds=600
        )
        created = [p for m, p in op.requests if m == "POST"]
    assert created == ["/apis/sparkoperator.k8s.io/v1beta2/namespaces/credit-risk/sparkapplications"]
    assert (
        result.engine == "spark-operator"
        and (out / etl.SPEC_FILE).exists()
        and (out / "data" / "_SUCCESS").exists()
    )
    ref = reference.run(raw_small, 1).drop(columns=["application_id"])  # the date stays: the spec's
    got = pd.read_parquet(out / "data")  # origination_date
    assert result.rows == len(ref) == len(got)
    key = list(ref.columns)
    pd.testing.assert_frame_equal(
        got[key].sort_values(key).reset_index(drop=True),
        ref.sort_values(key).reset_index(drop=True),
        check_exact=False,
        rtol=1e-12,
    )
    with pytest.raises(Exception, match="already published"):
        etl.run_on_cluster(raw_small, str(out), cluster.SparkOperator("credit-risk", "img"))


@pytest.mark.parametrize(
    ("mode", "raw_ok", "timeout", "says"),
    [
        ("run", False, 300, "ended FAILED: driver container failed with ExitCode"),
        ("submission_failed", True, 300, "ended SUBMISSION_FAILED: failed to run spark-submit"),
        ("pending", True, 2, "timed out after 2 s in state SUBMITTED; cancelled"),
    ],
)
def test_a_failed_refused_or_stuck_sparkapplication_publishes_nothing(
    raw_small, tmp_path, mode, raw_ok, timeout, says
):
    from credit_risk.history import cluster
    from credit_risk.history.cluster import SparkJobError
    from tests.spark_operator_fake import FakeSparkOperator

    out = tmp_path / "features"
    raw = raw_small if raw_ok else str(tmp_path / "no-such-raw")
    with FakeSparkOperator(mode) as op:
        with pytest.raises(SparkJobError, match=says):
            engine = cluster.SparkOperator("credit-risk", "img", api_client=op.api_client())
            etl.run_on_cluster(raw, str(out), engine, poll_seconds=0.3, timeout_seconds=timeout)
        assert op.deleted == ([etl_job_name(out)] if mode == "pending" else [])
    assert not (out / etl.SPEC_FILE).exists()


def etl_job_name(out: Path) -> str:
    from credit_risk.history import cluster

    return cluster.job_name(str(out))


def test_a_cancelled_run_deletes_its_sparkapplication(raw_small, tmp_path):
    """KFP cancels a run by terminating the pod (SIGTERM): the application is deleted, not orphaned."""
    import signal

    from credit_risk.history import cluster
    from credit_risk.history.cluster import SparkJobError
    from tests.spark_operator_fake import FakeSparkOperator

    out = tmp_path / "features"
    with FakeSparkOperator("pending") as op:
        stop = _sigterm_when_followed(op)
        try:
            with pytest.raises(SparkJobError, match="cancelled in state SUBMITTED; cancelled"):
                engine = cluster.SparkOperator("credit-risk", "img", api_client=op.api_client())
                etl.run_on_cluster(raw_small, str(out), engine, poll_seconds=0.2, timeout_seconds=60)
        finally:
            stop.set()
        assert op.deleted == [etl_job_name(out)] and not op.apps
    assert signal.getsignal(signal.SIGTERM) is not None


@pytest.mark.xdist_group(SPARK_GROUP)
def test_the_pipeline_step_runs_the_job_on_the_spark_operator_with_only_the_runner_roles_verbs(
    raw_small, tmp_path, monkeypatch
):
    """history_engine=spark-operator from the first step: the SparkApplication goes to the pod's own
    namespace, through an API server that grants exactly the verbs of the runner's Role
    (manifests/pipeline-namespace/runner.yaml) - enough to run it and to delete it on a timeout."""
    import yaml

    from credit_risk import kube
    from tests.helpers import REPO
    from tests.spark_operator_fake import FakeSparkOperator

    role = next(
        d for d in yaml.safe_load_all((REPO / "manifests/pipeline-namespace/runner.yaml").read_text())
        if d["kind"] == "Role"
    )  # fmt: skip
    (rule,) = [r for r in role["rules"] if r["resources"] == ["sparkapplications"]]
    assert rule["apiGroups"] == ["sparkoperator.k8s.io"]
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("kubeflow-user-example-com\n")
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)
    granted = {"kubeflow-user-example-com": set(rule["verbs"])}
    settings = etl.ClusterSettings(
        spark_image="registry.example/spark:4", poll_seconds=0.5, timeout_seconds=600
    )
    out = tmp_path / "features"
    with FakeSparkOperator(granted=granted) as op:
        monkeypatch.setenv(kube.KUBE_HOST_ENV, op.url)
        step = etl.history_step(raw_small, "", "", str(out), str(out), 1, "spark-operator", cluster=settings)
        created = [p for m, p in op.requests if m == "POST"]
    assert created == [
        "/apis/sparkoperator.k8s.io/v1beta2/namespaces/kubeflow-user-example-com/sparkapplications"
    ]
    assert step.data_uri == f"{out}/data" and step.feature_spec_uri == f"{out}/{etl.SPEC_FILE}"
    assert step.result.engine == "spark-operator" and step.result.rows > 0
    assert feature_spec.load(step.feature_spec_uri).date_column == schema.APPLICATION_DATE
    stuck = tmp_path / "stuck"
    with FakeSparkOperator("pending", granted=granted) as op:
        monkeypatch.setenv(kube.KUBE_HOST_ENV, op.url)
        with pytest.raises(cluster_error(), match="timed out after 2 s in state SUBMITTED; cancelled"):
            etl.history_step(raw_small, "", "", str(stuck), str(stuck), 1, "spark-operator",
                             cluster=replace(settings, timeout_seconds=2))  # fmt: skip
        assert op.deleted == [etl_job_name(stuck)]  # the Role's delete verb: nothing is left running
    with FakeSparkOperator(granted={"kubeflow-user-example-com": {"get"}}) as op:
        monkeypatch.setenv(kube.KUBE_HOST_ENV, op.url)
        with pytest.raises(cluster_error(), match=r"was refused: 403 Forbidden: .*cannot create resource"):
            etl.history_step(raw_small, "", "", str(tmp_path / "x"), str(tmp_path / "x"), 1, "spark-operator",
                             cluster=settings)  # fmt: skip
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "not-in-a-pod")
    with pytest.raises(DataError, match="engine spark-operator needs a namespace"):
        etl.history_step(raw_small, "", "", str(tmp_path / "y"), str(tmp_path / "y"), 1, "spark-operator",
                         cluster=settings)  # fmt: skip
    with pytest.raises(DataError, match="engine emr-serverless needs an application id"):
        etl.history_step(raw_small, "", "", str(tmp_path / "z"), str(tmp_path / "z"), 1, "emr-serverless")


def cluster_error() -> type[Exception]:
    from credit_risk.history.cluster import SparkJobError

    return SparkJobError


def test_the_api_server_refuses_an_invalid_sparkapplication_with_the_field(tmp_path):
    from credit_risk.history import cluster
    from tests.spark_operator_fake import FakeSparkOperator

    job = cluster.ClusterJob(
        name="credit-risk-history-x", namespace="ns", spark_image="img", raw="/r", out="/o"
    )
    with FakeSparkOperator() as op:
        bad = cluster.render(job, "/m.py", "/z.zip")
        bad["spec"]["mode"] = "sideways"
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        api = client.CustomObjectsApi(op.api_client())
        with pytest.raises(ApiException) as e:
            api.create_namespaced_custom_object(cluster.GROUP, cluster.VERSION, "ns", cluster.PLURAL, bad)
        assert e.value.status == 422 and "spec.mode" in e.value.body
        good = cluster.render(job, "/m.py", "/z.zip")
        api.create_namespaced_custom_object(cluster.GROUP, cluster.VERSION, "ns", cluster.PLURAL, good)
        with pytest.raises(ApiException) as e:
            api.create_namespaced_custom_object(cluster.GROUP, cluster.VERSION, "ns", cluster.PLURAL, good)
        assert e.value.status == 409


# --- on AWS: EMR Serverless, through boto3 against moto's server --------------------------------------
def _upload_dir(local: Path, uri: str) -> None:
    from credit_risk import storage

    for path in sorted(local.rglob("*")):
        if path.is_file():
            storage.upload_file(path, f"{uri}/{path.relative_to(local)}")


def test_an_emr_serverless_job_run_names_the_staged_job_and_no_output_means_nothing_published(raw_small, s3):
    """What moto 5's EMR Serverless implements (measured here): CreateApplication, StartJobRun
    (checks the role's account and the timeout's minimum), GetJobRun, CancelJobRun - and a job run
    is SUCCESS at once, running nothing. So this tests the request, the staging it references and the
    step's own guard: a run that reports success without Spark's _SUCCESS marker publishes nothing."""
    import os

    import boto3

    from credit_risk import storage
    from credit_risk.history import emr
    from credit_risk.history.cluster import SparkJobError

    _, bucket = s3
    _upload_dir(Path(raw_small), f"s3://{bucket}/raw")
    service = boto3.client(
        "emr-serverless", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"], region_name="us-east-1"
    )
    app = service.create_application(name="credit-risk-history", releaseLabel="emr-7.5.0", type="SPARK")
    engine = emr.EmrServerless(
        app["applicationId"], "arn:aws:iam::123456789012:role/emr-history", client=service
    )
    out = f"s3://{bucket}/features/run-1"
    with pytest.raises(SparkJobError, match=r"reported success but .*_SUCCESS is missing.*nothing published"):
        etl.run_on_cluster(
            f"s3://{bucket}/raw", out, engine, lag_months=1, poll_seconds=0.1, timeout_seconds=60
        )
    assert not storage.exists(f"{out}/{etl.SPEC_FILE}")
    runs = service.list_job_runs(applicationId=app["applicationId"])["jobRuns"]
    run = service.get_job_run(applicationId=app["applicationId"], jobRunId=runs[0]["id"])["jobRun"]
    submit = run["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == f"{out}/_job/spark_job.py" and storage.exists(submit["entryPoint"])
    assert f"--py-files {out}/_job/credit_risk_history.zip" in submit["sparkSubmitParameters"]
    assert storage.exists(f"{out}/_job/credit_risk_history.zip")
    args = ["--raw", f"s3://{bucket}/raw", "--out", f"{out}/data", "--lag-months", "1", "--no-keys"]
    assert submit["entryPointArguments"] == args
    # the refusal path: a role of another account (moto checks it as EMR does)
    other = emr.EmrServerless(app["applicationId"], "arn:aws:iam::999999999999:role/x", client=service)
    with pytest.raises(
        SparkJobError, match="refused the job run: AccessDeniedException: Cross-account pass role"
    ):
        etl.run_on_cluster(f"s3://{bucket}/raw", f"s3://{bucket}/features/run-2", other)
    with pytest.raises(SparkJobError, match="EMR Serverless reads s3:// only"):
        engine.request("n", "/local/main.py", f"{out}/z.zip", "s3://b/raw", "s3://b/out", 0, 60)


@pytest.mark.parametrize(
    ("mode", "timeout", "says"),
    [
        ("fail", 60, r"ended FAILED: Job failed, please check complete logs .* ExitCode: 1"),
        ("hang", 2, r"timed out after 2 s in state RUNNING; cancelled"),
    ],
)
def test_an_emr_serverless_run_that_fails_or_hangs_publishes_nothing(s3, mode, timeout, says):
    """What moto cannot show (its runs succeed at once): through the EMR Serverless protocol fake, a
    failed run names EMR's stateDetails, a stuck one is cancelled (CancelJobRun) at the timeout,
    and neither publishes a spec."""
    from credit_risk import storage
    from credit_risk.history import emr
    from credit_risk.history.cluster import SparkJobError
    from tests.emr_serverless_fake import FakeEmrServerless

    _, bucket = s3
    out = f"s3://{bucket}/features/emr-{mode}"
    with FakeEmrServerless(mode) as fake:
        engine = emr.EmrServerless(
            "00app1", "arn:aws:iam::123456789012:role/emr-history", client=fake.client()
        )
        with pytest.raises(SparkJobError, match=says):
            etl.run_on_cluster(f"s3://{bucket}/raw", out, engine, poll_seconds=0.2, timeout_seconds=timeout)
        (run,) = fake.runs.values()
        assert run["jobDriver"]["sparkSubmit"]["entryPoint"] == f"{out}/_job/spark_job.py"
        cancelled = [p for m, p in fake.requests if m == "DELETE"]
        assert cancelled == ([f"/applications/00app1/jobruns/{run['jobRunId']}"] if mode == "hang" else [])
        assert run["state"] in (("CANCELLING", "CANCELLED") if mode == "hang" else ("FAILED",))
    assert not storage.exists(f"{out}/{etl.SPEC_FILE}")


def test_a_cancelled_step_cancels_its_emr_serverless_run(s3):
    """KFP cancels a run with SIGTERM: the job run is cancelled, not left running (and billed)."""
    from credit_risk.history import emr
    from credit_risk.history.cluster import SparkJobError
    from tests.emr_serverless_fake import FakeEmrServerless

    _, bucket = s3
    with FakeEmrServerless("hang") as fake:
        engine = emr.EmrServerless(
            "00app1", "arn:aws:iam::123456789012:role/emr-history", client=fake.client()
        )
        stop = _sigterm_when_followed(fake)
        try:
            with pytest.raises(SparkJobError, match="cancelled in state RUNNING; cancelled"):
                etl.run_on_cluster(f"s3://{bucket}/raw", f"s3://{bucket}/features/emr-cancel", engine,
                                   poll_seconds=0.2, timeout_seconds=60)  # fmt: skip
        finally:
            stop.set()
        assert [m for m, _ in fake.requests].count("DELETE") == 1


def test_the_emr_serverless_fake_validates_like_the_service():
    """The fake's own checks, raw over HTTP (boto3 would refuse these before sending): a body
    missing a required member is a 400 ValidationException naming it, an unknown application a 404,
    and a retried start with the same clientToken the same run."""
    import urllib.error
    import urllib.request

    from tests.emr_serverless_fake import FakeEmrServerless

    def post(url, body):
        request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    with FakeEmrServerless("succeed") as fake:
        status, body = post(f"{fake.url}/applications/00app1/jobruns", {"clientToken": "t1"})
        assert status == 400 and body["__type"] == "ValidationException"
        assert 'Missing required parameter in input: "executionRoleArn"' in body["message"]
        good = {"clientToken": "t1", "executionRoleArn": "arn:aws:iam::123456789012:role/r",
                "jobDriver": {"sparkSubmit": {"entryPoint": "s3://b/main.py"}}}  # fmt: skip
        assert post(f"{fake.url}/applications/nope/jobruns", good)[0] == 404
        first, second = (post(f"{fake.url}/applications/00app1/jobruns", good)[1] for _ in range(2))
        assert first["jobRunId"] == second["jobRunId"] and len(fake.runs) == 1
        client = fake.client()
        states = [client.get_job_run(applicationId="00app1", jobRunId=first["jobRunId"])["jobRun"]["state"]
                  for _ in range(4)]  # fmt: skip
        assert states == ["RUNNING", "RUNNING", "SUCCESS", "SUCCESS"]


def test_raw_history_and_features_on_s3(raw_small, s3, tmp_path):
    """Object storage on both ends: the pandas engine reads s3:// raw tables directly and publishes
    the snapshot there (marker last); for Spark in a pod an s3:// raw input is streamed to local disk
    first, file by file, the same bytes."""
    from credit_risk import storage

    _, bucket = s3
    raw = f"s3://{bucket}/history/raw"
    _upload_dir(Path(raw_small), raw)
    out = f"s3://{bucket}/history/features"
    result = etl.run(raw, out, lag_months=1, engine="pandas")
    assert storage.is_published(out) and storage.exists(f"{out}/{etl.SPEC_FILE}")
    local = reference.run(raw_small, 1)
    assert result.rows == len(local)
    copied = etl._local_raw(raw, tmp_path)
    for table in schema.TABLES:
        pd.testing.assert_frame_equal(
            reference.read_table(copied, table), reference.read_table(raw_small, table)
        )
    with pytest.raises(DataError, match="not a directory"):
        etl._local_raw(str(tmp_path / "nowhere"), tmp_path)
