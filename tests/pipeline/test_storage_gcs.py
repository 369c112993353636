"""credit_risk.storage against a real GCS emulator (fake-gcs-server) on 127.0.0.1."""

import json
from pathlib import Path

import pytest

from credit_risk import storage


def _model(tmp_path, weights=b"weights"):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True, exist_ok=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "w").write_bytes(weights)
    return model


def test_publish_to_gcs_is_immutable_and_idempotent(gcs, tmp_path):
    client, bucket = gcs
    target = f"gs://{bucket}/serving/pd/m-1"
    assert storage.publish_dir(_model(tmp_path), target) is True
    names = sorted(b.name for b in client.list_blobs(bucket, prefix="serving/pd/m-1/"))
    assert names == [
        "serving/pd/m-1/_PUBLISHED.json",
        "serving/pd/m-1/saved_model.pb",
        "serving/pd/m-1/variables/w",
    ]
    marker = json.loads(storage.read_text(f"{target}/_PUBLISHED.json"))
    assert set(marker["files"]) == {"saved_model.pb", "variables/w"}
    assert storage.publish_dir(_model(tmp_path), target) is False  # same bytes: nothing to do
    with pytest.raises(storage.PublishError, match="never overwritten"):
        storage.publish_dir(_model(tmp_path, b"other"), target)
    assert client.bucket(bucket).blob("serving/pd/m-1/variables/w").download_as_bytes() == b"weights"


def test_leftovers_of_an_interrupted_gcs_publish_are_replaced(gcs, tmp_path):
    client, bucket = gcs
    client.bucket(bucket).blob("serving/pd/m-2/variables/half").upload_from_string(b"partial")  # no marker
    assert storage.publish_dir(_model(tmp_path), f"gs://{bucket}/serving/pd/m-2") is True
    names = sorted(b.name for b in client.list_blobs(bucket, prefix="serving/pd/m-2/"))
    assert "serving/pd/m-2/variables/half" not in names and "serving/pd/m-2/_PUBLISHED.json" in names


def test_gcs_text_and_local_copy_round_trip(gcs, tmp_path):
    client, bucket = gcs
    client.bucket(bucket).blob("specs/a.yaml").upload_from_string("label: y\n")
    assert storage.read_text(f"gs://{bucket}/specs/a.yaml") == "label: y\n"
    copy = storage.local_copy(f"gs://{bucket}/specs/a.yaml", str(tmp_path))
    assert Path(copy).read_text() == "label: y\n"
    with pytest.raises(FileNotFoundError):
        storage.read_text(f"gs://{bucket}/specs/missing.yaml")
