"""Ingestion from a real PostgreSQL server (started by the tests on 127.0.0.1) and from files."""

import json
from pathlib import Path

import pandas as pd
import pytest

from credit_risk import storage
from credit_risk.dataset import ingest
from credit_risk.errors import DataError
from tests.helpers import CREDIT_CSV, GERMAN_CSV

GERMAN_QUERY = "SELECT * FROM german_credit WHERE id > :min_id ORDER BY id"


def _snapshot_frame(target):
    return pd.concat(pd.read_parquet(p) for p in sorted(Path(target).glob("part-*.parquet")))


def test_postgres_snapshot_equals_the_csv_snapshot(postgres, german_spec, tmp_path):
    from_sql = ingest.ingest_postgres(
        GERMAN_QUERY,
        german_spec,
        str(tmp_path / "sql"),
        params={"min_id": 0},
        chunk_rows=128,
        env=postgres.env(),
    )
    from_csv = ingest.ingest_files(str(GERMAN_CSV), german_spec, str(tmp_path / "csv"))
    assert from_sql.rows == from_csv.rows == 1000
    assert len(from_sql.files) == 8  # 1000 rows fetched 128 at a time through the server-side cursor
    assert from_sql.content_sha256 == from_csv.content_sha256  # same rows, same types, same hash
    assert from_sql.dropped_columns == ["id"]
    frame = _snapshot_frame(tmp_path / "sql")
    assert list(frame.columns) == german_spec.columns
    assert frame["duration_in_month"].dtype == "float64" and frame["default"].dtype == "int64"
    pd.testing.assert_frame_equal(
        frame.reset_index(drop=True), _snapshot_frame(tmp_path / "csv").reset_index(drop=True)
    )
    meta = json.loads((tmp_path / "sql" / ingest.SNAPSHOT_FILE).read_text())
    assert meta["rows"] == 1000 and meta["source"]["parameters"] == ["min_id"]
    assert "password" not in json.dumps(meta).lower() and postgres.password not in json.dumps(meta)
    assert storage.is_published(str(tmp_path / "sql"))


def test_query_parameters_are_bound_not_pasted(postgres, german_spec, tmp_path):
    snap = ingest.ingest_postgres(
        GERMAN_QUERY, german_spec, str(tmp_path / "s"), params={"min_id": 900}, env=postgres.env()
    )
    assert snap.rows == 100
    with pytest.raises(ingest.IngestError, match="SQLSTATE 22P02"):  # not an integer: the server says so
        ingest.ingest_postgres(
            GERMAN_QUERY, german_spec, str(tmp_path / "t"), params={"min_id": "0; DROP TABLE german_credit"},
            env=postgres.env(),
        )  # fmt: skip
    assert postgres.connect().run("SELECT count(*) FROM german_credit")[0][0] == 1000


def test_the_connection_is_read_only(postgres, german_spec, tmp_path):
    # a query with a side effect (advancing a sequence) is refused by the server
    query = "SELECT *, nextval('german_credit_id_seq') AS next_id FROM german_credit"
    with pytest.raises(ingest.IngestError, match=r"cannot execute nextval\(\) in a read-only transaction"):
        ingest.ingest_postgres(query, german_spec, str(tmp_path / "s"), env=postgres.env())
    assert postgres.connect().run("SELECT last_value FROM german_credit_id_seq")[0][0] == 1000
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM no_such_table", r'SQLSTATE 42P01\): relation "no_such_table" does not exist'),
        ("SELEC * FROM german_credit", "SQLSTATE 42601"),
        ("SELECT * FROM german_credit WHERE id < 0", "returned no rows"),
        (
            "SELECT id, status_of_existing_checking_account, duration_in_month::text AS duration_in_month, "
            "credit_history, purpose, credit_amount, savings_account_and_bonds, present_employment_since, "
            "installment_rate_in_percentage_of_disposable_income, personal_status_and_sex, "
            "other_debtors_or_guarantors, present_residence_since, property, age_in_years, "
            "other_installment_plans, housing, number_of_existing_credits_at_this_bank, job, "
            'number_of_people_being_liable_to_provide_maintenance_for, telephone, foreign_worker, "default" '
            "FROM german_credit",
            r"column 'duration_in_month' has PostgreSQL type oid 25 \(text\); the feature spec declares it "
            r"numeric: expected one of \['bigint', 'double precision', 'integer', 'numeric', 'real', "
            r"'smallint'\]",
        ),
        ("SELECT id, purpose FROM german_credit", r"column\(s\) \['status_of_existing_checking_account'"),
    ],
)
def test_bad_queries_fail_clearly_and_publish_nothing(postgres, german_spec, tmp_path, query, message):
    with pytest.raises(ingest.IngestError, match=message):
        ingest.ingest_postgres(query, german_spec, str(tmp_path / "s"), env=postgres.env())
    assert not (tmp_path / "s").exists()


def test_a_connection_lost_mid_read_publishes_nothing(postgres, german_spec, tmp_path):
    admin = postgres.connect()

    def kill_reader(chunks_read):  # the server drops our session after the first chunk
        if chunks_read == 1:
            admin.run(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'credit-risk-ingest'"
            )

    with pytest.raises(ingest.IngestError, match=r"lost.*after 100 rows"):
        ingest.ingest_postgres(
            GERMAN_QUERY, german_spec, str(tmp_path / "s"), params={"min_id": 0}, chunk_rows=100,
            env=postgres.env(), on_chunk=kill_reader,
        )  # fmt: skip
    assert not (tmp_path / "s").exists()
    assert not list(tmp_path.glob(".s.partial*"))


def test_credentials_come_from_the_environment(postgres, german_spec, tmp_path):
    env = postgres.env()
    with pytest.raises(ingest.IngestError, match=r"\['PGHOST'\] are not set"):
        ingest.ingest_postgres(GERMAN_QUERY, german_spec, str(tmp_path / "s"), env={**env, "PGHOST": ""})
    with pytest.raises(ingest.IngestError, match="password authentication failed") as failure:
        ingest.ingest_postgres(
            GERMAN_QUERY,
            german_spec,
            str(tmp_path / "s"),
            params={"min_id": 0},
            env={**env, "PGPASSWORD": "wrong"},
        )
    assert "wrong" not in str(failure.value)


def test_file_ingest_names_the_bad_cell_and_publishes_nothing(german_spec, tmp_path):
    from tests.helpers import edited_copy, set_cell

    bad = edited_copy(GERMAN_CSV, tmp_path / "bad.csv", set_cell(41, "credit_amount", "12k"))
    with pytest.raises(
        DataError,
        match=r"column 'credit_amount' row 42 \(file line 43\) value '12k' is not a number",
    ):
        ingest.ingest_files(str(bad), german_spec, str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()


def test_ingest_to_gcs_publishes_atomically(postgres, credit_spec, gcs):
    _, bucket = gcs
    target = f"gs://{bucket}/snapshots/credit_data/run-1"
    snap = ingest.ingest_postgres(
        "SELECT * FROM credit_data ORDER BY id", credit_spec, target, chunk_rows=1000, env=postgres.env()
    )
    assert snap.rows == len(pd.read_csv(CREDIT_CSV))
    assert storage.is_published(target)
    files = storage.list_files(target)
    assert len(files) == len(snap.files) and all(f.endswith(".parquet") for f in files)
    assert (
        json.loads(storage.read_text(f"{target}/{ingest.SNAPSHOT_FILE}"))["content_sha256"]
        == snap.content_sha256
    )
