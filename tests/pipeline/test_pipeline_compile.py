import yaml
from credit_risk.pipelines.compile import COMPILED_FILE, MONITORING_COMPILED_FILE, compile_pipeline

from credit_risk import images


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
    assert set(tasks) == {"ingest", "validate", "split", "train", "evaluate", "deploy"}
    assert tasks["validate"]["dependentTasks"] == ["ingest"]
    assert tasks["deploy"]["dependentTasks"] == ["evaluate", "train"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert "defaultValue" not in params["data_uri"] and "defaultValue" not in params["feature_spec_uri"]
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
