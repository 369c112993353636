"""Batch scoring and PSI at scale: rows/s and peak memory on 1M and 10M synthetic rows.

Writes synthetic german_credit-shaped rows (credit_risk.dataset.synthetic) as Parquet shards of 250k
rows, exports a small wide-and-deep model (throughput does not depend on how well it is trained),
then measures, each in a fresh subprocess so its peak RSS is its own:

- the in-process model throughput: the SavedModel's serving signature on prepared 1024-row
  arrays (the bar: batch scoring should reach >= 50 % of it);
- ``batch_scoring.score`` end to end (read, type, score, write Parquet, publish) per size, with
  peak RSS - flat memory means 10M rows need no more than 1M;
- PSI of score and every feature on the largest size (``monitoring.monitor`` with the scores
  read back from batch scoring, TFDV drift off - timed separately, see validation_benchmark).

Usage (pipeline environment):
  .venvs/pipeline/bin/python benchmarks/batch_scoring_benchmark.py [--rows 1000000 10000000]
      [--workdir /tmp/credit-risk-scoring-benchmark] [--tag NAME]
Prints a table and writes benchmarks/results/batch_scoring[-TAG].json. Needs ~1.5 GB of disk
for 10M rows (inputs + scores); the workdir is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import provenance  # benchmarks/provenance.py: this script's folder is first on sys.path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SPEC = ROOT / "data" / "german_credit.spec.yaml"


def _child(kind: str, workdir: Path, rows: int) -> dict:
    """One measurement in this (fresh) process; returns its numbers incl. peak RSS."""
    import logging

    import numpy as np

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    model_dir = workdir / "model"
    out: dict = {"kind": kind, "rows": rows}
    if kind == "in_process":
        from credit_risk.dataset import data
        from credit_risk.modeling.scoring import ExportedModel
        from credit_risk.spec import contract

        model = ExportedModel(model_dir)
        frame = data.load_dataset(str(SPEC.with_name("german_credit.csv")), model.spec)
        batch = frame.sample(1024, replace=True, random_state=0)
        arrays = contract.frame_to_arrays(batch, model.spec)
        for _ in range(20):  # warm up (tracing)
            model.predict_arrays(arrays)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < 20:
            model.predict_arrays(arrays)
            calls += 1
        seconds = time.perf_counter() - start
        out.update(
            {
                "batch_size": 1024,
                "calls": calls,
                "seconds": seconds,
                "rows_per_second": calls * 1024 / seconds,
            }
        )
    elif kind == "score":
        from credit_risk.release import batch_scoring

        result = batch_scoring.score(
            model_dir, str(workdir / f"rows-{rows}"), str(workdir / f"scores-{rows}")
        )
        out.update(
            {"seconds": result.seconds, "rows_per_second": result.rows_per_second, "parts": len(result.files)}
        )
    elif kind == "psi":
        from credit_risk.release import monitoring

        start = time.perf_counter()
        result = monitoring.monitor(
            model_dir,
            str(SPEC.with_name("german_credit.csv")),
            str(workdir / f"rows-{rows}"),
            scores_uri=str(workdir / f"scores-{rows}"),
            with_tfdv=False,
        )
        seconds = time.perf_counter() - start
        out.update(
            {
                "seconds": seconds,
                "rows_per_second": rows / seconds,
                "score_psi": result.score_psi,
                "max_feature_psi": float(np.max(list(result.feature_psi.values()))),
                "verdict": result.verdict,
            }
        )
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run_child(kind: str, workdir: Path, rows: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--workdir", str(workdir), "--rows", str(rows)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {rows} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _prepare(workdir: Path, sizes: list[int]) -> None:
    from credit_risk.dataset import data, synthetic
    from credit_risk.modeling import training
    from credit_risk.spec import feature_spec

    spec = feature_spec.load(SPEC)
    if not (workdir / "model" / "saved_model.pb").exists():
        frame = data.load_dataset(spec.data_path(), spec)
        training.train_and_export(
            frame, spec, training.TrainingConfig(epochs=3, ensemble_size=1), workdir / "model"
        )
    for rows in sizes:
        target = workdir / f"rows-{rows}"
        if not target.exists():
            synthetic.write_parquet_shards(spec.data_path(), spec, rows, target, rows_per_file=250_000)
        shutil.rmtree(workdir / f"scores-{rows}", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    default_workdir = Path(tempfile.gettempdir()) / "credit-risk-scoring-benchmark"
    parser.add_argument("--workdir", default=str(default_workdir))
    parser.add_argument("--tag", default="")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (data, model, scores)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if args.child:
        print(json.dumps(_child(args.child, workdir, args.rows[0])))
        return
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _prepare(workdir, args.rows)
    in_process = _run_child("in_process", workdir, 0)
    print(f"in-process signature, batch 1024: {in_process['rows_per_second']:,.0f} rows/s")
    runs = []
    for rows in args.rows:
        measured = _run_child("score", workdir, rows)
        measured["share_of_in_process"] = measured["rows_per_second"] / in_process["rows_per_second"]
        runs.append(measured)
        print(
            f"batch scoring {rows:>11,} rows: {measured['rows_per_second']:>10,.0f} rows/s "
            f"({measured['share_of_in_process']:.0%} of in-process), "
            f"peak RSS {measured['peak_rss_mb']:,.0f} MB"
        )
    psi = _run_child("psi", workdir, max(args.rows))
    print(f"PSI (score + features) on {psi['rows']:,} rows: {psi['seconds']:.1f}s "
          f"({psi['rows_per_second']:,.0f} rows/s), peak RSS {psi['peak_rss_mb']:,.0f} MB")  # fmt: skip
    result = {
        "benchmark": "batch_scoring",
        "in_process": in_process,
        "batch_scoring": runs,
        "psi": psi,
        "target_share_of_in_process": 0.5,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    out = provenance.write(RESULTS / f"batch_scoring{'-' + args.tag if args.tag else ''}.json", result, args)
    print(f"-> {out}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
