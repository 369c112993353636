"""``credit-risk``: compile, run locally, submit to Kubeflow, and serve.

Exit codes: 0 success (approved, for run-local / submit --wait), 1 failure, 2 bad usage,
3 the model was rejected by the approval gate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from credit_risk import __version__
from credit_risk.app import image_build
from credit_risk.errors import CreditRiskError
from credit_risk.release import images
from credit_risk.spec.contract import DEFAULT_OPERATING_THRESHOLD

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SPEC_SUFFIX = ".spec.yaml"

log = logging.getLogger("credit_risk.app.cli")


# --- helpers -----------------------------------------------------------------------------------
def bundled_datasets() -> list[str]:
    return sorted(p.name[: -len(SPEC_SUFFIX)] for p in REPO_DATA_DIR.glob(f"*{SPEC_SUFFIX}"))


def resolve_dataset(args: argparse.Namespace) -> tuple[str, str]:
    """(data_uri, feature_spec_uri) from --dataset or --data/--spec."""
    from credit_risk.spec import feature_spec

    if args.spec:
        spec_uri = args.spec
    else:
        name = args.dataset or "german_credit"
        spec_path = REPO_DATA_DIR / f"{name}{SPEC_SUFFIX}"
        if not spec_path.exists():
            raise CreditRiskError(
                f"unknown dataset {name!r}; bundled: {bundled_datasets()} (or pass --data URI --spec URI)"
            )
        spec_uri = str(spec_path)
    data_uri = args.data or feature_spec.load(spec_uri).data_path()
    if not data_uri:
        raise CreditRiskError(f"{spec_uri} names no data_file: pass --data URI")
    return data_uri, spec_uri


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, booleans)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CreditRiskError(f"--param expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _pipeline_params(args: argparse.Namespace) -> dict[str, Any]:
    params = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
            "eval_fraction": args.eval_fraction,
            "service_name": args.service_name,
            "champion_model_uri": args.champion,
            "gate_config_uri": args.gate_config,
            "sql_query": args.sql_query,
            "raw_history_uri": getattr(args, "raw_history", None),
            "history_lag_months": getattr(args, "history_lag_months", None),
            "history_engine": getattr(args, "history_engine", None),
        }.items()
        if v is not None
    }
    overrides = {
        k: v
        for k, v in {"min_auc": args.min_auc, "min_ks": args.min_ks, "max_brier": args.max_brier}.items()
        if v is not None
    }
    if overrides:
        params["gate_overrides"] = overrides
    if args.sql_param:
        params["sql_params"] = parse_params(args.sql_param)
    params.update(parse_params(args.param))
    return params


# --- commands ----------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from credit_risk.pipelines.compile import COMPILED_FILE, MONITORING_COMPILED_FILE, compile_pipeline
    from credit_risk.pipelines.policy import S3Access

    committed = {"training": COMPILED_FILE, "monitoring": MONITORING_COMPILED_FILE}
    if args.output and not args.pipeline:
        raise CreditRiskError("--output needs --pipeline (training or monitoring)")
    s3 = S3Access(args.s3_secret, args.s3_endpoint, args.s3_region)
    for which in [args.pipeline] if args.pipeline else list(committed):
        out = compile_pipeline(
            args.output or committed[which],
            registry=args.registry,
            tag=args.tag,
            database_secret=args.database_secret if which == "training" else None,
            which=which,
            step_resources=args.step_resources,
            s3=s3 or None,
        )
        print(
            f"compiled {which} pipeline -> {out}  (images: {images.pipeline_image(args.registry, args.tag)}, "
            f"{images.serving_image(args.registry, args.tag)})"
        )
    if not (args.output or args.registry or args.tag or args.step_resources or s3):  # the committed files:
        print(f"base InferenceService -> {images.pin_base_manifest()}")  # the base manifest too
    return EXIT_OK


def cmd_run_local(args: argparse.Namespace) -> int:
    from credit_risk.app.local_run import format_summary, run_local

    if args.raw_history:  # the features and their spec come from the history (the first step)
        if args.data or args.spec or args.dataset:
            raise CreditRiskError("--raw-history replaces --dataset/--data/--spec: pass one source")
        data_uri, spec_uri = "", ""
    else:
        data_uri, spec_uri = resolve_dataset(args)
    params = _pipeline_params(args)
    log.info(
        "running pipeline locally: data=%s spec=%s root=%s params=%s",
        data_uri,
        spec_uri,
        args.pipeline_root,
        params,
    )
    log_path = None
    if not args.verbose:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        log_path = args.log_file or str(Path(args.pipeline_root) / f"run-local-{stamp}.log")
    summary = run_local(data_uri, spec_uri, args.pipeline_root, log_path, **params)
    print(format_summary(summary))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2))
        print(f"summary JSON -> {args.summary_json}")
    if not summary.succeeded:
        return EXIT_FAILED
    return EXIT_OK if summary.decision and summary.decision.approved else EXIT_REJECTED


def cmd_submit(args: argparse.Namespace) -> int:
    from credit_risk.app.submit import SubmitConfig, submit

    params = parse_params(args.param)
    if args.fail_on_rejection:
        params["fail_on_rejection"] = True
    config = SubmitConfig(
        host=args.host,
        namespace=args.namespace,
        experiment=args.experiment,
        pipeline_file=args.pipeline_file,
        run_name=args.run_name,
        params=params,
        wait=args.wait,
        timeout_s=args.timeout,
        upload=args.upload,
        pipeline_root=args.pipeline_root,
        service_account=args.service_account,
        no_cache=args.no_cache,
    )
    outcome = submit(config)
    print(json.dumps(outcome, indent=2))
    if args.wait and outcome.get("state") != "SUCCEEDED":
        return EXIT_FAILED
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from credit_risk.release.batch_scoring import ScoringConfig, score

    config = ScoringConfig(
        threshold=args.threshold, id_columns=tuple(args.id_column), chunk_rows=args.chunk_rows
    )
    result = score(args.model, args.data, args.output, config)
    print(json.dumps(result.to_dict(), indent=2))
    return EXIT_OK


def cmd_backtest(args: argparse.Namespace) -> int:
    from credit_risk.evidence import vintage
    from credit_risk.release.batch_scoring import backtest

    report = backtest(args.model, args.data, args.date_column, args.period, args.alpha, args.chunk_rows)
    written = vintage.write(report, args.output)
    print(report.markdown())
    print(f"written: {', '.join(str(p) for p in written.values())}")
    return EXIT_REJECTED if args.fail_on_flag and report.flagged else EXIT_OK


def cmd_default_curves(args: argparse.Namespace) -> int:
    from credit_risk.evidence import vintage

    curves = vintage.curves_from_files(
        args.data, args.date_column, args.months_column, args.period, args.horizon, args.chunk_rows
    )
    written = vintage.write_curves(curves, args.output)
    print(curves.markdown())
    print(f"written: {', '.join(str(p) for p in written.values())}")
    return EXIT_OK


def cmd_generate_history(args: argparse.Namespace) -> int:
    from credit_risk.history import generate

    result = generate.generate(args.output, args.records, seed=args.seed)
    rows = ", ".join(f"{table} {n:,}" for table, n in result.rows.items())
    print(f"wrote {result.records:,} raw records ({rows}) for {result.customers:,} customers to "
          f"{result.path} in {result.seconds:.1f} s")  # fmt: skip
    return EXIT_OK


def cmd_etl(args: argparse.Namespace) -> int:
    from credit_risk.history import etl

    if args.engine in etl.CLUSTER_ENGINES:
        settings = etl.ClusterSettings(
            namespace=args.namespace or "", spark_image=args.spark_image or "",
            emr_application_id=args.emr_application_id or "", emr_role_arn=args.emr_role_arn or "",
            executor_instances=args.executor_instances,
        )  # fmt: skip
        engine = etl.cluster_engine(args.engine, settings)
        result = etl.run_on_cluster(
            args.raw, args.output, engine, args.lag_months, args.timeout, name=args.name
        )
    else:
        result = etl.run(
            args.raw,
            args.output,
            args.lag_months,
            args.engine,
            args.spark_master,
            args.driver_memory,
            args.name,
        )
    engine = f"{result.engine} {result.spark_master}" if result.spark_master else result.engine
    print(f"{result.rows:,} applications, {result.features} features, default rate {result.default_rate:.3f} "
          f"({engine}, {result.seconds:.1f} s)")  # fmt: skip
    print(f"snapshot: {result.out}/{etl.DATA_DIR}  feature spec: {result.out}/{etl.SPEC_FILE}")
    return EXIT_OK


def cmd_monitor(args: argparse.Namespace) -> int:
    from credit_risk.app.local_run import format_monitoring_summary, run_monitoring_local

    params: dict[str, Any] = {"fail_on_act": args.fail_on_act}
    if args.threshold is not None:
        params["threshold"] = args.threshold
    params.update(parse_params(args.param))
    summary = run_monitoring_local(args.model, args.baseline, args.current, args.pipeline_root, **params)
    print(format_monitoring_summary(summary))
    if not summary.succeeded:
        return EXIT_FAILED
    return EXIT_REJECTED if summary.verdict == "act" else EXIT_OK


def cmd_schedule(args: argparse.Namespace) -> int:
    from credit_risk.app.submit import ScheduleConfig, schedule

    config = ScheduleConfig(
        host=args.host,
        name=args.name,
        params=parse_params(args.param),
        cron=args.cron,
        interval_seconds=args.interval_seconds,
        namespace=args.namespace,
        experiment=args.experiment,
        pipeline_file=args.pipeline_file,
        max_concurrency=args.max_concurrency,
        catchup=args.catchup,
        enabled=not args.paused,
        service_account=args.service_account,
        no_cache=args.no_cache,
    )
    print(json.dumps(schedule(config), indent=2))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Replace this process with the predictor entrypoint (``python -m credit_risk.serving``)."""
    import importlib.util
    import os

    if importlib.util.find_spec("kserve") is None:
        raise CreditRiskError(
            "the serving libraries are not installed here; serving runs in its own environment: "
            ".venvs/serving/bin/credit-risk serve ... (create it with bin/setup-envs serving)"
        )
    argv = [sys.executable, "-m", "credit_risk.serving", "--model_name", args.name, "--host", args.host]
    argv += ["--http_port", str(args.port), "--workers", str(args.workers)]
    argv += ["--decision_threshold", str(args.decision_threshold)]
    argv += ["--storage_uri", args.storage_uri] if args.storage_uri else ["--model_dir", args.model_dir]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module
    return EXIT_OK  # pragma: no cover - execv does not return


