"""Container entrypoint: ``python -m credit_risk.serving --model_dir DIR [--model_name N]``.

Wiring only. Takes kserve's own server flags (``--http_port`` ...) plus ours; when ``STORAGE_URI``
is set and ``--model_dir`` is empty, KServe's storage initializer has already put the model there.
"""

import argparse
import logging

from credit_risk.serving.server import serve
from kserve.model_server import parser as kserve_parser

from credit_risk.contract import DEFAULT_OPERATING_THRESHOLD


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve_parser], description=__doc__)
    parser.add_argument("--model_dir", required=True, help="exported model directory")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument(
        "--decision_threshold",
        type=float,
        default=DEFAULT_OPERATING_THRESHOLD,
        help=f"decline when PD >= this (default {DEFAULT_OPERATING_THRESHOLD}, the gate's threshold)",
    )
    args, _ = parser.parse_known_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(
        model_dir=args.model_dir,
        name=args.model_name,
        host=args.host,
        port=args.http_port,
        decision_threshold=args.decision_threshold,
    )


if __name__ == "__main__":
    main()
