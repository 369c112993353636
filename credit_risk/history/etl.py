"""The ETL step: raw loan history to a typed feature snapshot plus its feature spec.

Output (published whole or not at all, ``storage.DirectoryWriter``; local, gs:// or s3://)::

    <out>/data/part-00000.parquet ...   exactly the spec's columns: features (double), default (long),
                                        application_date (date; the spec's origination_date)
    <out>/feature_spec.yaml             data_file: data - what ingest, validate and train read unchanged
    <out>/etl.json                      engine, lag, rows, seconds, raw manifest
    <out>/_PUBLISHED.json               written last

Engines: ``spark`` (the PySpark job on ``local[N]`` in this process - the pod - with its shuffle
spilling to local disk) or ``pandas`` (the vectorised reference, all in memory, for small data).
Data too large for one pod goes to a Spark cluster instead (``run_on_cluster`` with
``cluster_engine``: the Kubeflow Spark Operator, ``cluster.SparkOperator``, or EMR Serverless,
``emr.EmrServerless``), which runs the very same ``spark_job`` module.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from credit_risk import storage
from credit_risk.errors import DataError
from credit_risk.history import schema

log = logging.getLogger(__name__)

ENGINES = ("spark", "pandas")  # in this process
CLUSTER_ENGINES = ("spark-operator", "emr-serverless")  # the same job sent to a Spark cluster
DATA_DIR, SPEC_FILE, SUMMARY_FILE = "data", "feature_spec.yaml", "etl.json"
PART_ROWS = 250_000  # rows per output part (pandas engine)


@dataclass(frozen=True)
class EtlResult:
    out: str
    engine: str
    lag_months: int
    rows: int
    default_rate: float
    features: int
    seconds: float
    spark_master: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local_raw(raw: str, scratch: Path) -> str:
    """Spark in a pod reads local paths; an object-store input is streamed to local disk first
    (never into memory). A cluster run reads s3a:// / gs:// itself (``submit``)."""
    if not storage.is_remote(raw):
        if not Path(raw).is_dir():
            raise DataError(
                f"raw history {raw}: not a directory (expected {', '.join(schema.TABLES)}/ under it)"
            )
        return raw
    local = scratch / "raw"
    for table in schema.TABLES:
        (local / table).mkdir(parents=True)
        for i, uri in enumerate(storage.list_files(f"{raw.rstrip('/')}/{table}", suffixes=(".parquet",))):
            with storage.open_read(uri) as src, open(local / table / f"part-{i:05d}.parquet", "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return str(local)


PROGRESS_SECONDS = 10.0  # between the Spark engine's progress lines


class SparkProgress:
    """Logs, every ``every`` seconds while Spark works, the running stages and their finished /
    total tasks (Spark's console bar is off: it would flood a pod's log). A context manager."""

    def __init__(self, spark: Any, every: float | None = None) -> None:
        self._tracker = spark.sparkContext.statusTracker()
        self._every = PROGRESS_SECONDS if every is None else every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._report, name="spark-progress", daemon=True)
        self._start = time.perf_counter()

    def line(self) -> str:
        """What the stages are doing now, e.g. ``stage 6 2/4 tasks; stage 7 0/8 tasks``."""
        stages = []
        for stage_id in sorted(self._tracker.getActiveStageIds()):
            info = self._tracker.getStageInfo(stage_id)
            if info is not None:
                stages.append(f"stage {stage_id} {info.numCompletedTasks}/{info.numTasks} tasks")
        return "; ".join(stages) or "between stages"

    def _report(self) -> None:
        while not self._stop.wait(self._every):
            try:
                log.info("etl: spark %.0f s: %s", time.perf_counter() - self._start, self.line())
            except Exception as e:  # a progress line must never fail the job
                log.debug("etl: no progress line (%s)", e)

    def __enter__(self) -> SparkProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _spark_parts(raw: str, scratch: Path, lag_months: int, master: str, driver_memory: str) -> list[Path]:
    from pyspark.sql import SparkSession

    from credit_risk.history import spark_job

    active = SparkSession.getActiveSession()  # a notebook's session is used and left running
    spark = active or spark_job.session(
        master, driver_memory, **{"spark.local.dir": str(scratch / "spark-local")}
    )
    try:
        with SparkProgress(spark):
            spark_job.run(spark, _local_raw(raw, scratch), str(scratch / "rows"), lag_months, keys=False)
    finally:
        if active is None:
            spark.stop()
    return sorted((scratch / "rows").glob("part-*.parquet"))


def _pandas_parts(raw: str, scratch: Path, lag_months: int) -> list[Path]:
    from credit_risk.history import reference

    frame = reference.run(raw, lag_months).drop(columns=[schema.APPLICATION_ID])
    (scratch / "rows").mkdir()
    parts = []
    for i, start in enumerate(range(0, max(len(frame), 1), PART_ROWS)):
        path = scratch / "rows" / f"part-{i:05d}.parquet"
        frame.iloc[start : start + PART_ROWS].to_parquet(path, index=False)
        parts.append(path)
    return parts


