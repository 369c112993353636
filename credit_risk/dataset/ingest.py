"""Take a training snapshot: from PostgreSQL (a parameterised query) or from CSV/Parquet files.

A snapshot is a directory of Parquet parts (``part-00000.parquet`` ...) holding exactly the
feature spec's columns, typed by it (numerics float64, categoricals string, label int64, an
origination date as ``YYYY-MM-DD`` text), plus
``snapshot.json`` (rows, content hash, source, columns) - the only data validation and training
read. Each part goes to the target as soon as it is written (``storage.DirectoryWriter``:
uploaded to gs:// or s3://, or moved into a staging directory beside a local target) and the publish
marker is written last: for an object-store target local disk holds one part at a time, and a failed
ingest publishes nothing a later step could pick up.

PostgreSQL: a read-only transaction, a server-side cursor (``DECLARE ... NO SCROLL CURSOR``)
fetched ``chunk_rows`` at a time, so memory holds one chunk whatever the table size. Query
parameters are bound by the server (``:name`` placeholders), never pasted into the SQL. The
connection comes from libpq's variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
PGSSLMODE) - on Kubeflow set from a Kubernetes secret - never from pipeline parameters. pg8000
(pure Python, already in the lock through apache-beam) is the driver.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from credit_risk import lineage, storage
from credit_risk.errors import DataError
from credit_risk.spec import values
from credit_risk.spec.feature_spec import FeatureSpec

log = logging.getLogger(__name__)

CHUNK_ROWS = 100_000
SNAPSHOT_FILE = "snapshot.json"
CURSOR = "credit_risk_snapshot"

# PostgreSQL type OIDs (pg_type) a spec column accepts
PG_NUMERIC = {
    21: "smallint",
    23: "integer",
    20: "bigint",
    700: "real",
    701: "double precision",
    1700: "numeric",
}
PG_TEXT = {25: "text", 1043: "character varying", 1042: "character", 19: "name"}
PG_LABEL = {**PG_NUMERIC, 16: "boolean"}
PG_DATE = {1082: "date", 1114: "timestamp", 1184: "timestamp with time zone", **PG_TEXT}


class IngestError(DataError):
    """The source cannot give a snapshot matching the feature spec (names column, row, value)."""


@dataclass(frozen=True)
class Snapshot:
    uri: str
    rows: int
    files: list[str]
    content_sha256: str  # of the typed rows in order: equal data gives an equal hash, any source
    columns: dict[str, str]  # column -> parquet type
    source: dict[str, Any]  # what was read (query text + parameter names, or file URIs)
    dropped_columns: list[str] = field(default_factory=list)  # in the source, not in the spec
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- typing rows by the feature spec ----------------------------------------------------------------
def check_columns(source_columns: Sequence[str], spec: FeatureSpec, source: str) -> list[str]:
    """The source's columns that are not in the spec (dropped); IngestError for missing ones."""
    missing = [c for c in spec.columns if c not in source_columns]
    if missing:
        raise IngestError(
            f"{source}: column(s) {missing} required by the feature spec are missing; the source has "
            f"{list(source_columns)}"
        )
    return [c for c in source_columns if c not in spec.columns]


