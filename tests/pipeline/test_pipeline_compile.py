import json
import re

import pytest
import yaml
from credit_risk.pipelines.compile import COMPILED_FILE, MONITORING_COMPILED_FILE, compile_pipeline

from credit_risk.release import images


def test_committed_yaml_is_up_to_date(tmp_path):
    fresh = compile_pipeline(tmp_path / "p.yaml")
    assert fresh.read_text() == COMPILED_FILE.read_text(), (
        "pipelines/training_pipeline.yaml is stale: run `credit-risk compile` and commit it"
    )


def test_committed_monitoring_yaml_is_up_to_date_and_schedulable(tmp_path):
    fresh = compile_pipeline(tmp_path / "m.yaml", which="monitoring")
    assert fresh.read_text() == MONITORING_COMPILED_FILE.read_text(), (
        "pipelines/monitoring_pipeline.yaml is stale: run `credit-risk compile` and commit it"
    )
    spec = yaml.safe_load(fresh.read_text())
    assert set(spec["root"]["dag"]["tasks"]) == {"importer", "batch-score", "monitor"}
    params = spec["root"]["inputDefinitions"]["parameters"]
    required = {name for name, p in params.items() if "defaultValue" not in p}
    assert required == {"model_uri", "baseline_data_uri", "current_data_uri"}


