"""Train and export a small model in the PIPELINE environment (TF 2.16) for the serving tests.

Usage: python -m tests.make_serving_fixture OUT_DIR
Writes OUT_DIR/model (SavedModel + sidecars) and OUT_DIR/expected.json: a V1 request body built
from held-out rows (with nulls) and the PDs the training side computes for it.
"""

import json
import sys
from pathlib import Path

from credit_risk.dataset import data
from credit_risk.modeling import training
from credit_risk.modeling.scoring import ExportedModel
from credit_risk.spec import contract, feature_spec
from tests.helpers import CREDIT_CSV, CREDIT_SPEC


def main(out: Path) -> None:
    spec = feature_spec.load(CREDIT_SPEC)
    frame = data.load_dataset(str(CREDIT_CSV), spec)
    train, held_out = data.split_train_eval(frame, spec, 0.25, seed=5)
    model = training.train(train, spec, training.TrainingConfig(epochs=3, early_stopping_patience=2)).model
    info = {"fixture": True, contract.REASON_BASELINE_KEY: training.reason_baseline(train, spec)}
    scale = training.master_scale(spec, model, train)
    assert scale is not None, "the fixture's spec must declare a master scale"
    info[contract.MASTER_SCALE_KEY] = scale.to_dict()
    training.export(model, spec, out / "model", info)
    rows = held_out.head(40)
    instances = data.instances(rows, spec)
    assert any(v is None for inst in instances for v in inst.values()), "fixture must include nulls"
    expected = {
        "instances": instances,
        "pd_keras": training.predict_frame(model, rows, spec).tolist(),
        "pd_savedmodel": ExportedModel(out / "model").predict_frame(rows).tolist(),
    }
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
