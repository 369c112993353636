"""credit_risk.storage against a real S3 API (moto's server) on 127.0.0.1, with and without the
fault proxy in front of it: the twin of test_storage_gcs.py, plus what moto really checks."""

import base64
import json
import zlib
from pathlib import Path

import pytest

from credit_risk import storage


def _model(tmp_path, weights=b"weights"):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True, exist_ok=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "w").write_bytes(weights)
    return model


def _random_file(path, size, seed=0):
    import numpy as np

    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def _keys(client, bucket, prefix):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_publish_to_s3_is_immutable_and_idempotent(s3, tmp_path):
    client, bucket = s3
    target = f"s3://{bucket}/serving/pd/m-1"
    assert storage.publish_dir(_model(tmp_path), target) is True
    assert _keys(client, bucket, "serving/pd/m-1/") == [
        "serving/pd/m-1/_PUBLISHED.json", "serving/pd/m-1/saved_model.pb", "serving/pd/m-1/variables/w"
    ]  # fmt: skip
    marker = json.loads(storage.read_text(f"{target}/_PUBLISHED.json"))
    assert set(marker["files"]) == {"saved_model.pb", "variables/w"}
    assert storage.publish_dir(_model(tmp_path), target) is False  # same bytes: nothing to do
    with pytest.raises(storage.PublishError, match="never overwritten"):
        storage.publish_dir(_model(tmp_path, b"other"), target)
    assert client.get_object(Bucket=bucket, Key="serving/pd/m-1/variables/w")["Body"].read() == b"weights"
    got = storage.download_published(target, tmp_path / "down")
    assert (got / "variables" / "w").read_bytes() == b"weights"


def test_leftovers_of_an_interrupted_s3_publish_are_replaced(s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="serving/pd/m-2/variables/half", Body=b"partial")  # no marker
    assert not storage.is_published(f"s3://{bucket}/serving/pd/m-2")
    assert storage.publish_dir(_model(tmp_path), f"s3://{bucket}/serving/pd/m-2") is True
    keys = _keys(client, bucket, "serving/pd/m-2/")
    assert "serving/pd/m-2/variables/half" not in keys and "serving/pd/m-2/_PUBLISHED.json" in keys


def test_the_publish_marker_is_create_only(s3, tmp_path):
    """Of two publishers of one version, the second marker write loses (If-None-Match: *)."""
    _, bucket = s3
    uri = f"s3://{bucket}/race/m-1/_PUBLISHED.json"
    storage.s3.create_only(uri, '{"files": {"a": "1"}}')
    storage.s3.create_only(uri, '{"files": {"a": "1"}}')  # our own retried write: idempotent
    with pytest.raises(storage.PublishError, match="another publisher"):
        storage.s3.create_only(uri, '{"files": {"a": "2"}}')
    assert json.loads(storage.read_text(uri)) == {"files": {"a": "1"}}


def test_s3_text_listing_and_local_copy_round_trip(s3, tmp_path):
    client, bucket = s3
    client.put_object(Bucket=bucket, Key="specs/a.yaml", Body=b"label: y\n")  # not ours: no sha256
    assert storage.read_text(f"s3://{bucket}/specs/a.yaml") == "label: y\n"
    copy = storage.local_copy(f"s3://{bucket}/specs/a.yaml", str(tmp_path))
    assert Path(copy).read_text() == "label: y\n"
    storage.write_text(f"s3://{bucket}/snap/part-0.csv", "a\n1\n")
    storage.write_text(f"s3://{bucket}/snap/part-1.csv", "a\n2\n")
    storage.write_text(f"s3://{bucket}/snap/notes.txt", "x")
    assert storage.list_files(f"s3://{bucket}/snap") == [
        f"s3://{bucket}/snap/part-0.csv",
        f"s3://{bucket}/snap/part-1.csv",
    ]
    assert storage.list_files(f"s3://{bucket}/snap/part-1*") == [f"s3://{bucket}/snap/part-1.csv"]
    with pytest.raises(FileNotFoundError, match="no data files"):
        storage.list_files(f"s3://{bucket}/nothing-here")


def test_missing_objects_buckets_and_refused_credentials_name_the_uri(s3, monkeypatch):
    _, bucket = s3
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/specs/missing.yaml"):
        storage.read_text(f"s3://{bucket}/specs/missing.yaml")
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        storage.read_text("s3://no-such-bucket/a.csv")
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        storage.list_files("s3://no-such-bucket/snap/")
    assert not storage.exists(f"s3://{bucket}/specs/missing.yaml")
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        storage.write_text("s3://no-such-bucket/out/a.json", "{}")