def test_compiled_pipeline_shape(tmp_path):
    spec = yaml.safe_load(compile_pipeline(tmp_path / "p.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"history-features", "ingest", "validate", "split", "train", "evaluate", "deploy"}
    assert tasks["ingest"]["dependentTasks"] == ["history-features"]
    assert tasks["validate"]["dependentTasks"] == ["history-features", "ingest"]
    assert tasks["deploy"]["dependentTasks"] == ["evaluate", "train"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    # one of two sources: applicant rows (data_uri + feature_spec_uri) or raw_history_uri; the first
    # step refuses neither or both (tests/pipeline/test_history.py)
    assert {params[k]["defaultValue"] for k in ("data_uri", "feature_spec_uri", "raw_history_uri")} == {""}
    assert (
        params["history_engine"]["defaultValue"] == "spark"
        and params["history_lag_months"]["defaultValue"] == 0
    )
    # the cluster engines' settings, typed on the dashboard (empty: not used by local engines)
    assert {k: params[k]["defaultValue"] for k in params if k.startswith("history_") and k not in (
        "history_engine", "history_lag_months", "history_spark_master", "history_driver_memory")} == {
        "history_spark_image": "", "history_namespace": "", "history_emr_application_id": "",
        "history_emr_role_arn": "", "history_executor_instances": 2, "history_timeout_seconds": 3600,
    }  # fmt: skip
    assert (
        params["gate_overrides"]["defaultValue"] == {} and params["allow_override"]["defaultValue"] is False
    )
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["image"] == images.pipeline_image()
        # no pip install at run time: the command runs the embedded function directly
        assert "pip install" not in " ".join(executor["container"]["command"])


def test_registry_and_tag_are_baked_in(tmp_path):
    spec = yaml.safe_load(
        compile_pipeline(tmp_path / "p.yaml", registry="eu.gcr.io/acme", tag="1.2.3").read_text()
    )
    images_used = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images_used == {"eu.gcr.io/acme/credit-risk-pipeline:1.2.3"}
    serving = spec["root"]["inputDefinitions"]["parameters"]["serving_image"]["defaultValue"]
    assert serving == "eu.gcr.io/acme/credit-risk-predictor:1.2.3"


def test_database_secret_is_mounted_on_the_ingest_step_only_when_asked(tmp_path):
    from credit_risk.pipelines.training_pipeline import DATABASE_SECRET_KEYS

    docs = list(
        yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", database_secret="loans-db").read_text())
    )
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert list(platform) == ["exec-ingest"]
    mounted = platform["exec-ingest"]["secretAsEnv"][0]
    assert mounted["secretName"] == "loans-db"
    assert {m["secretKey"]: m["envVar"] for m in mounted["keyToEnv"]} == DATABASE_SECRET_KEYS
    params = docs[0]["root"]["inputDefinitions"]["parameters"]
    assert not any("password" in name for name in params)  # credentials are never parameters
    default = list(yaml.safe_load_all(COMPILED_FILE.read_text()))
    assert len(default) == 1  # the committed YAML mounts no secret


@pytest.mark.parametrize("which", ["training", "monitoring"])
def test_s3_access_puts_the_minio_endpoint_and_keys_on_every_step_and_only_when_asked(tmp_path, which):
    """Kubeflow's MinIO (or any S3 API off AWS): every step reaches s3:// through boto3's standard
    chain, so each gets the secret's keys as env vars and the endpoint; keys are never parameters."""
    from credit_risk.pipelines.policy import S3_SECRET_KEYS, S3Access

    access = S3Access("credit-risk-s3", "http://minio-service.kubeflow:9000/", "us-east-1")
    path = compile_pipeline(tmp_path / "p.yaml", which=which, s3=access)
    spec, platform = yaml.safe_load_all(path.read_text())
    # every step that runs our code (an importer only records its URI: KFP's driver, no download)
    executors = {k: v for k, v in spec["deploymentSpec"]["executors"].items() if "container" in v}
    mounted = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(mounted) == set(executors) and len(executors) >= 2
    for name, executor in executors.items():
        (secret,) = mounted[name]["secretAsEnv"]
        assert secret["secretName"] == "credit-risk-s3"
        assert {m["secretKey"]: m["envVar"] for m in secret["keyToEnv"]} == {k: k for k in S3_SECRET_KEYS}
        env = {e["name"]: e["value"] for e in executor["container"]["env"]}
        assert env == {"AWS_ENDPOINT_URL_S3": "http://minio-service.kubeflow:9000", "AWS_REGION": "us-east-1"}
    assert not any(
        "secret" in p or "aws" in p.lower() for p in spec["root"]["inputDefinitions"]["parameters"]
    )
    committed = COMPILED_FILE if which == "training" else MONITORING_COMPILED_FILE
    assert "AWS_" not in committed.read_text()  # the committed YAML assumes no MinIO


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": "Credit_S3"}, "--s3-secret 'Credit_S3' is not a Kubernetes secret name"),
        (
            {"endpoint": "minio-service:9000"},
            "--s3-endpoint 'minio-service:9000': expected the S3 API's base URL",
        ),
        ({"endpoint": "http://minio/path"}, "expected the S3 API's base URL"),
        ({"region": "US East"}, "--s3-region 'US East' is not a region name"),
    ],
)
def test_s3_access_names_what_is_wrong(kwargs, message):
    from credit_risk.pipelines.policy import S3Access

    from credit_risk.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        S3Access(**kwargs)


def _executor_of(spec, task):
    label = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    return spec["deploymentSpec"]["executors"][spec["components"][label]["executorLabel"]]["container"]


def test_compiled_yaml_sets_caching_resources_and_retries_per_step():
    """What the committed YAML tells Kubeflow: a live ingest, the champion lookup, deploy and the
    monitoring steps are never answered from cache; every step has requests and limits; steps
    that call remote services retry with backoff (pipelines/policy.py)."""
    from credit_risk.pipelines.policy import POLICIES

    training_steps = ("history-features", "ingest", "validate", "split", "train", "evaluate", "deploy")
    for path, steps in ((COMPILED_FILE, training_steps),
                        (MONITORING_COMPILED_FILE, ("batch-score", "monitor"))):  # fmt: skip
        spec = yaml.safe_load(path.read_text())
        tasks = spec["root"]["dag"]["tasks"]
        for task in steps:
            policy = POLICIES[task.replace("-", "_")]
            assert tasks[task]["cachingOptions"].get("enableCache", False) is policy.cache, task
            resources = _executor_of(spec, task)["resources"]
            assert (
                resources["resourceCpuRequest"] == policy.cpu
                and resources["resourceCpuLimit"] == policy.cpu_limit
            )
            assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"] == policy.memory
            retry = tasks[task].get("retryPolicy")
            assert (retry or {}).get("maxRetryCount", 0) == policy.retries, task
            if retry:
                assert retry["backoffDuration"] == "30s" and retry["backoffFactor"] == 2.0
    training = yaml.safe_load(COMPILED_FILE.read_text())["root"]["dag"]["tasks"]
    assert not training["ingest"]["cachingOptions"] and not training["deploy"]["cachingOptions"]
    assert training["train"]["cachingOptions"] == {"enableCache": True}
    assert "retryPolicy" not in training["deploy"] and "retryPolicy" not in training["train"]


def test_step_resources_are_overridable_at_compile_time(tmp_path):
    import pytest

    from credit_risk.errors import ConfigError

    out = compile_pipeline(
        tmp_path / "p.yaml", step_resources=["train.cpu=8", "train.memory=32Gi", "ingest.retries=0"]
    )
    spec = yaml.safe_load(out.read_text())
    train = _executor_of(spec, "train")["resources"]
    assert train["resourceCpuRequest"] == "8" and train["resourceMemoryLimit"] == "32Gi"
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["ingest"]
    for bad, message in (
        (["train.gpu=1"], "unknown key 'gpu'"),
        (["trian.cpu=1"], "unknown step 'trian'"),
        (["train.retries=many"], "retries must be an integer"),
        (["train"], "expected <step>.<key>=<value>"),
    ):
        with pytest.raises(ConfigError, match=message):
            compile_pipeline(tmp_path / "bad.yaml", step_resources=bad)


def test_every_training_setting_is_declared_once_and_typed_on_the_dashboard():
    """TrainingConfig (with its ModelConfig) is the one declaration: the train component takes each
    field, the compiled pipeline shows each as a typed parameter whose default is the dataclass's,
    and the CLI reaches each (its flags, or --param with the pipeline parameter's name)."""
    from dataclasses import fields

    from credit_risk.app import cli
    from credit_risk.modeling.training import TrainingConfig

    config = TrainingConfig()
    settings = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "model"}
    settings |= {f.name: getattr(config.model, f.name) for f in fields(config.model)}
    spec = yaml.safe_load(COMPILED_FILE.read_text())
    component = spec["components"]["comp-train"]["inputDefinitions"]["parameters"]
    assert set(component) - set(settings) == {"feature_spec_uri", "stream_data"}  # data, not settings
    assert set(settings) <= set(component)
    pipeline = spec["root"]["inputDefinitions"]["parameters"]
    kfp_type = {bool: "BOOLEAN", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", str: "STRING", tuple: "LIST"}
    for name, default in settings.items():
        shown = pipeline[name]
        if name == "wide_learning_rate":  # None = the deep part's rate; KFP carries it as 0.0
            assert default is None and shown == {"defaultValue": 0.0, "isOptional": True,
                                                 "parameterType": "NUMBER_DOUBLE"}  # fmt: skip
            continue
        expected = list(default) if isinstance(default, tuple) else default
        assert shown["defaultValue"] == expected, name
        assert shown["parameterType"] == kfp_type[type(default)], name
    flags = {
        "epochs": "--epochs",
        "batch_size": "--batch-size",
        "learning_rate": "--learning-rate",
        "seed": "--seed",
    }
    argv = ["run-local", "--epochs", "3", "--batch-size", "32", "--learning-rate", "0.01", "--seed", "7"]
    for name, default in settings.items():
        if name not in flags:
            value = list(default) if isinstance(default, tuple) else default
            argv += ["--param", f"{name}={json.dumps(value)}"]
    args = cli.build_parser().parse_args(argv)
    reached = cli._pipeline_params(args)
    assert set(settings) <= set(reached) and reached["epochs"] == 3 and reached["seed"] == 7