def cmd_train(args: argparse.Namespace) -> int:
    """Stream-train the model from data files (what a TFJob / multi-worker launch runs)."""
    from dataclasses import asdict

    from credit_risk.modeling import training, training_data
    from credit_risk.spec import feature_spec

    data_uri, spec_uri = resolve_dataset(args)
    config = training.config_from_overrides(args.set)
    source = training_data.FileSource(data_uri, chunk_rows=args.chunk_rows)
    result = training.train_and_export(source, feature_spec.load(spec_uri), config, args.output)
    print(json.dumps(asdict(result), indent=2))
    return EXIT_OK


def cmd_infer_schema(args: argparse.Namespace) -> int:
    """Write a schema inferred from data + spec, for review before it is committed as curated."""
    import tensorflow_data_validation as tfdv

    from credit_risk import storage
    from credit_risk.dataset import validation
    from credit_risk.errors import ConfigError
    from credit_risk.spec import feature_spec

    data_uri, spec_uri = resolve_dataset(args)
    spec = feature_spec.load(spec_uri)
    output = args.output or str(Path(spec_uri).with_name(spec.name + validation.SCHEMA_SUFFIX))
    if storage.exists(output) and not args.force:
        # an inferred schema has none of the reviewed business rules: never replace one silently
        raise ConfigError(
            f"{output} exists (a curated schema is reviewed by hand); write the inferred one "
            "elsewhere with --output and compare, or pass --force to replace it"
        )
    schema = validation.infer_schema(data_uri, spec)
    tfdv.write_schema_text(schema, output)
    print(f"wrote {output}: review the domains and ranges, then commit it as the curated schema")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a dataset outside a pipeline (same code as the validate step)."""
    from credit_risk.dataset import validation
    from credit_risk.spec import feature_spec

    data_uri, spec_uri = resolve_dataset(args)
    config = validation.ValidationConfig(
        schema_uri=args.schema or "",
        baseline_stats_uri=args.baseline_stats or "",
        serving_data_uri=args.serving_data or "",
        warn_only=tuple(args.warn_only),
        beam_args=tuple(args.beam_arg),
    )
    result = validation.validate(data_uri, feature_spec.load(spec_uri), args.output, config)
    print(result.summary())
    print(f"reports in {args.output} ({validation.ANOMALIES_MD_FILE}, {validation.STATS_HTML_FILE})")
    return EXIT_OK if result.passed else EXIT_FAILED


def cmd_sample_request(args: argparse.Namespace) -> int:
    from credit_risk.dataset import data
    from credit_risk.spec import feature_spec

    data_uri, spec_uri = resolve_dataset(args)
    spec = feature_spec.load(spec_uri)
    print(json.dumps(data.sample_request(data_uri, spec, rows=args.rows, offset=args.offset)))
    return EXIT_OK


def cmd_build_images(args: argparse.Namespace) -> int:
    names = [
        {"pipeline": images.PIPELINE_IMAGE_NAME, "serving": images.SERVING_IMAGE_NAME}[n] for n in args.images
    ]
    built = image_build.build_images(
        args.builder,
        registry=args.registry,
        names=names,
        base_image=args.base_image,
        push=args.push,
        tls_verify=not args.insecure_registry,
        record=Path(args.record),
    )
    for image in built:
        pinned = f"  pin: {image.reference.rsplit(':', 1)[0]}@{image.digest}" if image.digest else ""
        print(f"{image.reference}  ({image.seconds:.0f} s, content hash {image.content_hash[:12]}){pinned}")
    print(f"record -> {args.record}")
    return EXIT_OK


def cmd_datasets(args: argparse.Namespace) -> int:
    for name in bundled_datasets():
        print(f"{name}\t{REPO_DATA_DIR / (name + SPEC_SUFFIX)}")
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------
def add_run_identity_args(p: argparse.ArgumentParser) -> None:
    """--service-account and --no-cache of submit and schedule."""
    from credit_risk.app.submit import RUNNER_SERVICE_ACCOUNT

    p.add_argument(
        "--service-account",
        default=RUNNER_SERVICE_ACCOUNT,
        help="Kubernetes service account the run's pods use (default %(default)s, created by "
        "manifests/pipeline-namespace; '' = the profile's default-editor)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="disable every step's cache for this run (default: each step's compiled setting, "
        "pipelines/policy.py; never forces caching on)",
    )


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one flat argparse declaration
    parser = argparse.ArgumentParser(
        prog="credit-risk", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="compile the pipelines to YAML for the Kubeflow dashboard")
    p.add_argument(
        "--pipeline",
        choices=["training", "monitoring"],
        help="compile only this one (default: both, to pipelines/<name>_pipeline.yaml)",
    )
    p.add_argument("--output", "-o", help="output YAML (with --pipeline; default: the committed file)")
    p.add_argument("--registry", help=f"image registry (default {images.DEFAULT_REGISTRY})")
    p.add_argument(
        "--tag", help=f"image tag (default: {__version__}-<content hash of what each image is built from>)"
    )
    p.add_argument(
        "--database-secret",
        help="Kubernetes secret (keys host, port, user, password, database) mounted as PGHOST ... "
        "PGDATABASE on the ingest step, for sql_query runs (default: none mounted)",
    )
    p.add_argument(
        "--s3-secret",
        default="",
        help="Kubernetes secret (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) mounted on every step, for "
        "S3-compatible storage such as MinIO (default: none; on AWS the runner's IRSA role is used)",
    )
    p.add_argument(
        "--s3-endpoint",
        default="",
        help="S3 API URL set as AWS_ENDPOINT_URL_S3 on every step, e.g. http://minio-service.kubeflow:9000",
    )
    p.add_argument("--s3-region", default="", help="AWS_REGION on every step (default: the pod's own)")
    p.add_argument(
        "--step-resources",
        nargs="+",
        metavar="STEP.KEY=VALUE",
        help="override a step's resources or retries, e.g. train.cpu=8 train.memory=32Gi ingest.retries=0 "
        "(keys cpu, memory, cpu_limit, retries; defaults and caching in pipelines/policy.py)",
    )
    p.set_defaults(func=cmd_compile)

    def add_data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", help=f"bundled dataset (default german_credit): {bundled_datasets()}")
        p.add_argument(
            "--data", help="data URI (CSV, local path, gs:// or s3://); default: the spec's data_file"
        )
        p.add_argument("--spec", help="feature spec URI (YAML)")

    p = sub.add_parser("run-local", help="run the whole pipeline on this machine (KFP local runner)")
    add_data_args(p)
    p.add_argument("--pipeline-root", default="runs", help="where artifacts are written (default ./runs)")
    p.add_argument(
        "--raw-history",
        help="start from raw loan history (applications/, repayments/, inquiries/; see generate-history): "
        "the first step computes the features and their spec (instead of --dataset/--data/--spec)",
    )
    p.add_argument("--history-lag-months", type=int, help="reporting lag of monthly records (default 0)")
    p.add_argument("--history-engine", choices=["spark", "pandas"], help="feature engine (default spark)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-fraction", type=float, help="held-out share for evaluation (default 0.25)")
    p.add_argument("--gate-config", help="gate config YAML (default: credit_risk/config/gate.yaml)")
    p.add_argument("--min-auc", type=float, help="gate override: minimum held-out AUC")
    p.add_argument("--min-ks", type=float, help="gate override: minimum KS")
    p.add_argument("--max-brier", type=float, help="gate override: maximum Brier score")
    p.add_argument(
        "--champion",
        help="model to beat: a model dir, a published gs:// or s3://…/m-<version>, or isvc://<ns>/<name> "
        "(the model that InferenceService serves)",
    )
    p.add_argument("--service-name", help="InferenceService name (default credit-risk)")
    p.add_argument(
        "--sql-query",
        help="take the training data from PostgreSQL with this query (connection from PGHOST, PGPORT, "
        "PGUSER, PGPASSWORD, PGDATABASE); :name placeholders are bound from --sql-param",
    )
    p.add_argument("--sql-param", action="append", default=[], metavar="NAME=VALUE", help="query parameter")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other pipeline parameter (repeatable)",
    )
    p.add_argument("--summary-json", help="also write the run summary as JSON here")
    p.add_argument(
        "--log-file",
        help="where the full KFP output goes (default <pipeline-root>/run-local-<UTC time>.log); the "
        "terminal shows one line per step",
    )
    p.add_argument(
        "--verbose", action="store_true", help="stream the full KFP output to the terminal instead"
    )
    p.set_defaults(func=cmd_run_local)

    p = sub.add_parser("submit", help="submit the compiled pipeline to a Kubeflow Pipelines endpoint")
    p.add_argument(
        "--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline"
    )
    p.add_argument("--namespace", help="Kubeflow profile namespace (multi-user installs)")
    p.add_argument("--experiment", default="credit-risk", help="experiment name (created if missing)")
    p.add_argument("--pipeline-file", default=None, help="compiled YAML (default: the committed one)")
    p.add_argument("--run-name", default=None, help="run display name")
    p.add_argument(
        "--pipeline-root",
        help="where the run's artifacts are stored: gs://, s3:// or minio://bucket/root (default: KFP's)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline parameter (repeatable), e.g. data_uri=gs://bucket/loans.csv",
    )
    p.add_argument("--wait", action="store_true", help="wait for the run; non-zero exit unless it succeeds")
    p.add_argument(
        "--upload",
        action="store_true",
        help="register the pipeline and a content-addressed version in KFP and run that version "
        "(default: run the package directly, without registering it)",
    )
    p.add_argument(
        "--fail-on-rejection",
        action="store_true",
        help="make a model rejected by the gate fail the run (so --wait fails the CI job)",
    )
    p.add_argument("--timeout", type=int, default=3600, help="seconds to wait with --wait (default 3600)")
    add_run_identity_args(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("score", help="batch-score a dataset of any size with an exported model (chunked)")
    p.add_argument("--model", required=True, help="exported model directory (SavedModel + feature_spec.yaml)")
    p.add_argument("--data", required=True, help="CSV/Parquet file, directory or glob; local, gs:// or s3://")
    p.add_argument("--output", required=True, help="output directory (Parquet parts), local, gs:// or s3://")
    p.add_argument(
        "--threshold", type=float, default=DEFAULT_OPERATING_THRESHOLD, help="decline when PD >= this"
    )
    p.add_argument(
        "--id-column", action="append", default=[], help="input column copied to the output (repeatable)"
    )
    p.add_argument("--chunk-rows", type=int, default=131_072, help="rows in memory at a time")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "backtest",
        help="vintage back-test: how a model's PDs held up per origination cohort (Jeffreys test; "
        "exit 3 with --fail-on-flag when a cohort is under-estimated)",
    )
    p.add_argument("--model", required=True, help="exported model directory (SavedModel + feature_spec.yaml)")
    p.add_argument(
        "--data", required=True, help="labelled CSV/Parquet file, directory or glob; local, gs:// or s3://"
    )
    p.add_argument("--date-column", required=True, help="each loan's origination date (YYYY-MM-DD)")
    p.add_argument("--period", choices=["month", "quarter", "year"], default="quarter", help="cohort width")
    p.add_argument(
        "--alpha", type=float, default=0.05, help="Jeffreys test level: a cohort below it is flagged"
    )
    p.add_argument("--output", "-o", required=True, help="local directory for vintage.json / .md / .png")
    p.add_argument("--fail-on-flag", action="store_true", help="exit 3 when any cohort is flagged")
    p.add_argument("--chunk-rows", type=int, default=131_072, help="rows in memory at a time")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser(
        "default-curves",
        help="cumulative default curves: per origination cohort, the share of loans defaulted by each "
        "month after origination (no model needed)",
    )
    p.add_argument(
        "--data",
        required=True,
        help="CSV/Parquet file, directory or glob (e.g. raw/applications); gs://, s3://",
    )
    p.add_argument("--date-column", default="application_date", help="origination date (YYYY-MM-DD)")
    p.add_argument(
        "--months-column",
        default="months_to_default",
        help="months from origination to the default, empty/null when the loan did not default",
    )
    p.add_argument("--period", choices=["month", "quarter", "year"], default="quarter", help="cohort width")
    p.add_argument(
        "--horizon", type=int, default=12, help="months after origination on the curve (default 12)"
    )
    p.add_argument(
        "--output", "-o", required=True, help="local directory for default_curves.json / .md / .png"
    )
    p.add_argument("--chunk-rows", type=int, default=131_072, help="rows in memory at a time")
    p.set_defaults(func=cmd_default_curves)

    p = sub.add_parser(
        "generate-history",
        help="write a seeded raw loan history (applications, monthly repayments, inquiries) as Parquet",
    )
    p.add_argument(
        "--records", type=int, required=True, help="about this many raw rows over the three tables"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--output", "-o", required=True, help="new local directory")
    p.set_defaults(func=cmd_generate_history)

    from credit_risk.history import etl  # light: no Spark is imported until a job runs

    p = sub.add_parser(
        "etl",
        help="raw loan history to point-in-time applicant features (Spark local[N] or pandas): a typed "
        "Parquet snapshot plus its feature spec, ready for validate/train/run-local",
    )
    p.add_argument("--raw", required=True, help="directory holding applications/, repayments/, inquiries/")
    p.add_argument("--output", "-o", required=True, help="new output directory, local, gs:// or s3://")
    p.add_argument(
        "--lag-months", type=int, default=0, help="reporting lag of monthly records (0-12, default 0)"
    )
    p.add_argument(
        "--engine",
        choices=[*etl.ENGINES, *etl.CLUSTER_ENGINES],
        default="spark",
        help="spark (local[N] here, default), pandas, spark-operator (a SparkApplication on the cluster the "
        "kubeconfig or the pod's service account reaches) or emr-serverless (a job run; s3:// only)",
    )
    p.add_argument("--emr-application-id", help="emr-serverless: the Spark application to run on")
    p.add_argument("--emr-role-arn", help="emr-serverless: the job run's execution role")
    p.add_argument(
        "--namespace", help="spark-operator: the namespace the SparkApplication goes to (in a pod: its own)"
    )
    p.add_argument("--spark-image", help="spark-operator: any Spark 4 image with Python 3 (docs/history.md)")
    p.add_argument("--executor-instances", type=int, default=2, help="cluster engines: executors (default 2)")
    p.add_argument(
        "--timeout", type=float, default=3600, help="cluster engines: seconds before it is cancelled"
    )
    p.add_argument(
        "--spark-master", default="local[2]", help="Spark master for --engine spark (default local[2])"
    )
    p.add_argument("--driver-memory", default="2g", help="Spark driver memory (default 2g)")
    p.add_argument("--name", default="loan_history", help="dataset name in the feature spec")
    p.set_defaults(func=cmd_etl)

    p = sub.add_parser(
        "monitor",
        help="run the monitoring pipeline locally: batch score + PSI/TFDV drift (exit 3 when 'act')",
    )
    p.add_argument("--model", required=True, help="exported (or published) model directory")
    p.add_argument("--baseline", required=True, help="the model's training data (CSV/Parquet URI)")
    p.add_argument("--current", required=True, help="recent applications to check (CSV/Parquet URI)")
    p.add_argument("--pipeline-root", default="runs", help="where artifacts are written (default ./runs)")
    p.add_argument("--threshold", type=float, help="decision threshold for the scores")
    p.add_argument(
        "--fail-on-act", action="store_true", help="fail the run (exit 1) when the verdict is 'act'"
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="other pipeline parameter"
    )
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser(
        "schedule", help="create a KFP recurring run (default: the monitoring pipeline) with kfp.Client"
    )
    p.add_argument(
        "--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline"
    )
    p.add_argument("--name", required=True, help="recurring run name, e.g. credit-risk-monitoring-daily")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="KFP 6-field cron (sec min hour dom month dow), e.g. '0 0 6 * * *'")
    when.add_argument("--interval-seconds", type=int, help="run every N seconds (>= 60)")
    p.add_argument("--namespace", help="Kubeflow profile namespace (multi-user installs)")
    p.add_argument("--experiment", default="credit-risk-monitoring", help="experiment (created if missing)")
    p.add_argument("--pipeline-file", help="compiled YAML (default: pipelines/monitoring_pipeline.yaml)")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs allowed at once (default 1)")
    p.add_argument(
        "--catchup", action="store_true", help="after a pause, run every missed slot (default: once)"
    )
    p.add_argument("--paused", action="store_true", help="create it disabled")
    add_run_identity_args(p)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline parameter (repeatable), e.g. model_uri=gs://bucket/serving/m-...",
    )
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("serve", help="serve an exported model with our KServe predictor (serving env)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", help="exported model directory")
    source.add_argument(
        "--storage-uri", help="published model version to download first (gs://…, s3://… or path)"
    )
    p.add_argument("--name", default="credit-risk", help="model name in the URL (default credit-risk)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument(
        "--decision-threshold",
        type=float,
        default=DEFAULT_OPERATING_THRESHOLD,
        help=f"decline when PD >= this (default {DEFAULT_OPERATING_THRESHOLD}, the gate's threshold)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "train",
        help="train and export the model, streaming CSV/Parquet files (local, gs:// or s3://, sharded); "
        "runs multi-worker when TF_CONFIG names several workers",
        description="Streams the data in bounded chunks (never whole), splits validation rows by a "
        "seeded hash, trains with early stopping and exports a raw-feature SavedModel with its "
        "feature spec and model_info.json. Under TF_CONFIG with several tasks every process trains "
        "with MultiWorkerMirroredStrategy and only the chief writes --output.",
    )
    add_data_args(p)
    p.add_argument("--output", "-o", required=True, help="export directory (local path)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=JSON",
        help="override training defaults, e.g. epochs=20 batch_size=1024 model.hidden_units=[16]",
    )
    p.add_argument("--chunk-rows", type=int, default=65_536, help="rows read and shuffled at a time")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample-request", help="print a V1 predict body built from rows of a dataset")
    add_data_args(p)
    p.add_argument("--rows", type=int, default=1, help="instances in the body (default 1)")
    p.add_argument("--offset", type=int, default=0, help="first data row to use (default 0)")
    p.set_defaults(func=cmd_sample_request)

    p = sub.add_parser(
        "infer-schema",
        help="write a TFDV schema inferred from data + feature spec, for review (the curated schema)",
    )
    add_data_args(p)
    p.add_argument("--output", "-o", help="default: <spec dir>/<name>.schema.pbtxt")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    p.set_defaults(func=cmd_infer_schema)

    p = sub.add_parser(
        "validate", help="validate a dataset with TFDV and the spec checks (the pipeline's step)"
    )
    add_data_args(p)
    p.add_argument("--output", "-o", required=True, help="directory for statistics, reports, anomalies")
    p.add_argument("--schema", help="curated schema (default: the one beside the spec)")
    p.add_argument("--baseline-stats", help="statistics of the deployed model's training data (drift)")
    p.add_argument("--serving-data", help="a sample of serving requests, CSV/Parquet (skew)")
    p.add_argument(
        "--warn-only", nargs="*", default=[], metavar="KIND", help="anomaly kinds that do not fail"
    )
    p.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="OPTION",
        help="compute statistics on Beam with this pipeline option (repeat), "
        "e.g. --beam-arg=--runner=DirectRunner",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "build-images",
        help="build (and push) the pipeline and predictor images, tagged by content",
    )
    p.add_argument(
        "--builder",
        choices=image_build.BUILDERS,
        default="docker",
        help="docker (a daemon, BuildKit), or daemonless podman/buildah, which reuse the host's uv "
        "cache (default %(default)s)",
    )
    p.add_argument("--registry", help=f"image registry (default {images.DEFAULT_REGISTRY})")
    p.add_argument(
        "--images",
        nargs="+",
        choices=["pipeline", "serving"],
        default=["pipeline", "serving"],
        help="which images (default both: pipeline = every component, serving = the KServe predictor)",
    )
    p.add_argument(
        "--base-image",
        default=image_build.DEFAULT_BASE_IMAGE,
        help="FROM image of both stages (default: the public python slim image; bin/base-image makes a "
        "local Debian one where no public registry can be reached)",
    )
    p.add_argument("--push", action="store_true", help="push after building and record the digest to pin")
    p.add_argument("--insecure-registry", action="store_true", help="push over plain HTTP (a local registry)")
    p.add_argument("--record", default="build/images.json", help="what was built (JSON; default %(default)s)")
    p.set_defaults(func=cmd_build_images)

    p = sub.add_parser("datasets", help="list the bundled datasets and their feature specs")
    p.set_defaults(func=cmd_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except CreditRiskError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
