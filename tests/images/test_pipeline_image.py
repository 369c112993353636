"""Every training-pipeline component run inside the built pipeline image the way KFP's Argo backend
runs it: the compiled YAML's own ``command`` and ``args`` for the task's executor, the executor input
JSON in place of ``{{$}}`` (built from the compiled DAG: pipeline parameters with their compiled
defaults, the producer task's output artifacts), uid 10001, and the pod's mounts - emptyDirs at /gcs,
/s3, /.local, /.cache, /.config and /kfp-launcher, and /minio, where the launcher leaves the input
artifacts it downloaded and collects the outputs it uploads (a stock Kubeflow's pipeline root is
``minio://mlpipeline/v2/artifacts``), shared from task to task here as the launcher would. Nothing is
mounted at /tmp: the executor's program and output file live in the image's own /tmp.

The data and its feature spec are read from a bucket on the real fake-gcs-server (``gs://`` URIs, as
a user on GKE stages them; the container reaches the emulator over the host network). The last step,
deploy with ``apply_to_cluster=false``, smoke-tests the model with the image's serving environment and
publishes it under a ``gs://`` serving_root (the minio:// artifact URI is not a STORAGE_URI KServe reads).
The decision must equal the local runner's on the same data and parameters."""

import json
import os
import shutil
import time
from graphlib import TopologicalSorter
from pathlib import Path

import pytest
import yaml

from credit_risk.release import images
from tests.gcs_emulator import gcs_emulator
from tests.helpers import GERMAN_CSV, GERMAN_SPEC, REPO, local_run_key
from tests.images.podman import REGISTRY, podman, require_image

pytestmark = pytest.mark.timeout(1800)
COMPILED = REPO / "pipelines" / "training_pipeline.yaml"
RESULTS = REPO / "build" / "pipeline-image-conformance.json"
LOCAL_REFERENCE = REPO / "build" / "local-run-german.json"
ROOT = "minio://mlpipeline/v2/artifacts"
OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"  # where KFP's launcher asks for it
EMPTY_DIRS = ("/gcs", "/s3", "/.local", "/.cache", "/.config", "/kfp-launcher")
BUCKET = "credit-risk-data"


@pytest.fixture(scope="module")
def image():
    return require_image(images.pipeline_image(REGISTRY))


def protojson(value):
    """A parameter value as KFP's Go driver writes it: a protobuf ``Value`` rendered by protojson, where
    every number is a double and a whole one prints without a fraction (the compiled YAML's
    ``100000.0`` reaches the component as ``100000``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [protojson(v) for v in value]
    if isinstance(value, dict):
        return {k: protojson(v) for k, v in value.items()}
    return value


def executor_input(pipeline: dict, name: str, task: dict, params: dict, done: dict, run_id: str) -> dict:
    """What KFP's driver hands a task: its parameters resolved from the pipeline's (compiled defaults
    under what the run sets) and its input artifacts from the producers' executor outputs."""
    component = pipeline["components"][task["componentRef"]["name"]]
    values = {}
    for key, spec in component["inputDefinitions"].get("parameters", {}).items():
        if "defaultValue" in spec:
            values[key] = spec["defaultValue"]
    for key, source in task["inputs"].get("parameters", {}).items():
        if "componentInputParameter" in source:
            values[key] = params[source["componentInputParameter"]]
        elif "runtimeValue" in source:
            values[key] = source["runtimeValue"]["constant"]
        else:
            producer = source["taskOutputParameter"]
            values[key] = done[producer["producerTask"]]["parameterValues"][producer["outputParameterKey"]]
    artifacts = {}
    for key, source in task["inputs"].get("artifacts", {}).items():
        producer = source["taskOutputArtifact"]
        artifacts[key] = done[producer["producerTask"]]["artifacts"][producer["outputArtifactKey"]]
    outputs = {
        key: {"artifacts": [{"name": key, "type": spec["artifactType"], "metadata": {},
                             "uri": f"{ROOT}/{pipeline['pipelineInfo']['name']}/{run_id}/{name}/{key}"}]}
        for key, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }  # fmt: skip
    return {
        "inputs": {"parameterValues": protojson(values), "artifacts": artifacts},
        "outputs": {"artifacts": outputs, "outputFile": OUTPUT_FILE},
    }


