"""Serving benchmark: our predictor vs the naive KServe predictor, same model, same machine, same load tool.

Measures, in one run:
  * in-process: one 1-row V1 request through our model code (JSON parse, validation, micro-batched
    signature call, reasons, response, JSON dump), median of 2,000, with and without reasons;
  * over HTTP with wrk (keep-alive connections on 127.0.0.1): the naive predictor
    (benchmarks/naive_predictor.py) with 1 worker and with 2 (kserve's multi-process server, ping
    timeout raised so it does not restart-loop; restarts counted from its log), and ours with
    ``--workers`` (default 2) - 1-row V1 requests at 1 and 8 clients (req/s, p50, p99) and 1,000-row
    V2 requests at 2 clients (rows/s). Our server is measured with the default request (reasons on:
    the body has no "parameters") and with ``"reasons": false``; the naive predictor has no reasons.
Bars: ours with reasons, 8 clients, >= 5x the naive predictor with 1 worker and >= 2.5x
with 2 workers; with-reasons throughput >= 80 % of without; our p99 at 8 clients <= 20 ms; our HTTP
p50 at 1 client <= 1.5x the in-process time of the same request; the naive 2-worker server never
restarted.

Usage (serving environment; wrk from bin/setup-system wrk):
  .venvs/serving/bin/python benchmarks/serving_benchmark.py [--model-dir DIR] [--workers 2]
      [--seconds 15] [--tag NAME]
Without --model-dir a small credit_data model is trained first in the pipeline environment.
Prints a table and writes benchmarks/results/serving[-TAG].json (with commit, command and config).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import provenance  # benchmarks/provenance.py: this script's folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
NAME = "credit-risk"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WRK_SCRIPT = """
local f = io.open(os.getenv("BODY_FILE"), "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def log(msg: str) -> None:
    print(f"[serving-benchmark] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(workdir: Path) -> Path:
    python = ROOT / ".venvs" / "pipeline" / "bin" / "python"
    log("training a small credit_data model in the pipeline environment")
    subprocess.run([str(python), "-m", "tests.make_serving_fixture", str(workdir)], cwd=ROOT, check=True)
    return workdir / "model"


def bodies(model_dir: Path, workdir: Path) -> dict[str, Path]:
    """1-row V1 (the default: reasons on; and reasons off) and 1,000-row V2 request bodies from the
    model's own sample rows."""
    from credit_risk.spec import feature_spec

    expected = (
        json.loads((model_dir.parent / "expected.json").read_text())
        if (model_dir.parent / "expected.json").exists()
        else None
    )
    spec = feature_spec.load(str(model_dir / "feature_spec.yaml"))
    if expected:
        instances = [i for i in expected["instances"] if all(v is not None for v in i.values())]
    else:
        from credit_risk.release.infra_validation import sample_requests

        instances = sample_requests(model_dir)["instances"][:2]
    one = {"instances": instances[:1]}  # the default request: reasons on
    one_plain = {"instances": instances[:1], "parameters": {"reasons": False}}
    rows = [instances[i % len(instances)] for i in range(1000)]
    v2 = {
        "inputs": [
            {
                "name": f.name,
                "datatype": "FP32" if f.is_numeric else "BYTES",
                "shape": [len(rows), 1],
                "data": [r.get(f.name) for r in rows],
            }
            for f in spec.model_features
        ]
    }
    paths = {
        "v1_1row": workdir / "v1_1row.json",
        "v1_1row_no_reasons": workdir / "v1_1row_no_reasons.json",
        "v2_1000rows": workdir / "v2_1000rows.json",
    }
    paths["v1_1row"].write_text(json.dumps(one))
    paths["v1_1row_no_reasons"].write_text(json.dumps(one_plain))
    paths["v2_1000rows"].write_text(json.dumps(v2))
    return paths


def in_process_ms(model_dir: Path, bodies: list[bytes], n: int = 2000) -> list[float]:
    import orjson
    from credit_risk.serving.model import CreditRiskModel

    model = CreditRiskModel(NAME, str(model_dir))
    model.load()
    try:
        return [_in_process(model, orjson, body, n) for body in bodies]
    finally:
        model.batcher.close()


def _in_process(model: Any, orjson: Any, body: bytes, n: int) -> float:
    async def one() -> bytes:
        prepared = model.prepare_v1(orjson.loads(body))
        pds, reasons = await model.infer(prepared)
        return orjson.dumps(model.v1_response(pds, reasons))

    async def run() -> list[float]:
        for _ in range(200):
            await one()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            await one()
            times.append(time.perf_counter() - start)
        return times

    times = asyncio.run(run())
    return statistics.median(times) * 1e3


def start(
    kind: str, model_dir: Path, port: int, workers: int, logfile: Path, extra: list[str]
) -> subprocess.Popen[bytes]:
    if kind == "ours":
        cmd = [sys.executable, "-m", "credit_risk.serving", "--model_dir", str(model_dir),
               "--model_name", NAME, "--http_port", str(port), "--workers", str(workers), *extra]  # fmt: skip
    else:
        cmd = [
            sys.executable,
            str(ROOT / "benchmarks" / "naive_predictor.py"),
            str(model_dir),
            str(port),
            NAME,
            str(workers),
        ]
    with open(logfile, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    url = f"http://127.0.0.1:{port}/v1/models/{NAME}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited; see {logfile}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    time.sleep(15 if workers > 1 else 0.5)  # let every worker finish loading
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{kind} server did not become ready; see {logfile}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(url: str, body: Path, connections: int, seconds: int, script: Path) -> dict[str, Any]:
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        env={**os.environ, "BODY_FILE": str(body)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "connections": connections,
        "seconds": seconds,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="exported model (default: train a small one)")
    parser.add_argument("--workers", type=int, default=2, help="our server's worker processes (default 2)")
    parser.add_argument("--seconds", type=int, default=15, help="wrk duration per load level (default 15)")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    parser.add_argument(
        "--server-args", default="", help="extra flags for our server, e.g. '--batch_wait_ms 0.5'"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run bin/setup-system wrk")
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    model_dir = args.model_dir or make_model(workdir / "fixture")
    paths = bodies(model_dir, workdir)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)

    log("in-process timing of one 1-row request through our model code (reasons on, then off)")
    inproc, inproc_plain = in_process_ms(
        model_dir, [paths["v1_1row"].read_bytes(), paths["v1_1row_no_reasons"].read_bytes()]
    )
    results: dict[str, Any] = {
        "in_process_1row_p50_ms": round(inproc, 3),
        "in_process_1row_no_reasons_p50_ms": round(inproc_plain, 3),
        "request_bodies": {k: json.loads(paths[k].read_text()) for k in ("v1_1row", "v1_1row_no_reasons")},
    }
    loads = {
        "naive": [("v1_1row_c1", "v1", "v1_1row", 1), ("v1_1row_c8", "v1", "v1_1row", 8),
                  ("v2_1000rows_c2", "v2", "v2_1000rows", 2)],
        "ours": [("v1_1row_c1", "v1", "v1_1row", 1), ("v1_1row_c8", "v1", "v1_1row", 8),
                 ("v1_1row_no_reasons_c1", "v1", "v1_1row_no_reasons", 1),
                 ("v1_1row_no_reasons_c8", "v1", "v1_1row_no_reasons", 8),
                 ("v2_1000rows_c2", "v2", "v2_1000rows", 2)],
    }  # fmt: skip
    for label, kind, workers in (
        ("naive_1", "naive", 1),
        ("naive_2", "naive", 2),
        ("ours", "ours", args.workers),
    ):
        port = free_port()
        logfile = workdir / f"{label}.log"
        proc = start(
            kind, model_dir, port, workers, logfile, args.server_args.split() if kind == "ours" else []
        )
        try:
            urls = {"v1": f"http://127.0.0.1:{port}/v1/models/{NAME}:predict",
                    "v2": f"http://127.0.0.1:{port}/v2/models/{NAME}/infer"}  # fmt: skip
            runs: dict[str, Any] = {}
            for run, protocol, body, conns in loads[kind]:
                log(f"{label} ({workers} worker(s)): {run} for {args.seconds}s")
                runs[run] = wrk(urls[protocol], paths[body], conns, args.seconds, script)
                if runs[run]["non_2xx"]:
                    raise RuntimeError(f"{label} {run}: {runs[run]['non_2xx']} non-2xx answers")
            runs["v2_1000rows_c2"]["rows_per_s"] = round(runs["v2_1000rows_c2"]["requests_per_s"] * 1000)
            results[label] = {"workers": workers, "reasons": kind == "ours", **runs}
        finally:
            stop(proc)
        results[label]["worker_restarts"] = logfile.read_text().count("died")

    ours, naive1, naive2 = results["ours"], results["naive_1"], results["naive_2"]
    rps = lambda side, run="v1_1row_c8": side[run]["requests_per_s"]  # noqa: E731
    bars = {
        "ours_reasons_vs_naive_1_worker_c8": round(rps(ours) / rps(naive1), 2),
        "ours_reasons_vs_naive_2_workers_c8": round(rps(ours) / rps(naive2), 2),
        "reasons_share_of_no_reasons_c8": round(rps(ours) / rps(ours, "v1_1row_no_reasons_c8"), 3),
        "ours_p99_c8_ms": ours["v1_1row_c8"]["p99_ms"],
        "http_over_in_process_p50": round(ours["v1_1row_c1"]["p50_ms"] / inproc, 2),
        "naive_2_worker_restarts": naive2["worker_restarts"],
    }
    bars["pass"] = bool(
        bars["ours_reasons_vs_naive_1_worker_c8"] >= 5
        and bars["ours_reasons_vs_naive_2_workers_c8"] >= 2.5
        and bars["reasons_share_of_no_reasons_c8"] >= 0.8
        and bars["ours_p99_c8_ms"] <= 20
        and bars["http_over_in_process_p50"] <= 1.5
        and bars["naive_2_worker_restarts"] == 0
    )
    results["bars"] = bars
    results["server_args"] = args.server_args

    header = (
        f"{'':30s}{'naive, 1 worker':>17s}{'naive, 2 workers':>18s}{f'ours, {args.workers} workers':>17s}"
    )
    print(f"\n{header}   (naive: no reasons; ours: default request = reasons on)")
    for label, (run, key) in (
        ("1-row, 1 client  req/s", ("v1_1row_c1", "requests_per_s")),
        ("1-row, 1 client  p50 ms", ("v1_1row_c1", "p50_ms")),
        ("1-row, 8 clients req/s", ("v1_1row_c8", "requests_per_s")),
        ("1-row, 8 clients p50 ms", ("v1_1row_c8", "p50_ms")),
        ("1-row, 8 clients p99 ms", ("v1_1row_c8", "p99_ms")),
        ("V2 1000-row rows/s", ("v2_1000rows_c2", "rows_per_s")),
    ):
        print(f"{label:30s}{naive1[run][key]:>17,.2f}{naive2[run][key]:>18,.2f}{ours[run][key]:>17,.2f}")
    print(f"ours without reasons, 8 clients: {rps(ours, 'v1_1row_no_reasons_c8'):,.0f} req/s")
    print(f"in-process 1-row p50: {inproc:.3f} ms with reasons, {inproc_plain:.3f} ms without")
    print(
        f"bars: vs naive 1 worker x{bars['ours_reasons_vs_naive_1_worker_c8']} (>= 5), vs naive 2 workers "
        f"x{bars['ours_reasons_vs_naive_2_workers_c8']} (>= 2.5), reasons share "
        f"{bars['reasons_share_of_no_reasons_c8']:.0%} (>= 80 %), p99 {bars['ours_p99_c8_ms']} ms (<= 20), "
        f"HTTP/in-process p50 {bars['http_over_in_process_p50']} (<= 1.5), naive restarts "
        f"{bars['naive_2_worker_restarts']} (0) -> {'PASS' if bars['pass'] else 'FAIL'}"
    )
    out = provenance.write(RESULTS / f"serving{'-' + args.tag if args.tag else ''}.json", results, args)
    print(f"wrote {out}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
