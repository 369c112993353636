"""History ETL at scale: raw records/s and peak RSS of the whole job for Spark local[1], local[2] and
the pandas reference, at 1M / 10M / 100M raw records.

For each size a seeded raw history is generated once (credit_risk.history.generate), then each
engine runs the full ETL step (``credit_risk.history.etl.run``: read, features, publish the typed
snapshot) in a fresh subprocess. Its peak RSS is the peak of the summed resident memory of that
process and all its descendants (the Spark JVM included), sampled from /proc every 0.2 s.

Each run also records the CPU seconds of its process tree and ``cores_busy`` (CPU seconds / wall
seconds). ``--pin-cores`` runs ``local[N]`` on N cores (``taskset``), as a pod with N CPUs would: on a
2-core machine an unpinned ``local[1]`` already keeps more than one core busy (JVM threads: garbage
collection, JIT, Parquet decoding), so only pinned runs compare 1 core with 2.

Bars (docs/history.md): local[2] >= 1.6x local[1] at 10M; 100M finishes with driver memory <= 4 GB
and peak RSS <= 8 GB (Spark spills; pandas is not run above --pandas-max-records, where it would
need the whole join in memory). Reported, not a bar: 5-fold CV AUC of a gradient-boosted model on
application-only vs application + history features, on the smallest size's output.

Usage (pipeline environment; Java 17+):
  .venvs/pipeline/bin/python benchmarks/history_etl_benchmark.py [--records 1000000 10000000 100000000]
      [--engines pandas local[1] local[2]] [--driver-memory 4g] [--pandas-max-records 10000000]
      [--pin-cores no|yes|both] [--repeat N]
      [--workdir /var/tmp/credit-risk-history-benchmark] [--keep] [--tag NAME]
Writes benchmarks/results/history_etl[-TAG].json. Disk: ~2.5 GB of raw Parquet per 100M records plus
Spark's shuffle spill.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import provenance  # benchmarks/provenance.py: this script's folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int, cpu: dict[int, float]) -> int:
    """Resident bytes of ``pid`` and every descendant (Linux /proc); records each one's CPU seconds so
    far (user + system) in ``cpu``, so the last sample before a process exits is its total."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu[p] = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


def _measure(cmd: list[str]) -> tuple[dict, int, float, float]:
    """Run ``cmd``; its last stdout line (JSON), peak RSS of its process tree, wall seconds and CPU
    seconds of the tree (sampled every 0.2 s: a process's last 0.2 s may be missed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = [0]
    cpu: dict[int, float] = {}

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree(proc.pid, cpu))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), peak[0], time.perf_counter() - start, sum(cpu.values())


def _cores(engine: str) -> int:
    """Cores an engine's tasks use: N for local[N], 1 for pandas."""
    return int(engine[6:-1]) if engine.startswith("local[") else 1


def _child(engine: str, raw: str, out: str, driver_memory: str) -> None:
    import logging

    from credit_risk.history import etl

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if engine == "pandas":
        result = etl.run(raw, out, engine="pandas")
    else:
        result = etl.run(raw, out, engine="spark", spark_master=engine, driver_memory=driver_memory)
    print(json.dumps(result.to_dict()))


def _cv_auc(features_dir: Path, seed: int = 0) -> dict:
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    from credit_risk.history import schema

    frame = pd.read_parquet(features_dir / "data")
    y = frame[schema.LABEL]
    application = [f["name"] for f in schema.APPLICATION_FEATURES if f.get("model_input", True)]
    history = [f.name for f in schema.history_features()]
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    out = {"rows": len(frame), "default_rate": round(float(y.mean()), 4)}
    for name, cols in (("application_only", application), ("application_and_history", application + history)):
        scores = cross_val_score(model, frame[cols], y, cv=5, scoring="roc_auc")
        out[name] = {"auc_mean": round(float(scores.mean()), 4), "auc_std": round(float(scores.std()), 4),
                     "features": len(cols)}  # fmt: skip
    return out