def run_task(
    image: str, container: dict, doc: dict, store: Path, env: dict, label: str
) -> tuple[dict, float]:
    """One task's pod: returns the executor output (with the artifacts it was given filled in, as the
    launcher records them) and its seconds."""
    args = [json.dumps(doc) if a == "{{$}}" else a for a in container["args"]]
    assert all("{{" not in a for a in args), f"unresolved placeholder in {container['args']}"
    name = f"credit-risk-kfp-{label}-{os.getpid()}"
    flags = ["--name", name, "--user", "10001", "--network", "host", "-v", f"{store}:/minio",
             "--entrypoint", json.dumps(container["command"])]  # fmt: skip
    for path in EMPTY_DIRS:
        flags += ["--tmpfs", f"{path}:rw,mode=1777"]
    for key, value in env.items():
        flags += ["--env", f"{key}={value}"]
    started = time.monotonic()
    try:
        # the compiled YAML names the published image; here it is the one just built from the same tree
        proc = podman("run", *flags, image, *args, check=False, timeout=1200)
        seconds = time.monotonic() - started
        assert proc.returncode == 0, f"task {label} failed in its pod:\n{(proc.stdout + proc.stderr)[-6000:]}"
        out = store.parent / f"{label}.executor_output.json"
        podman("cp", f"{name}:{OUTPUT_FILE}", str(out))
    finally:
        podman("rm", "-f", name, check=False)
    executor_output = json.loads(out.read_text())
    given = doc["outputs"]["artifacts"]
    executor_output["artifacts"] = {
        k: executor_output.get("artifacts", {}).get(k, v) for k, v in given.items()
    }
    executor_output.setdefault("parameterValues", {})
    return executor_output, seconds


def local_path(artifact: dict, store: Path) -> Path:
    uri = artifact["artifacts"][0]["uri"]
    assert uri.startswith("minio://"), uri
    return store / uri[len("minio://") :]


def local_reference(tmp_path: Path) -> dict:
    """The local runner's decision on the same data and defaults: the one the pipeline suite's
    end-to-end test recorded for this very tree, or a fresh local run."""
    if LOCAL_REFERENCE.is_file():
        recorded = json.loads(LOCAL_REFERENCE.read_text())
        if recorded.get("key") == local_run_key():
            return recorded
    from credit_risk.app.local_run import run_local

    s = run_local(str(GERMAN_CSV), str(GERMAN_SPEC), tmp_path / "local")
    assert s.succeeded, s.error
    return {"verdict": s.verdict, "metrics": s.decision.metrics}