# --- integrity: what moto checks, and what we check ourselves -----------------------------------


def test_moto_ignores_request_checksums_so_the_etag_check_is_what_holds(s3):
    """Measured, not assumed: moto 5 stores a body whose declared CRC32 is wrong (real S3 answers
    400 BadDigest). It does compute the ETag from the bytes it received - which is why upload_file
    compares the stored ETag with the local bytes' (docs/storage.md)."""
    client, bucket = s3
    wrong = base64.b64encode(zlib.crc32(b"hellO").to_bytes(4, "big")).decode()
    client.put_object(Bucket=bucket, Key="probe/wrong-crc", Body=b"hello", ChecksumCRC32=wrong)
    head = client.head_object(Bucket=bucket, Key="probe/wrong-crc")
    import hashlib

    assert head["ETag"].strip('"') == hashlib.md5(b"hello").hexdigest()


def test_multipart_etag_is_predicted_exactly(s3, tmp_path, monkeypatch):
    client, bucket = s3
    monkeypatch.setattr(storage.s3, "UPLOAD_CHUNK_BYTES", 5 * 1024 * 1024)
    big = _random_file(tmp_path / "big.bin", 11 * 1024 * 1024 + 7, seed=5)
    storage.upload_file(big, f"s3://{bucket}/mp/big.bin")
    head = client.head_object(Bucket=bucket, Key="mp/big.bin")
    assert head["ETag"].strip('"') == storage.s3.expected_etag(big, 5 * 1024 * 1024)
    assert head["ETag"].strip('"').endswith("-3")
    assert head["Metadata"]["sha256"] == storage.base.sha256_file(big)
    assert storage.read_bytes(f"s3://{bucket}/mp/big.bin") == big.read_bytes()


def test_s3_reads_seek_so_parquet_opens_and_a_sequential_read_is_still_verified(s3, tmp_path):
    """pyarrow opens Parquet from its footer (seek to the end first) and batch scoring sizes a CSV
    by seeking to its end: an S3 stream must seek. Random access stops the whole-object check;
    a sequential read of the same object is still verified."""
    import pandas as pd

    from credit_risk.dataset import data_stats

    client, bucket = s3
    frame = pd.DataFrame({"a": range(50_000), "b": [f"r{i}" for i in range(50_000)]})
    frame.to_parquet(tmp_path / "part.parquet")
    storage.upload_file(tmp_path / "part.parquet", f"s3://{bucket}/pq/part.parquet")
    with storage.open_read(f"s3://{bucket}/pq/part.parquet") as stream:
        assert data_stats.parquet_file(stream, "x").read().to_pandas().equals(frame)
    data = (tmp_path / "part.parquet").read_bytes()
    with storage.open_read(f"s3://{bucket}/pq/part.parquet") as stream:
        assert stream.read(10) == data[:10] and stream.tell() == 10
        assert stream.seek(-4, 2) == len(data) - 4 and stream.read() == data[-4:]
        assert stream.seek(100) == 100 and stream.read(50) == data[100:150] and stream.tell() == 150
        assert stream.seek(7, 1) == 157 and stream.read(3) == data[157:160]
    with (
        pytest.raises(ValueError, match="negative seek"),
        storage.open_read(f"s3://{bucket}/pq/part.parquet") as s,
    ):
        s.seek(-1)
    # the same object read front to back is checked against its sha256: a wrong stored sum fails
    source = {"Bucket": bucket, "Key": "pq/part.parquet"}
    client.copy_object(Bucket=bucket, Key="pq/tampered.parquet", CopySource=source,
                       Metadata={"sha256": "0" * 64}, MetadataDirective="REPLACE")  # fmt: skip
    with pytest.raises(storage.ChecksumError, match="fail the object's sha256"):
        storage.read_bytes(f"s3://{bucket}/pq/tampered.parquet")


# --- faults: the proxy in front of the real server injects a bounded number of failures ---------