def _median_run(repeats: list[dict]) -> dict:
    """One configuration's record: the repeat with the median wall time, with every repeat's time."""
    ordered = sorted(repeats, key=lambda r: r["seconds"])
    return {**ordered[(len(ordered) - 1) // 2], "repeats": len(repeats),
            "seconds_each": [r["seconds"] for r in repeats]}  # fmt: skip


def _bars(runs: list[dict], driver_memory: str) -> dict:
    def rate(records: int, engine: str, pinned: bool) -> float | None:
        hit = [
            r
            for r in runs
            if r["engine"] == engine
            and r.get("seconds")
            and bool(r.get("pinned_cores")) == pinned
            and abs(r["records"] - records) < 0.1 * records
        ]
        return hit[0]["records_per_second"] if hit else None

    bars = {}
    for pinned, name in ((False, "local2_over_local1_at_10M"), (True, "local2_over_local1_at_10M_pinned")):
        one, two = rate(10_000_000, "local[1]", pinned), rate(10_000_000, "local[2]", pinned)
        if one and two:
            bars[name] = {"ratio": round(two / one, 2), "bar": 1.6, "met": two / one >= 1.6,
                          "pinned_cores": pinned}  # fmt: skip
    big = [r for r in runs if r["records"] >= 90_000_000 and r.get("seconds")]
    if big:
        worst = max(r["peak_rss_gb"] for r in big)
        within = driver_memory.lower() in ("1g", "2g", "3g", "4g")
        bars["100M_peak_rss"] = {"peak_rss_gb": worst, "bar_gb": 8, "driver_memory": driver_memory,
                                 "met": worst <= 8 and within}  # fmt: skip
    return bars


def _run_one(engine: str, pinned: bool, raw: Path, out: Path, manifest: dict, driver_memory: str) -> dict:
    """One ETL run of ``engine`` in a fresh process (on its own cores when ``pinned``), measured."""
    shutil.rmtree(out, ignore_errors=True)
    cores = _cores(engine) if pinned else None
    pin = ["taskset", "-c", f"0-{cores - 1}"] if cores else []
    cmd = [
        *pin,
        sys.executable,
        __file__,
        "--driver-memory",
        driver_memory,
        "--child",
        engine,
        str(raw),
        str(out),
    ]
    result, peak, seconds, cpu = _measure(cmd)
    return {
        "records": manifest["records"], "applications": manifest["rows"]["applications"],
        "engine": engine,
        "seconds": round(seconds, 1), "etl_seconds": result["seconds"],
        "records_per_second": round(manifest["records"] / seconds),
        "peak_rss_gb": round(peak / 1e9, 2),
        "cpu_seconds": round(cpu, 1), "cores_busy": round(cpu / seconds, 2),
        "pinned_cores": cores,
        "driver_memory": driver_memory if engine != "pandas" else None,
    }  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--records", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000])
    p.add_argument("--engines", nargs="+", default=["pandas", "local[1]", "local[2]"])
    p.add_argument("--driver-memory", default="4g", help="Spark driver memory (the bar: <= 4g at 100M)")
    p.add_argument("--pandas-max-records", type=int, default=10_000_000, help="largest size pandas runs on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="runs of each configuration; the median is kept")
    p.add_argument("--workdir", default="/var/tmp/credit-risk-history-benchmark")  # noqa: S108 - scratch, on the CLI
    p.add_argument("--keep", action="store_true", help="keep the generated raw data for the next run")
    p.add_argument("--tag", default="", help="suffix of the result file name")
    p.add_argument(
        "--pin-cores",
        choices=["no", "yes", "both"],
        default="no",
        help="yes: run local[N] on N cores only (taskset), as in a pod with N CPUs; pandas on 1.\n"
        "no: every engine may use every core of the machine (local[1]'s JVM uses more than one).\n"
        "both: each engine runs twice, unpinned then pinned (default: %(default)s)",
    )
    p.add_argument("--child", nargs=3, metavar=("ENGINE", "RAW", "OUT"), help=argparse.SUPPRESS)
    return p


def main() -> int:
    args = _parser().parse_args()
    if args.child:
        _child(*args.child, args.driver_memory)
        return 0
    sys.path.insert(0, str(ROOT))
    from credit_risk.history import generate

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    runs, cv = [], None
    for records in args.records:
        raw = work / f"raw-{records}-seed{args.seed}"
        if not (raw / generate.MANIFEST).exists():
            shutil.rmtree(raw, ignore_errors=True)
            t = time.perf_counter()
            generate.generate(raw, records, seed=args.seed, chunk_customers=50_000)
            print(f"generated {records:,} records in {time.perf_counter() - t:.0f} s", flush=True)
        manifest = json.loads((raw / generate.MANIFEST).read_text())
        pinning = {"no": [False], "yes": [True], "both": [False, True]}[args.pin_cores]
        # rounds of every configuration in turn, so a drift of the machine's speed hits each alike
        measured: dict[tuple[str, bool], list[dict]] = {}
        configs = [(e, p) for _ in range(args.repeat) for e in args.engines for p in pinning]
        for engine, pinned in configs:
            if engine == "pandas" and records > args.pandas_max_records:
                skip = {
                    "records": manifest["records"],
                    "engine": engine,
                    "skipped": "above --pandas-max-records",
                }
                if skip not in runs:
                    runs.append(skip)
                continue
            out = work / f"features-{records}-{engine.replace('[', '').replace(']', '')}{'-pinned' * pinned}"
            run = _run_one(engine, pinned, raw, out, manifest, args.driver_memory)
            measured.setdefault((engine, pinned), []).append(run)
            print(json.dumps(run), flush=True)
            if cv is None and records == min(args.records) and engine != "pandas":
                cv = _cv_auc(out, args.seed)
                print("cv", json.dumps(cv), flush=True)
            shutil.rmtree(out, ignore_errors=True)
        runs += [_median_run(repeats) for repeats in measured.values()]
        if not args.keep:
            shutil.rmtree(raw, ignore_errors=True)

    bars = _bars(runs, args.driver_memory)
    result = {"runs": runs, "bars": bars, "cv_auc": cv}
    path = provenance.write(RESULTS / f"history_etl{'-' + args.tag if args.tag else ''}.json", result, args)
    print(json.dumps(bars, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
