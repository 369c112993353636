"""Cross-validated comparison of the wide-and-deep model with the baselines of data/PROVENANCE.md.

Same folds for every model: RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=42);
same inputs for every model: the feature spec's model inputs. The wide-and-deep model trains with
the pipeline's defaults (credit_risk.training.TrainingConfig()).

Usage (pipeline environment):
  .venvs/pipeline/bin/python benchmarks/cv_benchmark.py [--dataset german_credit credit_data]
      [--models wide_deep logreg xgboost lightgbm] [--splits 5] [--repeats 3]
Prints a table and writes benchmarks/results/cv_<dataset>.json (per-fold values, timings).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from credit_risk import data, feature_spec, metrics, training

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("wide_deep", "logreg", "xgboost", "lightgbm")
log = logging.getLogger("cv_benchmark")


def baseline(name: str, spec):
    """The PROVENANCE.md baselines; one-hot categoricals, numerics as they are (NaN kept for the
    GBMs, median-imputed and standardized for the logistic regression)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [f.name for f in spec.model_features if not f.is_numeric]
    nums = [f.name for f in spec.model_features if f.is_numeric]
    onehot = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    if name == "logreg":
        scaled = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        pre = ColumnTransformer([("cat", onehot, cats), ("num", scaled, nums)])
        return make_pipeline(pre, LogisticRegression(C=1.0, max_iter=5000))
    pre = ColumnTransformer([("cat", onehot, cats), ("num", "passthrough", nums)])
    if name == "xgboost":
        from xgboost import XGBClassifier

        gbm = XGBClassifier(
            max_depth=3,
            learning_rate=0.05,
            n_estimators=400,
            subsample=0.8,
            colsample_bytree=0.8,
            n_jobs=2,
            random_state=42,
            verbosity=0,
        )
        return make_pipeline(pre, gbm)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        gbm = LGBMClassifier(
            max_depth=4,
            num_leaves=15,
            learning_rate=0.05,
            n_estimators=400,
            bagging_fraction=0.8,
            bagging_freq=1,
            n_jobs=2,
            random_state=42,
            verbose=-1,
        )
        return make_pipeline(pre, gbm)
    raise ValueError(name)


def run(
    dataset: str, models: list[str], splits: int, repeats: int, config: training.TrainingConfig | None = None
) -> dict:
    from sklearn.model_selection import RepeatedStratifiedKFold

    spec = feature_spec.load(ROOT / "data" / f"{dataset}.spec.yaml")
    frame = data.load_dataset(spec.data_path(), spec)
    y = frame[spec.label].to_numpy()
    folds = list(RepeatedStratifiedKFold(n_splits=splits, n_repeats=repeats, random_state=42).split(frame, y))
    inputs = [f.name for f in spec.model_features]
    out: dict = {
        "dataset": dataset,
        "rows": len(frame),
        "inputs": inputs,
        "folds": len(folds),
        "cv": f"RepeatedStratifiedKFold(n_splits={splits}, n_repeats={repeats}, random_state=42)",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "models": {},
    }
    for name in models:
        aucs, briers, seconds = [], [], []
        for i, (tr, te) in enumerate(folds):
            start = time.perf_counter()
            train, test = frame.iloc[tr].reset_index(drop=True), frame.iloc[te].reset_index(drop=True)
            if name == "wide_deep":
                model = training.train(train, spec, config or training.TrainingConfig()).model
                pd_ = training.predict_frame(model, test, spec)
            else:
                est = baseline(name, spec).fit(train[inputs], train[spec.label])
                pd_ = est.predict_proba(test[inputs])[:, 1]
            seconds.append(time.perf_counter() - start)
            aucs.append(metrics.roc_auc_score(test[spec.label], pd_))
            briers.append(metrics.brier_score_loss(test[spec.label], np.clip(pd_, 0, 1)))
            log.info(
                "%s %s fold %d/%d: AUC %.4f Brier %.4f (%.1fs)",
                dataset,
                name,
                i + 1,
                len(folds),
                aucs[-1],
                briers[-1],
                seconds[-1],
            )
        out["models"][name] = {
            "auc_mean": float(np.mean(aucs)),
            "auc_std": float(np.std(aucs, ddof=1)),
            "brier_mean": float(np.mean(briers)),
            "brier_std": float(np.std(briers, ddof=1)),
            "seconds_per_fold": float(np.mean(seconds)),
            "auc": aucs,
            "brier": briers,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", nargs="+", default=["german_credit", "credit_data"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=JSON",
        help="override wide-and-deep training defaults, e.g. l2 sweep: model.l2=0.01 epochs=300",
    )
    parser.add_argument("--tag", default="", help="suffix for the result file (sweeps)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for dataset in args.dataset:
        result = run(
            dataset, args.models, args.splits, args.repeats, training.config_from_overrides(args.set)
        )
        path = RESULTS / f"cv_{dataset}{'_' + args.tag if args.tag else ''}.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"\n{dataset} ({result['rows']} rows, {result['folds']} folds, {len(result['inputs'])} inputs)")
        print(f"{'model':<10} {'AUC':>15} {'Brier':>15} {'s/fold':>7}")
        for name, r in result["models"].items():
            auc = f"{r['auc_mean']:.4f} ± {r['auc_std']:.3f}"
            brier = f"{r['brier_mean']:.4f} ± {r['brier_std']:.3f}"
            print(f"{name:<10} {auc:>15} {brier:>15} {r['seconds_per_fold']:7.1f}")
        print(f"-> {path}")


if __name__ == "__main__":
    main()
