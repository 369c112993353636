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


# --- faults: a proxy in front of the real emulator injects a bounded number of failures -----------


@pytest.fixture()
def faulty_gcs(gcs, monkeypatch):
    """(client, bucket, proxy): storage talks to the emulator through tests/fault_proxy.py."""
    import os

    from tests.fault_proxy import fault_proxy

    client, bucket = gcs
    with fault_proxy(os.environ["STORAGE_EMULATOR_HOST"]) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        monkeypatch.setattr(storage.gcs, "RETRY_DEADLINE_SECONDS", 20.0)
        yield client, bucket, proxy


def _random_file(path, size, seed=0):
    import numpy as np

    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


@pytest.mark.parametrize("kind", ["503", "reset", "truncate"])
def test_downloads_survive_injected_faults(faulty_gcs, tmp_path, kind):
    client, bucket, proxy = faulty_gcs
    source = _random_file(tmp_path / "blob.bin", 300_000)
    client.bucket(bucket).blob(f"faults/{kind}.bin").upload_from_filename(str(source))
    uri = f"gs://{bucket}/faults/{kind}.bin"
    rule = proxy.inject(kind, count=2, method="GET", path_contains="alt=media")
    (tmp_path / "out").mkdir()
    copy = storage.local_copy(uri, str(tmp_path / "out"))
    assert Path(copy).read_bytes() == source.read_bytes()
    assert rule.injected == 2, proxy.seen
    rule = proxy.inject(kind, count=2, method="GET", path_contains="alt=media")
    assert storage.read_bytes(uri) == source.read_bytes()
    assert rule.injected == 2
    rule = proxy.inject(kind, count=2, method="GET", path_contains="alt=media")
    with storage.open_read(uri) as stream:
        assert stream.read() == source.read_bytes()
    assert rule.injected == 2


@pytest.mark.parametrize("kind", ["503", "reset"])
def test_uploads_survive_faults_including_mid_resumable_upload(faulty_gcs, tmp_path, monkeypatch, kind):
    client, bucket, proxy = faulty_gcs
    monkeypatch.setattr(storage.gcs, "UPLOAD_CHUNK_BYTES", 1024 * 1024)
    small = _random_file(tmp_path / "small.bin", 1000, seed=1)  # multipart: one request
    big = _random_file(tmp_path / "big.bin", 9 * 1024 * 1024 + 5, seed=2)  # resumable: 10 chunk PUTs
    rule = proxy.inject(kind, count=2, path_contains="/upload/")
    storage.upload_file(small, f"gs://{bucket}/up/{kind}/small.bin")
    assert rule.injected == 2
    chunk_rule = proxy.inject(kind, count=2, method="PUT", path_contains="/upload/")  # chunk PUTs
    storage.upload_file(big, f"gs://{bucket}/up/{kind}/big.bin")
    assert chunk_rule.injected == 2, proxy.seen[-8:]
    got = client.bucket(bucket).blob(f"up/{kind}/big.bin").download_as_bytes()
    assert got == big.read_bytes()
    assert client.bucket(bucket).blob(f"up/{kind}/small.bin").download_as_bytes() == small.read_bytes()


def test_publish_survives_faults_and_a_failed_publish_is_never_accepted(faulty_gcs, tmp_path, monkeypatch):
    client, bucket, proxy = faulty_gcs
    rule = proxy.inject("503", count=3, path_contains="/upload/")
    assert storage.publish_dir(_model(tmp_path), f"gs://{bucket}/pub/ok") is True
    assert rule.injected == 3
    assert storage.is_published(f"gs://{bucket}/pub/ok")
    storage.download_published(f"gs://{bucket}/pub/ok", tmp_path / "ok")

    # after the first file, uploads keep failing past the retry deadline: the publish fails part-way
    monkeypatch.setattr(storage.gcs, "RETRY_DEADLINE_SECONDS", 1.0)
    proxy.inject("503", count=10_000, path_contains="/upload/", skip=1)
    with pytest.raises(Exception, match="503"):
        storage.publish_dir(_model(tmp_path, b"v2"), f"gs://{bucket}/pub/broken")
    proxy.clear()
    names = [b.name for b in client.list_blobs(bucket, prefix="pub/broken/")]
    assert "pub/broken/saved_model.pb" in names  # half written...
    assert not storage.is_published(f"gs://{bucket}/pub/broken")  # ...and refused by every reader
    with pytest.raises(storage.PublishError, match="missing"):
        storage.download_published(f"gs://{bucket}/pub/broken", tmp_path / "broken")
    with pytest.raises(storage.PublishError, match="interrupted or failed"):
        storage.require_published(f"gs://{bucket}/pub/broken")