def run(
    raw: str,
    out: str,
    lag_months: int = 0,
    engine: str = "spark",
    spark_master: str = "local[2]",
    driver_memory: str = "2g",
    name: str = "loan_history",
) -> EtlResult:
    """Compute the features of every application under ``raw`` and publish them at ``out``."""
    if engine not in ENGINES:
        raise DataError(f"engine: expected one of {ENGINES}, got {engine!r}")
    schema.check_lag(lag_months)
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="credit-risk-etl-") as tmp,
        storage.DirectoryWriter(out) as writer,
    ):
        scratch = Path(tmp)
        log.info("etl: %s engine on %s (lag %d months)", engine, raw, lag_months)
        if engine == "spark":
            parts = _spark_parts(raw, scratch, lag_months, spark_master, driver_memory)
        else:
            parts = _pandas_parts(raw, scratch, lag_months)
        rows, rate = _summarise_uris([str(p) for p in parts])
        if rows == 0:
            raise DataError(f"raw history {raw}: no applications, nothing to publish")
        for i, part in enumerate(parts):
            writer.add(part, f"{DATA_DIR}/part-{i:05d}.parquet")
        spec_path = scratch / SPEC_FILE
        spec_path.write_text(_spec_text(name))
        writer.add(spec_path, SPEC_FILE)
        result = EtlResult(
            out=out, engine=engine, lag_months=lag_months, rows=rows, default_rate=round(rate, 6),
            features=len(schema.feature_columns()), seconds=round(time.perf_counter() - start, 3),
            spark_master=spark_master if engine == "spark" else None,
        )  # fmt: skip
        summary = scratch / SUMMARY_FILE
        raw_manifest = _raw_manifest(raw)
        summary.write_text(
            json.dumps({**result.to_dict(), "raw": raw, "raw_manifest": raw_manifest}, indent=2) + "\n"
        )
        writer.add(summary, SUMMARY_FILE)
        writer.commit()
    log.info("etl: %d applications, default rate %.3f, %.1f s", rows, rate, result.seconds)
    return result


@dataclass(frozen=True)
class ClusterSettings:
    """Where a cluster engine runs the job (the CLI's and the pipeline step's settings)."""

    namespace: str = ""  # spark-operator: where the SparkApplication goes; "" = this pod's namespace
    spark_image: str = ""  # spark-operator: any Spark 4 image with Python 3
    emr_application_id: str = ""  # emr-serverless: the Spark application to run on
    emr_role_arn: str = ""  # emr-serverless: the job run's execution role
    executor_instances: int = 2
    timeout_seconds: float = 3600  # then the job is cancelled and the step fails
    poll_seconds: float = 10  # between status reads


def cluster_engine(kind: str, settings: ClusterSettings) -> Any:
    """The engine ``run_on_cluster`` sends the job to, or a DataError naming what is missing."""
    from credit_risk import kube
    from credit_risk.history import cluster, emr

    if kind == "spark-operator":
        namespace = settings.namespace or kube.pod_namespace() or ""
        if not (namespace and settings.spark_image):
            raise DataError(
                "engine spark-operator needs a namespace (none given and not in a pod) and a Spark image "
                f"(got namespace={settings.namespace!r}, spark_image={settings.spark_image!r})"
            )
        return cluster.SparkOperator(namespace, settings.spark_image, settings.executor_instances)
    if kind == "emr-serverless":
        if not (settings.emr_application_id and settings.emr_role_arn):
            raise DataError(
                "engine emr-serverless needs an application id and an execution role ARN (got "
                f"application_id={settings.emr_application_id!r}, role_arn={settings.emr_role_arn!r})"
            )
        return emr.EmrServerless(
            settings.emr_application_id, settings.emr_role_arn, settings.executor_instances
        )
    raise DataError(f"cluster engine: expected one of {CLUSTER_ENGINES}, got {kind!r}")


def run_on_cluster(
    raw: str,
    out: str,
    engine: Any,
    lag_months: int = 0,
    timeout_seconds: float = 3600,
    poll_seconds: float = 10,
    name: str = "loan_history",
) -> EtlResult:
    """The same job on a Spark cluster: ``engine`` is a ``cluster.SparkOperator`` or an
    ``emr.EmrServerless``. The job writes the rows to ``<out>/data`` itself (Spark's committer
    writes ``_SUCCESS`` last); ``etl.json`` and then ``feature_spec.yaml`` - what later steps read
    first - are written only after the engine reports success and ``_SUCCESS`` is there, so an
    unfinished output is never picked up."""
    from credit_risk.history import cluster

    schema.check_lag(lag_months)
    out = out.rstrip("/")
    if storage.exists(f"{out}/{SPEC_FILE}"):
        raise storage.PublishError(f"{out} is already published; versions are never overwritten")
    start = time.perf_counter()
    main, py_files = cluster.stage(f"{out}/_job")
    name_of_job = cluster.job_name(out)
    where = engine.run(name_of_job, main, py_files, raw, f"{out}/{DATA_DIR}", lag_months, timeout_seconds,
                       poll_seconds)  # fmt: skip
    if not storage.exists(f"{out}/{DATA_DIR}/_SUCCESS"):
        raise cluster.SparkJobError(
            f"{where} reported success but {out}/{DATA_DIR}/_SUCCESS is missing (the job wrote no complete "
            "output): nothing published"
        )
    rows, rate = _summarise_uris(storage.list_files(f"{out}/{DATA_DIR}", suffixes=(".parquet",)))
    result = EtlResult(
        out=out, engine=engine.kind, lag_months=lag_months, rows=rows, default_rate=round(rate, 6),
        features=len(schema.feature_columns()), seconds=round(time.perf_counter() - start, 3),
        spark_master=where,
    )  # fmt: skip
    summary = {**result.to_dict(), "raw": raw, "raw_manifest": _raw_manifest(raw)}
    storage.write_text(f"{out}/{SUMMARY_FILE}", json.dumps(summary, indent=2) + "\n")
    storage.write_text(f"{out}/{SPEC_FILE}", _spec_text(name))
    return result


