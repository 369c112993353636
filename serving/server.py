"""Start the predictor: one worker in-process, or a supervisor over several worker processes.

kserve 0.21's RESTServer hard-codes host 0.0.0.0 and, for several workers, pickles the model into
uvicorn-spawned processes whose start-up must answer a 5 s ping - longer than importing TensorFlow
takes here, so workers restart in a loop (docs/stack.md). We do neither:

* a worker (``serve``) loads the model itself, binds the given host (127.0.0.1 locally) on a socket
  it creates - with SO_REUSEPORT when it is one of several, so the kernel spreads connections
  across workers - and serves kserve's app behind our ``PredictorFront`` (fast path, limits,
  metrics); gRPC is off;
* the supervisor (``serve_workers``) checks the port is free, starts N worker processes of this
  same entrypoint with a shared Prometheus multiprocess directory, restarts a worker that dies
  (at most ``MAX_RESTARTS`` a minute), and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

MAX_RESTARTS = 5  # per worker per minute before the supervisor gives up


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve(
    model: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    reuse_port: bool = False,
    max_body_bytes: int | None = None,
    log_values: bool = False,
    access_log: bool = False,
) -> None:
    """Load ``model`` (a CreditRiskModel) and serve it until SIGTERM/SIGINT, in this process."""
    from credit_risk.serving.fastpath import DEFAULT_MAX_BODY_BYTES, PredictorFront
    from kserve import ModelServer
    from kserve.model_server import FASTAPI_APP_IMPORT_STRING
    from kserve.model_server import app as kserve_app
    from kserve.protocol.rest.server import RESTServer

    model.load()
    server = ModelServer(enable_grpc=False, workers=1, http_port=port)
    server._register_and_check_atleast_one_model_is_ready([model])
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING,
        server.dataplane,
        server.model_repository_extension,
        port,
        workers=1,
        grace_period=server.grace_period,
        timeout_keep_alive=server.timeout_keep_alive,
    )
    rest.create_application()  # kserve's routes, middlewares and error handlers on its app
    front = PredictorFront(
        kserve_app,
        model,
        max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        log_values=log_values,
        openapi=kserve_app.openapi,
    )
    rest.config.app = front
    rest.config.host = host
    # one log line per request costs ~15 % of the throughput; Prometheus counts requests by status,
    # and the access line (path + status, never the body) is there when asked for
    rest.config.access_log = access_log
    sock = bind(host, port, reuse_port)
    log.info("worker %d serving %s on http://%s:%d", os.getpid(), model.name, host, port)
    _DrainingServer(rest.config, front.state).run(sockets=[sock])


class _DrainingServer(uvicorn.Server):
    """uvicorn's server that flips the front to "draining" on SIGTERM/SIGINT before uvicorn stops
    accepting, finishes the requests in flight and exits: from that moment readiness and predict
    both answer 503, so a probe and a client never see different states."""

    def __init__(self, config: uvicorn.Config, state: Any):
        super().__init__(config)
        self.front_state = state

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.front_state.draining:
            log.info("worker %d draining (signal %d)", os.getpid(), sig)
        self.front_state.draining = True
        super().handle_exit(sig, frame)


def serve_workers(argv: list[str], workers: int, host: str, port: int) -> int:
    """Run ``workers`` copies of ``python -m credit_risk.serving argv --pool_member`` on one port."""
    probe = bind(host, port, reuse_port=False)  # fails now, clearly, if something holds the port
    probe.close()
    metrics_dir = tempfile.mkdtemp(prefix="credit-risk-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    command = [sys.executable, "-m", "credit_risk.serving", *argv, "--pool_member"]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    restarts: dict[int, list[float]] = {i: [] for i in range(workers)}
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for i in range(workers):
            procs[i] = subprocess.Popen(command, env=env)  # noqa: S603 - our own entrypoint
        log.info("supervisor %d started %d workers on http://%s:%d", os.getpid(), workers, host, port)
        while not stopping:
            time.sleep(0.5)
            for i, proc in list(procs.items()):
                if proc.poll() is None or stopping:
                    continue
                now = time.monotonic()
                restarts[i] = [t for t in restarts[i] if now - t < 60] + [now]
                if len(restarts[i]) > MAX_RESTARTS:
                    log.error("worker %d keeps dying (exit %s); stopping the server", i, proc.returncode)
                    return 1
                log.warning("worker %d exited with %s; restarting it", i, proc.returncode)
                procs[i] = subprocess.Popen(command, env=env)  # noqa: S603 - our own entrypoint
        return 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)