def test_a_corrupted_object_is_detected_by_checksum(faulty_gcs, tmp_path):
    client, bucket, proxy = faulty_gcs
    source = _random_file(tmp_path / "blob.bin", 50_000, seed=3)
    client.bucket(bucket).blob("corrupt/blob.bin").upload_from_filename(str(source))
    uri = f"gs://{bucket}/corrupt/blob.bin"
    proxy.inject("corrupt", count=100, method="GET", path_contains="alt=media")
    with pytest.raises(storage.ChecksumError, match="crc32c"):
        storage.read_bytes(uri)
    (tmp_path / "out").mkdir()
    with pytest.raises(storage.ChecksumError, match="crc32c"):
        storage.local_copy(uri, str(tmp_path / "out"))
    assert not (tmp_path / "out" / "blob.bin").exists()  # no corrupted file left behind
    with pytest.raises(storage.ChecksumError, match="streamed bytes"), storage.open_read(uri) as stream:
        stream.read()


def test_a_corrupted_upload_is_detected_and_discarded(faulty_gcs, tmp_path):
    """The proxy flips a byte in the middle of the upload's body: the server stores other bytes,
    so its crc32c no longer matches the local file's and the upload is refused and deleted."""
    client, bucket, proxy = faulty_gcs
    source = _random_file(tmp_path / "blob.bin", 5_000, seed=4)
    proxy.inject("corrupt_request", count=1, method="POST", path_contains="/upload/")
    with pytest.raises(storage.ChecksumError, match="upload discarded"):
        storage.upload_file(source, f"gs://{bucket}/corrupt-up/blob.bin")
    assert not client.bucket(bucket).blob("corrupt-up/blob.bin").exists()


def test_directory_writer_streams_files_and_publishes_only_on_commit(faulty_gcs, tmp_path, monkeypatch):
    """Files leave local disk as they are added; a failure part-way leaves a prefix no reader
    accepts, and the next writer of that target replaces it."""
    client, bucket, proxy = faulty_gcs
    target = f"gs://{bucket}/stream/run-1"
    monkeypatch.setattr(storage.gcs, "RETRY_DEADLINE_SECONDS", 1.0)
    proxy.inject("503", count=10_000, path_contains="/upload/", skip=1)
    with pytest.raises(Exception, match="503"), storage.DirectoryWriter(target) as writer:
        for i in range(3):
            part = _random_file(tmp_path / f"p{i}", 1000, seed=i)
            writer.add(part, f"part-{i}.bin")
            assert not part.exists()  # consumed: uploaded, not kept locally
        writer.commit()
    proxy.clear()
    assert [b.name for b in client.list_blobs(bucket, prefix="stream/run-1/")] == ["stream/run-1/part-0.bin"]
    assert not storage.is_published(target)
    with storage.DirectoryWriter(target) as writer:  # a rerun: leftovers replaced
        for i in range(2):
            writer.add(_random_file(tmp_path / f"q{i}", 500, seed=10 + i), f"part-{i}.bin")
        writer.commit()
    assert storage.is_published(target)
    got = storage.download_published(target, tmp_path / "down")  # sha256 of every file checked
    assert sorted(p.name for p in got.iterdir()) == ["part-0.bin", "part-1.bin"]
    with pytest.raises(storage.PublishError, match="already published"):
        storage.DirectoryWriter(target)


def test_directory_writer_locally_stages_beside_the_target_and_cleans_up(tmp_path):
    target = tmp_path / "out" / "scores"
    with pytest.raises(RuntimeError, match="boom"), storage.DirectoryWriter(str(target)) as writer:
        writer.add(_random_file(tmp_path / "a", 100), "part-0.bin")
        assert list((tmp_path / "out").glob(".scores.partial-*"))  # staged, hidden
        raise RuntimeError("boom")
    assert not target.exists() and not list((tmp_path / "out").glob(".scores.partial-*"))
    with storage.DirectoryWriter(str(target)) as writer:
        writer.add(_random_file(tmp_path / "b", 100), "nested/part-0.bin")
        writer.commit()
    assert storage.is_published(str(target)) and (target / "nested" / "part-0.bin").exists()
