"""One plain function per pipeline step: paths and parameters in, files and a result out.

The KFP components in ``components/`` only unpack artifacts and call these, so every step runs
(and is tested) without KFP. Each function logs its inputs' URIs, timings and where it wrote.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from credit_risk import storage
from credit_risk.dataset import data, data_stats, ingest
from credit_risk.dataset.validation import ValidationConfig, ValidationResult, validate
from credit_risk.errors import DataValidationError, DeployError, ModelRejectedError
from credit_risk.evidence import gate, vintage
from credit_risk.evidence.evaluation import EvaluationResult, evaluate, write_decision
from credit_risk.evidence.report import html_report, model_card
from credit_risk.modeling import training_data
from credit_risk.modeling.training import TrainingConfig, TrainingResult, train_and_export
from credit_risk.release import batch_scoring, monitoring, monitoring_report, rollout
from credit_risk.release.deploy import REFUSED, DeployConfig, DeployRecord, deploy, status_markdown
from credit_risk.spec import feature_spec, values

log = logging.getLogger(__name__)


def ingest_step(
    data_uri: str,
    spec_uri: str,
    target: str,
    sql_query: str = "",
    sql_params: dict | None = None,
    chunk_rows: int = ingest.CHUNK_ROWS,
) -> ingest.Snapshot:
    """The training snapshot at ``target``: ``sql_query`` on PostgreSQL (credentials from the
    environment) when given, else the file(s) at ``data_uri``."""
    spec = feature_spec.load(spec_uri)
    if sql_query.strip():
        # KFP carries a dict parameter as JSON, where 1 arrives as 1.0: bind whole numbers as
        # integers, or PostgreSQL refuses "1.0" for an integer column
        params = {
            k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in (sql_params or {}).items()
        }
        log.info("ingest: PostgreSQL query (%d parameter(s)) -> %s", len(params), target)
        return ingest.ingest_postgres(sql_query, spec, target, params=params, chunk_rows=chunk_rows)
    log.info("ingest: %s -> %s", data_uri, target)
    return ingest.ingest_files(data_uri, spec, target, chunk_rows=chunk_rows)


def validate_step(
    data_uri: str,
    spec_uri: str,
    out_dir: str,
    snapshot_path: str,
    config: ValidationConfig | None = None,
) -> ValidationResult:
    """Validate ``data_uri``; on success write its spec columns, typed by the spec, to
    ``snapshot_path`` as one Parquet file (what later steps read: split, training and evaluation
    never parse text again), streamed in chunks and renamed into place.

    Raises DataValidationError (listing every anomaly) and writes no snapshot when a blocking
    anomaly is found.
    """
    spec = feature_spec.load(spec_uri)
    result = validate(data_uri, spec, out_dir, config)
    if not result.passed:
        log.error("%s", result.summary())
        raise DataValidationError(result.summary())
    log.info("%s", result.summary())
    with data_stats.TypedTableWriter(snapshot_path, spec) as snapshot:
        for uri in storage.list_files(data_uri):
            row, line_offset = 1, None if data_stats.is_parquet(uri) else 1
            for part in data_stats.text_frames(uri, training_data.CHUNK_ROWS, spec.columns):
                snapshot.write(values.typed(part, spec, uri, row, line_offset))
                row += len(part)
        snapshot.commit()
    log.info("validated snapshot (%d rows, typed Parquet) -> %s", snapshot.rows, snapshot_path)
    return result


def split_step(
    dataset_path: str,
    spec_uri: str,
    eval_fraction: float,
    seed: int,
    train_path: str,
    eval_path: str,
    stream: bool = False,
) -> tuple[int, int]:
    """Held-out split of the validated snapshot: loaded whole (exactly stratified), or streamed in
    bounded chunks (each row by a seeded hash of its position; class shares match in expectation).
    With the spec's ``origination_date`` the split is **out of time** either way: the latest
    ``eval_fraction`` of the rows by date are held out (a first pass counts rows per day when
    streaming), so evaluation judges the model on loans originated after every loan it learned
    from."""
    spec = feature_spec.load(spec_uri)
    date = spec.date_column
    if stream:
        source = training_data.FileSource(dataset_path)
        cutoff = None
        if date:
            data.check_eval_fraction(eval_fraction)
            counts = vintage.DateCounts(date)
            for _, chunk in source.chunks(spec):
                counts.add(chunk[date])
            cutoff = counts.cutoff(eval_fraction)
        n_train, n_eval = training_data.split_stream(
            source, spec, eval_fraction, seed, train_path, eval_path, cutoff=cutoff
        )
    else:
        frame = data.load_dataset(dataset_path, spec)
        if date:
            data.check_eval_fraction(eval_fraction)
            held, cutoff = vintage.out_of_time_split(frame[date], eval_fraction)
            train, held_out = frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)
        else:
            train, held_out = data.split_train_eval(frame, spec, eval_fraction, seed)
        for frame_, path in ((train, train_path), (held_out, eval_path)):
            with data_stats.TypedTableWriter(path, spec) as table:
                table.write(frame_)
                table.commit()
        n_train, n_eval = len(train), len(held_out)
    if date:
        log.info("split out of time on %r: held out the rows dated %s or later", date, cutoff)
    log.info(
        "split %d rows -> train %d (%s), eval %d (%s)",
        n_train + n_eval,
        n_train,
        train_path,
        n_eval,
        eval_path,
    )
    return n_train, n_eval


def train_step(
    train_path: str, spec_uri: str, config: TrainingConfig, model_dir: str, stream: bool = False
) -> TrainingResult:
    """Train on the snapshot: loaded whole (stratified split), or streamed in bounded chunks."""
    spec = feature_spec.load(spec_uri)
    if stream:
        return train_and_export(training_data.FileSource(train_path), spec, config, model_dir)
    frame = data.load_dataset(train_path, spec)
    return train_and_export(frame, spec, config, model_dir)


def evaluate_step(
    model_dir: str,
    eval_path: str,
    spec_uri: str,
    config: gate.GateConfig,
    approval_path: str,
    model_card_path: str,
    html_path: str,
    champion_dir: str | None = None,
    override_approver: str = "",
    override_rationale: str = "",
    allow_override: bool = False,
) -> EvaluationResult:
    """Evaluate, decide (with any human override recorded), and write the approval record, the
    Markdown model card and the HTML report. ``champion_dir``: a model directory; a published
    version on gs:// or s3:// (``<serving_root>/<service>/m-<fingerprint>``, as deploy publishes it), which
    is downloaded and checked against its manifest first; or ``isvc://<namespace>/<name>``: the
    model that InferenceService serves to all traffic (none if it does not exist yet; the API
    server from in-cluster config, ~/.kube/config, or ``$CREDIT_RISK_KUBE_HOST``)."""
    spec = feature_spec.load(spec_uri)
    frame = data.load_dataset(eval_path, spec)
    with tempfile.TemporaryDirectory(prefix="credit-risk-champion-") as scratch:
        champion_uri = champion_dir or ""
        if champion_uri.startswith(rollout.CLUSTER_SCHEME):
            serving = rollout.resolve_cluster_uri(champion_uri)  # the API server: kube.api_client
            log.info("champion: %s serves %s", champion_uri, serving or "nothing yet (a first model)")
            champion_uri = serving or ""
        champion = champion_uri or None
        if champion and storage.is_remote(champion):
            champion = str(storage.download_published(champion, scratch))  # never a half-published one
        result = evaluate(model_dir, frame, spec, config, champion, champion_uri=champion_uri)
    gate.apply_override(result.decision, override_approver, override_rationale, allow_override)
    write_decision(result.decision, approval_path)
    Path(model_card_path).write_text(model_card(result, spec))
    Path(html_path).write_text(html_report(result, spec))
    log.info("decision %s -> %s (report %s)", result.decision.decision, approval_path, html_path)
    return result


def deploy_step(
    approval_path: str,
    model_dir: str,
    config: DeployConfig,
    manifest_path: str,
    record_path: str,
    fail_on_rejection: bool = False,
    model_uri: str = "",
    status_path: str | None = None,
) -> DeployRecord:
    """Deploy an approved model, record why not otherwise. A failed deployment (smoke test, upload,
    rollout) fails the step after recording why; with ``fail_on_rejection`` (CI submits) a
    rejected model also fails it, so the run and the CI job fail."""
    start = time.perf_counter()
    record = deploy(approval_path, model_dir, config, manifest_path, model_uri=model_uri)
    Path(record_path).parent.mkdir(parents=True, exist_ok=True)
    Path(record_path).write_text(record.to_json())
    if status_path:
        Path(status_path).write_text(status_markdown(record))
    log.info("%s (%.2fs) -> %s", record.reason, time.perf_counter() - start, record_path)
    if record.failed:
        raise DeployError(record.reason)
    if fail_on_rejection and record.state == REFUSED:
        raise ModelRejectedError(record.reason)
    return record


__all__ = ["deploy_step", "evaluate_step", "split_step", "train_step", "validate_step"]


def batch_score_step(
    model_dir: str, data_uri: str, output_uri: str, config: batch_scoring.ScoringConfig
) -> batch_scoring.ScoringResult:
    """Score ``data_uri`` with the model; the scores are published whole at ``output_uri``."""
    return batch_scoring.score(model_dir, data_uri, output_uri, config)


def monitor_step(
    model_dir: str,
    baseline_uri: str,
    current_uri: str,
    scores_uri: str,
    out_dir: str,
    config: monitoring.MonitoringConfig,
) -> monitoring.MonitoringResult:
    """PSI + TFDV drift of the current data and its scores against the baseline; writes the
    result JSON, HTML report and Markdown verdict to ``out_dir``."""
    result = monitoring.monitor(model_dir, baseline_uri, current_uri, scores_uri, config)
    monitoring_report.write_outputs(result, out_dir)
    return result