def _summarise_uris(uris: list[str]) -> tuple[int, float]:
    from credit_risk.dataset import data_stats

    rows = defaults = 0
    for uri in uris:
        with storage.open_read(uri) as stream:
            label = data_stats.parquet_file(stream, uri).read(columns=[schema.LABEL]).column(0).to_numpy()
        rows += len(label)
        defaults += int(label.sum())
    return rows, (defaults / rows if rows else 0.0)


def _spec_text(name: str) -> str:
    return (
        "# Written by credit_risk.history.etl: the features of credit_risk/history/schema.py\n"
        + yaml.safe_dump(schema.feature_spec_dict(name, data_file=DATA_DIR), sort_keys=False)
    )


def _raw_manifest(raw: str) -> dict[str, Any] | None:
    from credit_risk.history.generate import MANIFEST

    try:
        with storage.open_read(f"{raw.rstrip('/')}/{MANIFEST}") as f:
            loaded: dict[str, Any] = json.load(f)
            return loaded
    except (FileNotFoundError, OSError):
        return None


# --- the pipeline's first step ------------------------------------------------------------------------
PASSTHROUGH_FILE = "source.json"


@dataclass(frozen=True)
class StepOutput:
    data_uri: str  # what ingest reads
    feature_spec_uri: str  # what every later step reads
    result: EtlResult | None  # None: passed through (applicant rows were given)


def check_source(raw_history_uri: str, data_uri: str, feature_spec_uri: str) -> str:
    """The training pipeline's one-source rule (the first step and ``credit-risk submit`` both apply
    it): applicant rows (``feature_spec_uri`` with ``data_uri`` or a SQL query) or raw history,
    never neither, never both. Returns the raw history URI ("" for applicant rows)."""
    raw = raw_history_uri.strip()
    if not raw and not feature_spec_uri.strip():  # data_uri may be empty: ingest then runs the sql_query
        raise DataError(
            "no training data: set feature_spec_uri with data_uri or sql_query (applicant rows), or "
            f"raw_history_uri (raw loan history; got data_uri={data_uri!r}, feature_spec_uri='')"
        )
    if raw and (data_uri.strip() or feature_spec_uri.strip()):
        raise DataError(
            f"raw_history_uri={raw!r} replaces data_uri and feature_spec_uri (the features and their spec "
            f"come from the history); leave them empty (got data_uri={data_uri!r}, "
            f"feature_spec_uri={feature_spec_uri!r})"
        )
    return raw


def history_step(
    raw_history_uri: str,
    data_uri: str,
    feature_spec_uri: str,
    out_path: str,
    artifact_uri: str,
    lag_months: int = 0,
    engine: str = "spark",
    spark_master: str = "local[2]",
    driver_memory: str = "2g",
    cluster: ClusterSettings | None = None,
) -> StepOutput:
    """With ``raw_history_uri``: compute the features into ``out_path`` (the output artifact's local
    path) and point later steps at them (``artifact_uri``); with a cluster ``engine`` the job runs
    there and writes straight to the artifact's URI (object storage the cluster can reach; the
    local path stays empty, so the launcher uploads nothing over it). Without: pass ``data_uri``
    and ``feature_spec_uri`` through unchanged (no Spark is started); never both sources."""
    raw = check_source(raw_history_uri, data_uri, feature_spec_uri)
    if not raw:
        Path(out_path).mkdir(parents=True, exist_ok=True)
        source = {"source": "applicant rows", "data_uri": data_uri, "feature_spec_uri": feature_spec_uri}
        (Path(out_path) / PASSTHROUGH_FILE).write_text(json.dumps(source, indent=2) + "\n")
        return StepOutput(data_uri, feature_spec_uri, None)
    base = storage.readable_artifact_uri(artifact_uri)
    if engine in CLUSTER_ENGINES:
        settings = cluster or ClusterSettings()
        Path(out_path).mkdir(parents=True, exist_ok=True)
        result = run_on_cluster(
            raw,
            base,
            cluster_engine(engine, settings),
            lag_months,
            settings.timeout_seconds,
            settings.poll_seconds,
        )
    else:
        result = run(raw, out_path, lag_months, engine, spark_master, driver_memory)
    return StepOutput(f"{base}/{DATA_DIR}", f"{base}/{SPEC_FILE}", result)
