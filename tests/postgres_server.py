"""A real PostgreSQL server (initdb + pg_ctl from the machine) on 127.0.0.1 for the tests.

PostgreSQL refuses to run as root, so under root the cluster belongs to (and runs as) the
``postgres`` system user, or ``nobody`` when there is none. Password authentication (scram) is
on, so the tests exercise credentials the way production does. The server is stopped (fast
shutdown) and its directory removed when the block ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

SUPERUSER = "postgres"


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    def env(self) -> dict[str, str]:
        """libpq-style variables, as a Kubernetes secret would set them."""
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user,
                "PGPASSWORD": self.password, "PGDATABASE": self.database}  # fmt: skip

    def connect(self):  # pg8000.native.Connection
        import pg8000.native

        return pg8000.native.Connection(
            self.user, host=self.host, port=self.port, password=self.password, database=self.database
        )


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise RuntimeError(f"PostgreSQL's {name} is not on this machine (apt-get install postgresql)")


def _run_as() -> tuple[list[str], int | None, int | None]:
    if os.geteuid() != 0:
        return [], None, None
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        return (
            ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"],
            entry.pw_uid,
            entry.pw_gid,
        )
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    prefix, uid, gid = _run_as()
    root = Path(tempfile.mkdtemp(prefix="credit-risk-pg-"))
    data, password = root / "data", "s3cret-for-tests"
    (root / "pw").write_text(password)
    if uid is not None:
        for path in (root, root / "pw"):
            os.chown(path, uid, gid or 0)
    port = free_port()
    pg_ctl = [*prefix, _binary("pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    try:
        subprocess.run([*prefix, _binary("initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=scram-sha-256",
                        f"--pwfile={root / 'pw'}", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True)  # fmt: skip
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
        started = subprocess.run(
            [*pg_ctl, "-o", options, "-w", "-t", "60", "start"], capture_output=True, text=True, check=False
        )
        if started.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log}")
        yield Postgres("127.0.0.1", port, SUPERUSER, password, "postgres")
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def load_csv(pg: Postgres, csv_path: str | Path, table: str) -> int:
    """Create ``table`` (serial ``id`` + the CSV's columns: numbers double precision, the rest
    text) and COPY the CSV into it; returns the row count."""
    import io

    import pandas as pd

    frame = pd.read_csv(csv_path)
    columns = ", ".join(
        f'"{n}" {"double precision" if frame[n].dtype.kind in "if" else "text"}' for n in frame.columns
    )
    quoted = ", ".join(f'"{n}"' for n in frame.columns)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    conn = pg.connect()
    try:
        conn.run(f"CREATE TABLE {table} (id serial PRIMARY KEY, {columns})")
        conn.run(f"COPY {table} ({quoted}) FROM STDIN WITH (FORMAT csv)", stream=buffer)
        return int(conn.run(f"SELECT count(*) FROM {table}")[0][0])
    finally:
        conn.close()