@pytest.fixture()
def faulty_s3(s3, monkeypatch):
    """(client, bucket, proxy): storage talks to moto through tests/fault_proxy.py."""
    import os

    from tests.fault_proxy import fault_proxy

    client, bucket = s3
    with fault_proxy(os.environ["AWS_ENDPOINT_URL_S3"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        monkeypatch.setattr(storage.s3, "READ_CHUNK_BYTES", 64 * 1024)  # several ranged GETs per object
        yield client, bucket, proxy


@pytest.mark.parametrize("kind", ["503", "reset", "truncate"])
def test_downloads_survive_injected_faults(faulty_s3, tmp_path, kind):
    _, bucket, proxy = faulty_s3
    source = _random_file(tmp_path / "blob.bin", 300_000)
    storage.upload_file(source, f"s3://{bucket}/faults/{kind}.bin")
    uri = f"s3://{bucket}/faults/{kind}.bin"
    for read in (
        lambda: Path(storage.local_copy(uri, str(tmp_path / "out"))).read_bytes(),
        lambda: storage.read_bytes(uri),
        lambda: storage.open_read(uri).read(),
    ):
        (tmp_path / "out").mkdir(exist_ok=True)
        rule = proxy.inject(kind, count=2, method="GET", path_contains=f"faults/{kind}.bin", skip=1)
        assert read() == source.read_bytes()
        assert rule.injected == 2, proxy.seen[-10:]


def test_a_body_that_keeps_breaking_off_fails_naming_the_range(faulty_s3, tmp_path, monkeypatch):
    _, bucket, proxy = faulty_s3
    monkeypatch.setattr(storage.s3, "STREAM_ATTEMPTS", 2)
    storage.upload_file(_random_file(tmp_path / "b.bin", 100_000), f"s3://{bucket}/faults/broken.bin")
    proxy.inject("truncate", count=100, method="GET", path_contains="faults/broken.bin", skip=1)
    with pytest.raises(ConnectionError, match=r"bytes 65536-99999 broke off 2 times"):
        storage.read_bytes(f"s3://{bucket}/faults/broken.bin")


@pytest.mark.parametrize("kind", ["503", "reset"])
def test_uploads_survive_faults_including_mid_multipart_upload(faulty_s3, tmp_path, monkeypatch, kind):
    client, bucket, proxy = faulty_s3
    monkeypatch.setattr(storage.s3, "UPLOAD_CHUNK_BYTES", 5 * 1024 * 1024)
    small = _random_file(tmp_path / "small.bin", 1000, seed=1)  # one PUT
    big = _random_file(tmp_path / "big.bin", 11 * 1024 * 1024 + 5, seed=2)  # multipart: 3 part PUTs
    rule = proxy.inject(kind, count=2, method="PUT", path_contains=f"up/{kind}/small.bin")
    storage.upload_file(small, f"s3://{bucket}/up/{kind}/small.bin")
    assert rule.injected == 2
    part_rule = proxy.inject(kind, count=2, method="PUT", path_contains="partNumber=")
    storage.upload_file(big, f"s3://{bucket}/up/{kind}/big.bin")
    assert part_rule.injected == 2, proxy.seen[-8:]
    assert client.get_object(Bucket=bucket, Key=f"up/{kind}/big.bin")["Body"].read() == big.read_bytes()
    assert client.get_object(Bucket=bucket, Key=f"up/{kind}/small.bin")["Body"].read() == small.read_bytes()


def test_a_failed_s3_publish_is_never_accepted(faulty_s3, tmp_path, monkeypatch):
    client, bucket, proxy = faulty_s3
    rule = proxy.inject("503", count=3, method="PUT")
    assert storage.publish_dir(_model(tmp_path), f"s3://{bucket}/pub/ok") is True
    assert rule.injected == 3
    storage.download_published(f"s3://{bucket}/pub/ok", tmp_path / "ok")

    # after the first file, uploads keep failing past the retries: the publish fails part-way
    monkeypatch.setattr(storage.s3, "MAX_ATTEMPTS", 2)
    proxy.inject("503", count=10_000, method="PUT", skip=1)
    with pytest.raises(Exception, match="503"):
        storage.publish_dir(_model(tmp_path, b"v2"), f"s3://{bucket}/pub/broken")
    proxy.clear()
    assert _keys(client, bucket, "pub/broken/") == ["pub/broken/saved_model.pb"]  # half written...
    assert not storage.is_published(f"s3://{bucket}/pub/broken")  # ...and refused by every reader
    with pytest.raises(storage.PublishError, match="missing"):
        storage.download_published(f"s3://{bucket}/pub/broken", tmp_path / "broken")


def test_a_corrupted_download_is_detected(faulty_s3, tmp_path):
    """One flipped byte in the response body: the sha256 we stored (ours), or the MD5 ETag (an
    object someone else wrote), no longer matches; no corrupted file is left behind."""
    client, bucket, proxy = faulty_s3
    source = _random_file(tmp_path / "blob.bin", 50_000, seed=3)
    storage.upload_file(source, f"s3://{bucket}/corrupt/ours.bin")
    client.put_object(Bucket=bucket, Key="corrupt/theirs.bin", Body=source.read_bytes())
    proxy.inject("corrupt", count=100, method="GET", path_contains="corrupt/")
    with pytest.raises(storage.ChecksumError, match="sha256"):
        storage.read_bytes(f"s3://{bucket}/corrupt/ours.bin")
    with pytest.raises(storage.ChecksumError, match="MD5 ETag"):
        storage.read_bytes(f"s3://{bucket}/corrupt/theirs.bin")
    (tmp_path / "out").mkdir()
    with pytest.raises(storage.ChecksumError):
        storage.local_copy(f"s3://{bucket}/corrupt/ours.bin", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "ours.bin").exists()
    with pytest.raises(storage.ChecksumError), storage.open_read(f"s3://{bucket}/corrupt/ours.bin") as stream:
        stream.read()


@pytest.mark.parametrize("size", [5_000, 6 * 1024 * 1024])
def test_a_corrupted_upload_is_detected_and_discarded(faulty_s3, tmp_path, monkeypatch, size):
    """The proxy flips a byte in the middle of the request body; moto stores it (it ignores the
    CRC32 we send), but its ETag of the stored bytes differs from the local one: refused, deleted."""
    client, bucket, proxy = faulty_s3
    monkeypatch.setattr(storage.s3, "UPLOAD_CHUNK_BYTES", 5 * 1024 * 1024)
    source = _random_file(tmp_path / "blob.bin", size, seed=4)
    proxy.inject("corrupt_request", count=1, method="PUT", path_contains="corrupt-up/")
    with pytest.raises(storage.ChecksumError, match="upload discarded"):
        storage.upload_file(source, f"s3://{bucket}/corrupt-up/{size}.bin")
    assert _keys(client, bucket, f"corrupt-up/{size}.bin") == []


def test_directory_writer_streams_to_s3_and_publishes_only_on_commit(faulty_s3, tmp_path, monkeypatch):
    client, bucket, proxy = faulty_s3
    target = f"s3://{bucket}/stream/run-1"
    monkeypatch.setattr(storage.s3, "MAX_ATTEMPTS", 2)
    proxy.inject("503", count=10_000, method="PUT", skip=1)
    with pytest.raises(Exception, match="503"), storage.DirectoryWriter(target) as writer:
        for i in range(3):
            part = _random_file(tmp_path / f"p{i}", 1000, seed=i)
            writer.add(part, f"part-{i}.bin")
            assert not part.exists()  # consumed: uploaded, not kept locally
        writer.commit()
    proxy.clear()
    assert _keys(client, bucket, "stream/run-1/") == ["stream/run-1/part-0.bin"]
    with storage.DirectoryWriter(target) as writer:  # a rerun: leftovers replaced
        for i in range(2):
            writer.add(_random_file(tmp_path / f"q{i}", 500, seed=10 + i), f"part-{i}.bin")
        writer.commit()
    got = storage.download_published(target, tmp_path / "down")
    assert sorted(p.name for p in got.iterdir()) == ["part-0.bin", "part-1.bin"]


# --- the user guide's commands ------------------------------------------------------------------


def test_the_storage_guide_commands_run_against_an_s3_api(s3, tmp_path, monkeypatch):
    """docs/storage.md, "Try it against an S3 API": each line run as written through the real CLI
    (in this process: the same entry point, without a second TensorFlow import), BUCKET and the
    port replaced; validation, training and scoring all read s3:// and the scores land there."""
    import os
    import shlex

    from credit_risk.app import cli
    from tests.helpers import GERMAN_CSV, GERMAN_SPEC
    from tests.pipeline.test_cli import _doc_commands

    client, bucket = s3
    for local in (GERMAN_CSV, GERMAN_SPEC, GERMAN_SPEC.with_name("german_credit.schema.pbtxt")):
        client.upload_file(str(local), bucket, local.name)
    commands = _doc_commands("docs/storage.md")
    assert commands[0] == "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000", commands
    assert os.environ["AWS_ENDPOINT_URL_S3"].startswith("http://127.0.0.1:")  # the fixture's port
    monkeypatch.chdir(tmp_path)
    ran = []
    for command in commands[1:]:
        words = shlex.split(command.replace("BUCKET", bucket))
        assert words[0] == "credit-risk", command
        assert cli.main(words[1:]) == 0, command
        ran.append(words[1])
    assert ran == ["validate", "train", "score"]
    assert (tmp_path / "model" / "saved_model.pb").exists()
    scores = storage.list_files(f"s3://{bucket}/scores/2026-12-03/")
    assert any(uri.endswith(".parquet") for uri in scores), scores
