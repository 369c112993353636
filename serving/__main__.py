"""Container entrypoint: ``python -m credit_risk.serving --model_dir DIR | --storage_uri URI``.

Wiring only. Takes kserve's own server flags (``--http_port``, ``--model_name``, ``--workers``)
plus ours. In an InferenceService KServe's storage initializer has already put ``STORAGE_URI`` in
``--model_dir``; outside KServe ``--storage_uri gs://…/m-<version>`` (or s3://…) downloads a published version
(checked against its ``_PUBLISHED.json`` manifest) before the workers start.
"""

import argparse
import logging
import sys
import tempfile

from kserve.model_server import parser as kserve_parser

from credit_risk.spec.contract import DEFAULT_OPERATING_THRESHOLD


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(parents=[kserve_parser], description=__doc__, conflict_handler="resolve")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model_dir", help="exported model directory on local disk")
    source.add_argument(
        "--storage_uri", help="published model version (gs://…, s3://… or a local path) to download first"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument(
        "--decision_threshold",
        type=float,
        default=DEFAULT_OPERATING_THRESHOLD,
        help=f"decline when PD >= this (default {DEFAULT_OPERATING_THRESHOLD}, the gate's threshold)",
    )
    parser.add_argument("--max_body_bytes", type=int, default=8 * 1024 * 1024, help="larger bodies get 413")
    parser.add_argument("--max_batch_rows", type=int, default=512, help="rows per micro-batched model call")
    parser.add_argument(
        "--batch_wait_ms",
        type=float,
        default=0.3,
        help="when the previous model call served several requests, hold the next one open this "
        "long for more (default 0.3; 0 = only batch what queued during the previous call)",
    )
    parser.add_argument(
        "--tf_threads",
        type=int,
        default=-1,
        help="TensorFlow intra/inter-op threads per worker (default: 1 with several workers, else TF's own)",
    )
    parser.add_argument(
        "--access_log",
        action="store_true",
        help="log a line per request (method, path, status; never the body)",
    )
    parser.add_argument(
        "--log_feature_values",
        action="store_true",
        help="DEBUG ONLY: let client-error logs quote submitted values (personal data); off by default",
    )
    # set by the supervisor; not "--worker": argparse would take it for kserve's --workers
    parser.add_argument("--pool_member", action="store_true", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args, _ = build_parser().parse_known_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
    )
    if args.storage_uri:
        from credit_risk import storage

        model_dir = tempfile.mkdtemp(prefix="credit-risk-model-")
        storage.download_published(args.storage_uri, model_dir)
        argv = _replace_source(sys.argv[1:], model_dir)
    else:
        model_dir, argv = args.model_dir, sys.argv[1:]
    if args.workers > 1 and not args.pool_member:
        from credit_risk.serving.server import serve_workers

        sys.exit(serve_workers(argv, args.workers, args.host, args.http_port))

    from credit_risk.serving.model import CreditRiskModel
    from credit_risk.serving.server import serve

    model = CreditRiskModel(
        args.model_name,
        model_dir,
        decision_threshold=args.decision_threshold,
        max_batch_rows=args.max_batch_rows,
        batch_wait_s=args.batch_wait_ms / 1000.0,
        tf_threads=args.tf_threads if args.tf_threads >= 0 else (1 if args.pool_member else 0),
    )
    serve(
        model,
        host=args.host,
        port=args.http_port,
        reuse_port=args.pool_member,
        max_body_bytes=args.max_body_bytes,
        log_values=args.log_feature_values,
        access_log=args.access_log,
    )


def _replace_source(argv: list[str], model_dir: str) -> list[str]:
    """The same arguments with ``--storage_uri X`` swapped for the downloaded ``--model_dir``."""
    out: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--storage_uri":
            next(args, None)
            out += ["--model_dir", model_dir]
        elif arg.startswith("--storage_uri="):
            out += ["--model_dir", model_dir]
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    main()
