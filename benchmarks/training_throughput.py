"""Training throughput: rows/s per epoch of the streamed wide-and-deep training, and its scaling.

Writes synthetic german_credit-shaped rows (credit_risk.dataset.synthetic: real rows resampled, numerics
jittered) as Parquet shards, then trains from them with the production code path
(``training_data.FileSource`` -> tf.data -> the custom distributed loop) at batch 1024 for a few
epochs. Reports, per size: rows/s per epoch (train steps only; the first epoch includes tracing,
so the steady-state figure is the median of the later epochs), the analyze pass, and seconds per
epoch - which should grow linearly with rows (100k -> 1M: ~10x).

Usage (pipeline environment):
  .venvs/pipeline/bin/python benchmarks/training_throughput.py [--rows 100000 1000000]
      [--epochs 3] [--batch-size 1024] [--dataset german_credit] [--tag NAME]
Prints a table and writes benchmarks/results/training_throughput[-TAG].json.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import provenance  # benchmarks/provenance.py: this script's folder is first on sys.path

from credit_risk.dataset import synthetic
from credit_risk.modeling import training, training_data
from credit_risk.spec import feature_spec

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_ROWS_PER_SECOND = 100_000


def measure(spec_path: Path, rows: int, epochs: int, batch_size: int, workdir: Path) -> dict:
    spec = feature_spec.load(spec_path)
    shards = workdir / f"rows-{rows}"
    synthetic.write_parquet_shards(spec.data_path(), spec, rows, shards, rows_per_file=250_000)
    source = training_data.FileSource(str(shards))
    t0 = time.perf_counter()
    training_data.analyze(source, spec, 0.1, seed=1)
    analyze_seconds = time.perf_counter() - t0
    config = training.config_from_overrides(
        [
            f"epochs={epochs}",
            f"batch_size={batch_size}",
            "validation_fraction=0.1",
            f"early_stopping_patience={epochs}",
        ]
    )
    fitted = training.train(source, spec, config)
    per_epoch = fitted.epoch_fit_seconds
    steady = statistics.median(per_epoch[1:]) if len(per_epoch) > 1 else per_epoch[0]
    fit_rows = fitted.profile.fit_rows
    return {
        "rows": rows,
        "fit_rows": fit_rows,
        "batch_size": batch_size,
        "epochs": len(per_epoch),
        "epoch_fit_seconds": per_epoch,
        "steady_epoch_seconds": steady,
        "rows_per_second": fit_rows / steady,
        "first_epoch_rows_per_second": fit_rows / per_epoch[0],
        "analyze_seconds": analyze_seconds,
        "analyze_rows_per_second": rows / analyze_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dataset", default="german_credit")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    spec_path = ROOT / "data" / f"{args.dataset}.spec.yaml"
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        runs = [measure(spec_path, n, args.epochs, args.batch_size, Path(tmp)) for n in sorted(args.rows)]
    small, large = runs[0], runs[-1]
    result = {
        "dataset": args.dataset,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "runs": runs,
        "epoch_time_ratio": large["steady_epoch_seconds"] / small["steady_epoch_seconds"],
        "rows_ratio": large["fit_rows"] / small["fit_rows"],
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
        "meets_target": all(r["rows_per_second"] >= TARGET_ROWS_PER_SECOND for r in runs),
    }
    path = provenance.write(
        RESULTS / f"training_throughput{'-' + args.tag if args.tag else ''}.json", result, args
    )
    header = ("rows", "rows/s (steady)", "1st epoch rows/s", "s/epoch", "analyze rows/s")
    print("\n{:>10} {:>16} {:>17} {:>8} {:>15}".format(*header))
    for r in runs:
        print(
            f"{r['rows']:>10,} {r['rows_per_second']:>16,.0f} {r['first_epoch_rows_per_second']:>17,.0f} "
            f"{r['steady_epoch_seconds']:>8.2f} {r['analyze_rows_per_second']:>15,.0f}"
        )
    print(
        f"epoch time x{result['epoch_time_ratio']:.1f} for rows x{result['rows_ratio']:.1f} "
        f"(linear = equal); target >= {TARGET_ROWS_PER_SECOND:,} rows/s: "
        f"{'met' if result['meets_target'] else 'NOT met'}\n-> {path}"
    )


if __name__ == "__main__":
    main()
