"""The predictor server at depth, as real processes over real HTTP on 127.0.0.1: several workers
with metrics summed across them, worker restarts, body limits, the log policy, and start-up from a
published model version on GCS (the real fake-gcs-server emulator)."""

import http.client as httpclient
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import http
from tests.serving.conftest import MODEL_NAME, running_server

SECRET = "ZZ-SECRET-APPLICANT-VALUE-93"  # a value that must never reach a log unless asked for


@pytest.fixture(scope="module")
def pool(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("pool") / "pool.log"
    args = ("--model_dir", str(model_dir), "--workers", "2", "--max_body_bytes", "20000")
    with running_server(log, *args, ready_timeout=180) as (base, proc):
        time.sleep(2)  # let the second worker finish loading too
        yield base, proc, log


def _predict(base, body, path=f"/v1/models/{MODEL_NAME}:predict"):
    status, raw = http("POST", base + path, json.dumps(body).encode())
    return status, json.loads(raw)


def _metric(base, name, labels=""):
    text = http("GET", f"{base}/metrics")[1].decode()
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+]+)$"
    found = re.findall(pattern, text, re.M)
    return float(found[0]) if found else 0.0


def _children(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_several_workers_answer_like_the_in_process_model_and_count_together(pool, expected):
    base, proc, _ = pool
    assert len(_children(proc.pid)) == 2
    before = _metric(base, "credit_risk_requests_total", 'protocol="v1",status="200"')
    rows_before = _metric(base, "credit_risk_pd_count")
    body = {"instances": expected["instances"][:5], "parameters": {"reasons": False}}
    for _ in range(40):  # new connections: the kernel spreads them over both workers
        status, answer = _predict(base, body)
        assert status == 200
        got = [p["pd"] for p in answer["predictions"]]
        assert got == pytest.approx(expected["pd_savedmodel"][:5], abs=1e-5)
    assert _metric(base, "credit_risk_requests_total", 'protocol="v1",status="200"') - before == 40
    assert _metric(base, "credit_risk_pd_count") - rows_before == 200  # every scored row, once
    assert _metric(base, "credit_risk_batch_rows_count") > 0
    assert _metric(base, "credit_risk_request_seconds_count", 'protocol="v1"') >= 40


def test_a_killed_worker_is_restarted_and_the_server_keeps_answering(pool, expected):
    base, proc, log = pool
    victim = _children(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if len(kids) == 2 and victim not in kids and "restarting it" in Path(log).read_text():
            break
        time.sleep(0.5)
    else:
        pytest.fail("the supervisor did not restart the killed worker")
    body = {"instances": expected["instances"][:1]}
    assert all(_predict(base, body)[0] == 200 for _ in range(10))


def test_a_body_over_the_limit_is_413_by_length_and_when_chunked(pool, expected):
    base, _, _ = pool
    big = {"instances": expected["instances"] * 20}  # > 20,000 bytes
    status, answer = _predict(base, big)
    assert status == 413 and "exceeds the limit of 20000" in answer["error"]
    host, port = base.removeprefix("http://").split(":")
    conn = httpclient.HTTPConnection(host, int(port), timeout=30)
    payload = json.dumps(big).encode()
    chunks = (payload[i : i + 4096] for i in range(0, len(payload), 4096))
    conn.request("POST", f"/v1/models/{MODEL_NAME}:predict", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/json"})  # fmt: skip
    response = conn.getresponse()
    assert response.status == 413 and b"exceeds the limit" in response.read()
    conn.close()
    assert _predict(base, {"instances": expected["instances"][:1]})[0] == 200


def test_client_errors_name_the_field_but_logs_never_hold_applicant_values(pool, expected):
    base, _, log = pool
    instance = {**expected["instances"][0], "Age": SECRET}
    status, answer = _predict(base, {"instances": [instance]})
    assert status == 400 and "instance 0, field 'Age'" in answer["error"] and SECRET in answer["error"]
    time.sleep(0.5)
    text = Path(log).read_text()
    assert "v1 400 instance=0 field=Age" in text  # the event is logged...
    assert SECRET not in text  # ...without the value


def test_the_debug_flag_lets_values_into_the_log(model_dir, expected, tmp_path):
    log = tmp_path / "debug.log"
    with running_server(log, "--model_dir", str(model_dir), "--log_feature_values") as (base, _):
        instance = {**expected["instances"][0], "Age": SECRET}
        assert _predict(base, {"instances": [instance]})[0] == 400
        time.sleep(0.5)
    assert SECRET in log.read_text()


def test_serves_a_published_version_from_s3_and_refuses_a_tampered_one(model_dir, tmp_path):
    """--storage_uri s3://: the predictor downloads the version itself (boto3, the standard AWS
    chain: endpoint and keys from the environment, as on MinIO) and checks every file's sha256."""
    from credit_risk import storage
    from tests.s3_server import ENV, s3_server

    with s3_server() as url:
        client = storage.s3.client()
        client.create_bucket(Bucket="models")
        uri = "s3://models/credit-risk/m-0001"
        storage.publish_dir(model_dir, uri)
        env = {**ENV, "AWS_ENDPOINT_URL_S3": url}
        with running_server(tmp_path / "s3.log", "--storage_uri", uri, env=env) as (base, _):
            instance = json.loads((model_dir.parent / "expected.json").read_text())["instances"][0]
            status, answer = _predict(base, {"instances": [instance]})
            assert status == 200 and 0 <= answer["predictions"][0]["pd"] <= 1
        client.put_object(Bucket="models", Key="credit-risk/m-0001/saved_model.pb", Body=b"tampered")
        with (
            pytest.raises(RuntimeError, match="exited early"),
            running_server(tmp_path / "tampered.log", "--storage_uri", uri, env=env),
        ):
            pass
        assert (
            "checksum mismatch after download for ['saved_model.pb']"
            in (tmp_path / "tampered.log").read_text()
        )


def test_serves_a_published_version_from_gcs_and_refuses_a_tampered_one(model_dir, tmp_path):
    from credit_risk import storage
    from tests.gcs_emulator import gcs_emulator

    with gcs_emulator() as url:
        client = storage.gcs.client()
        client.create_bucket("models")
        uri = "gs://models/credit-risk/m-0001"
        storage.publish_dir(model_dir, uri)
        env = {"STORAGE_EMULATOR_HOST": url, "GCLOUD_PROJECT": "test"}
        with running_server(tmp_path / "gcs.log", "--storage_uri", uri, env=env) as (base, _):
            status, answer = _predict(
                base,
                {"instances": [json.loads((model_dir.parent / "expected.json").read_text())["instances"][0]]},
            )
            assert status == 200 and 0 <= answer["predictions"][0]["pd"] <= 1
        client.bucket("models").blob("credit-risk/m-0001/saved_model.pb").upload_from_string(b"tampered")
        with (
            pytest.raises(RuntimeError, match="exited early"),
            running_server(tmp_path / "tampered.log", "--storage_uri", uri, env=env),
        ):
            pass
        assert (
            "checksum mismatch after download for ['saved_model.pb']"
            in (tmp_path / "tampered.log").read_text()
        )