def test_every_training_component_runs_in_the_pipeline_image_as_kfp_runs_it(image, tmp_path):
    pipeline = yaml.safe_load(COMPILED.read_text())
    executors = pipeline["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {images.pipeline_image()}
    label = podman("image", "inspect", "--format", '{{index .Config.Labels "io.credit-risk.content-hash"}}',
                   image).stdout.strip()  # fmt: skip
    assert image.endswith(label[:12]) and images.pipeline_image().endswith(label[:12])
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    assert user == "10001"

    store = tmp_path / "minio"
    store.mkdir()
    store.chmod(0o777)  # an emptyDir: writable by the pod's user
    tasks = pipeline["root"]["dag"]["tasks"]
    order = list(
        TopologicalSorter({n: set(t.get("dependentTasks", [])) for n, t in tasks.items()}).static_order()
    )
    assert order[:2] == ["history-features", "ingest"] and order[-1] == "deploy" and len(order) == 7

    root_params = pipeline["root"]["inputDefinitions"]["parameters"]
    params = {k: v["defaultValue"] for k, v in root_params.items() if "defaultValue" in v}
    seconds: dict[str, float] = {}
    with gcs_emulator() as url:
        from google.cloud import storage

        bucket = storage.Client().create_bucket(BUCKET)
        for path in (GERMAN_CSV, GERMAN_SPEC, GERMAN_SPEC.with_name("german_credit.schema.pbtxt")):
            bucket.blob(f"german_credit/{path.name}").upload_from_filename(str(path))
        # serving_root: on a stock Kubeflow the model artifact is minio://..., which KServe cannot
        # fetch - deploy refuses it (a test of its own) and publishes the approved model here instead
        params |= {"data_uri": f"gs://{BUCKET}/german_credit/{GERMAN_CSV.name}",
                   "feature_spec_uri": f"gs://{BUCKET}/german_credit/{GERMAN_SPEC.name}",
                   "serving_root": f"gs://{BUCKET}/serving"}  # fmt: skip
        assert set(params) == set(root_params), "every pipeline parameter has a value"
        env = {"STORAGE_EMULATOR_HOST": url, "GCLOUD_PROJECT": "test"}
        done: dict[str, dict] = {}
        for name in order:
            task = tasks[name]
            component = pipeline["components"][task["componentRef"]["name"]]
            container = executors[component["executorLabel"]]["container"]
            doc = executor_input(pipeline, name, task, params, done, run_id="conformance")
            done[name], seconds[name] = run_task(image, container, doc, store, env, name)
            print(f"[pipeline image] {name}: {seconds[name]:.0f} s", flush=True)
        record = json.loads(local_path(done["deploy"]["artifacts"]["deployment"], store).read_text())
        published = [b.name for b in bucket.list_blobs(prefix="serving/")]
        assert record["state"] == "rendered" and record["storage_uri"].startswith(f"gs://{BUCKET}/serving/")
        assert any(name.endswith("_PUBLISHED.json") for name in published), published  # marker last, complete

    decision = json.loads(local_path(done["evaluate"]["artifacts"]["approval"], store).read_text())
    model_dir = local_path(done["train"]["artifacts"]["model"], store)
    assert (model_dir / "saved_model.pb").is_file() or any(model_dir.rglob("saved_model.pb"))
    isvc = yaml.safe_load(local_path(done["deploy"]["artifacts"]["inference_service"], store).read_text())
    assert isvc["kind"] == "InferenceService"
    # KFP UI metrics came back through the executor output file, as the launcher reads them
    logged = done["evaluate"]["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert logged["auc"] == pytest.approx(decision["metrics"]["auc"], abs=1e-6)  # logged rounded to 6 places

    reference = local_reference(tmp_path)
    assert decision["decision"] == reference["verdict"]
    for metric in ("auc", "ks", "brier", "rows"):
        assert decision["metrics"][metric] == pytest.approx(reference["metrics"][metric], abs=1e-4), metric

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    measured = {"image": image, "user": user, "size_mb": round(size / 1e6), "task_seconds": seconds,
                "decision": decision["decision"], "auc": decision["metrics"]["auc"],
                "deploy_reason": record.get("reason")}  # fmt: skip
    RESULTS.write_text(json.dumps(measured, indent=2) + "\n")
    print(
        f"\n{image}: {size / 1e6:,.0f} MB, user {user}; tasks "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    )
    shutil.rmtree(store, ignore_errors=True)


def test_the_history_step_runs_spark_in_the_pipeline_image_as_the_pod_user(image, tmp_path):
    """The Spark path of the first step where it runs on Kubeflow: the image's Java and pyspark,
    uid 10001, the pod's emptyDirs, nothing writable but them and /tmp: generate a raw history,
    compute its features on local[2] and check them against the pandas engine in the same pod."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    script = (
        "set -e; credit-risk generate-history --records 20000 --seed 3 -o /work/raw; "
        "credit-risk etl --raw /work/raw -o /work/spark --lag-months 1 --driver-memory 1g; "
        "credit-risk etl --raw /work/raw -o /work/pandas --lag-months 1 --engine pandas"
    )
    flags = ["--user", "10001", "--network", "none", "-v", f"{work}:/work", "--entrypoint", "/bin/sh"]
    for path in EMPTY_DIRS:
        flags += ["--tmpfs", f"{path}:rw,mode=1777"]
    started = time.monotonic()
    proc = podman("run", "--rm", *flags, image, "-c", script, check=False, timeout=900)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "(spark local[2]" in proc.stdout and "(pandas" in proc.stdout, proc.stdout
    import pandas as pd

    key = None
    frames = []
    for engine in ("spark", "pandas"):
        frame = pd.read_parquet(work / engine / "data")
        key = key or list(frame.columns)
        frames.append(frame.sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=False, rtol=1e-12)
    spec = yaml.safe_load((work / "spark" / "feature_spec.yaml").read_text())
    # the spec's columns: its origination date (application_date), the features, the label
    assert spec["name"] == "loan_history" and spec["origination_date"] == "application_date"
    assert key == ["application_date", *[f["name"] for f in spec["features"]], "default"]
    print(f"[pipeline image] history step (generate + Spark local[2] + pandas): {seconds:.0f} s")