# --- writing ------------------------------------------------------------------------------------------
class _SnapshotWriter:
    """Each Parquet part is written to local scratch and handed to ``out`` at once (uploaded or
    moved into staging), so local disk holds one part; ``publish`` adds ``snapshot.json`` and
    commits (the marker last)."""

    def __init__(self, spec: FeatureSpec, scratch: Path, out: storage.DirectoryWriter) -> None:
        self.spec, self.scratch, self.out = spec, scratch, out
        self.rows, self.digest = 0, hashlib.sha256()
        self.files: list[str] = []
        self.started = time.perf_counter()

    def write(self, typed: pd.DataFrame) -> None:
        if typed.empty:
            return
        name = f"part-{len(self.files):05d}.parquet"
        typed.to_parquet(self.scratch / name, index=False, schema=values.arrow_schema(self.spec))
        self.out.add(self.scratch / name, name)
        self.digest.update(lineage.content_hash(typed))  # row hashes: chunking does not matter
        self.files.append(name)
        self.rows += len(typed)
        elapsed = time.perf_counter() - self.started
        log.info(
            "ingest: %d rows (%s) in %.1fs, %.0f rows/s",
            self.rows,
            name,
            elapsed,
            self.rows / max(elapsed, 1e-9),
        )

    def publish(self, target: str, source: dict[str, Any], dropped: list[str]) -> Snapshot:
        if self.rows == 0:
            raise IngestError(
                f"{source.get('kind')} source returned no rows: nothing to train on; no snapshot written"
            )
        columns = {f.name: str(f.type) for f in values.arrow_schema(self.spec)}
        snapshot = Snapshot(
            uri=target, rows=self.rows, files=self.files, content_sha256=self.digest.hexdigest(),
            columns=columns,
            source=source, dropped_columns=dropped, seconds=round(time.perf_counter() - self.started, 3),
        )  # fmt: skip
        (self.scratch / SNAPSHOT_FILE).write_text(json.dumps(snapshot.to_dict(), indent=2))
        self.out.add(self.scratch / SNAPSHOT_FILE, SNAPSHOT_FILE)
        self.out.commit()
        log.info(
            "ingest: published %d rows in %d part(s) -> %s (sha256 %s)",
            self.rows,
            len(self.files),
            target,
            snapshot.content_sha256[:16],
        )
        return snapshot


Chunks = Callable[[], tuple[Iterator[pd.DataFrame], dict[str, Any], list[str]]]


def _run(spec: FeatureSpec, target: str, chunks: Chunks, line_offset: int | None = None) -> Snapshot:
    with tempfile.TemporaryDirectory(prefix="credit-risk-ingest-") as scratch:
        frames, source, dropped = chunks()
        where = source.get("uri") or "query result"
        with storage.DirectoryWriter(target) as out:  # an exception leaves no published snapshot
            writer = _SnapshotWriter(spec, Path(scratch), out)
            for frame in frames:
                # the one typing rule of training: numerics float64, categoricals str, label 0/1
                writer.write(values.typed(frame, spec, where, writer.rows + 1, line_offset))
            return writer.publish(target, source, dropped)


# --- sources --------------------------------------------------------------------------------------------
def ingest_files(uri: str, spec: FeatureSpec, target: str, chunk_rows: int = CHUNK_ROWS) -> Snapshot:
    """Snapshot of CSV/Parquet file(s) at ``uri`` (file, directory, glob, gs://), read in chunks."""
    from credit_risk.dataset import data_stats

    files = storage.list_files(uri)  # listed once: the chunks and the line numbering share it

    def chunks() -> tuple[Iterator[pd.DataFrame], dict[str, Any], list[str]]:
        first = files[0]
        columns = data_stats.columns_of(first)
        dropped = check_columns(columns, spec, first)

        def frames() -> Iterator[pd.DataFrame]:
            for file in files:
                for batch in data_stats.raw_batches(file, columns=spec.columns, batch_rows=chunk_rows):
                    yield batch.to_pandas()

        return frames(), {"kind": "files", "uri": uri, "files": files}, dropped

    # CSV rows are file lines after the header (for one file; several files number rows overall)
    csv = not data_stats.is_parquet(files[0])
    return _run(spec, target, chunks, line_offset=1 if csv else None)


def connection_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """pg8000 connection arguments from libpq's environment variables (credentials never logged)."""
    missing = [k for k in ("PGHOST", "PGUSER", "PGDATABASE") if not env.get(k)]
    if missing:
        raise IngestError(
            f"PostgreSQL connection variables {missing} are not set; on Kubeflow mount the database "
            "secret as env vars (pipeline compiled with --database-secret), locally export them"
        )
    settings: dict[str, Any] = {
        "host": env["PGHOST"], "port": int(env.get("PGPORT") or 5432), "user": env["PGUSER"],
        "password": env.get("PGPASSWORD"), "database": env["PGDATABASE"], "timeout": 60,
        "application_name": "credit-risk-ingest",
    }  # fmt: skip
    if env.get("PGSSLMODE", "").lower() in ("require", "verify-ca", "verify-full"):
        import ssl

        context = ssl.create_default_context()
        if env["PGSSLMODE"].lower() == "require":
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        settings["ssl_context"] = context
    return settings


def _pg_error(error: Exception, query: str) -> IngestError:
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.DatabaseError) and error.args and isinstance(error.args[0], dict):
        fields = error.args[0]
        where = f" at character {fields['P']}" if "P" in fields else ""
        return IngestError(
            f"PostgreSQL rejected the query (SQLSTATE {fields.get('C')}): {fields.get('M')}{where}; "
            f"query: {query.strip()[:500]}"
        )
    return IngestError(f"PostgreSQL connection failed or was lost: {error}; no snapshot published")


def _type_name(oid: int) -> str:
    name = {**PG_TEXT, **PG_LABEL, **PG_DATE}.get(oid)
    return f" ({name})" if name else ""


def _check_pg_types(columns: list[dict[str, Any]], spec: FeatureSpec) -> None:
    for column in columns:
        name, oid = column["name"], column["type_oid"]
        if name not in spec.columns:
            continue
        kind = values.kind_of(spec, name)
        allowed = {"numeric": PG_NUMERIC, "categorical": PG_TEXT, "date": PG_DATE, "label": PG_LABEL}[kind]
        if oid not in allowed:
            raise IngestError(
                f"column {name!r} has PostgreSQL type oid {oid}{_type_name(oid)}; "
                f"the feature spec declares it {kind}: expected one of {sorted(set(allowed.values()))} "
                "(cast it in the query)"
            )


def ingest_postgres(
    query: str,
    spec: FeatureSpec,
    target: str,
    params: Mapping[str, Any] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    env: Mapping[str, str] | None = None,
    statement_timeout_ms: int = 0,
    on_chunk: Callable[[int], None] | None = None,
) -> Snapshot:
    """Snapshot of ``query``'s result (``:name`` placeholders bound from ``params``)."""
    import pg8000.native

    params = dict(params or {})
    settings = connection_settings(os.environ if env is None else env)
    if not query.strip():
        raise IngestError("sql_query is empty")

    def chunks() -> tuple[Iterator[pd.DataFrame], dict[str, Any], list[str]]:
        try:
            conn = pg8000.native.Connection(**settings)
        except Exception as e:
            raise _pg_error(e, query) from e
        try:
            conn.run("START TRANSACTION READ ONLY")  # the snapshot can never write
            if statement_timeout_ms:
                conn.run(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            conn.run(f"DECLARE {CURSOR} NO SCROLL CURSOR FOR {query}", **params)
            first = conn.run(f"FETCH FORWARD {int(chunk_rows)} FROM {CURSOR}")
        except Exception as e:
            conn.close()
            raise _pg_error(e, query) from e
        names = [c["name"] for c in conn.columns]
        dropped = check_columns(names, spec, "query result")
        _check_pg_types(conn.columns, spec)
        log.info("ingest: query returns columns %s (dropping %s)", names, dropped)

        def frames() -> Iterator[pd.DataFrame]:
            rows, batch, fetched = 0, first, 0
            try:
                while batch:
                    rows += len(batch)
                    fetched += 1
                    yield pd.DataFrame(batch, columns=names)
                    if on_chunk:
                        on_chunk(fetched)
                    if len(batch) < chunk_rows:
                        break
                    try:
                        batch = conn.run(f"FETCH FORWARD {int(chunk_rows)} FROM {CURSOR}")
                    except Exception as e:
                        raise IngestError(f"{_pg_error(e, query)} (after {rows} rows)") from e
            finally:
                try:
                    conn.run("ROLLBACK")  # read-only: nothing to commit
                    conn.close()
                except Exception as e:  # the connection may already be gone
                    log.debug("ingest: closing the PostgreSQL connection: %s", e)

        source = {
            "kind": "postgres",
            "query": query,
            "parameters": sorted(params),
            "host": settings["host"],
            "database": settings["database"],
        }
        return frames(), source, dropped

    return _run(spec, target, chunks)
