"""`credit-risk submit` drives the real kfp.Client against a protocol-level fake of the KFP
v2beta1 REST API (tests/kfp_api_fake.py) - not a cluster - and asserts on the exact requests."""

import json

import pytest

from credit_risk.app import cli
from credit_risk.app.submit import SubmitConfig, submit
from credit_risk.errors import ConfigError
from tests.kfp_api_fake import FakeKfpApi

PARAMS = {
    "data_uri": "gs://bank/loans.csv",
    "feature_spec_uri": "gs://bank/loans.spec.yaml",
    "epochs": 50,
    "gate_overrides": {"min_auc": 0.75},
}


def test_submit_creates_experiment_and_run_with_parameters_and_token(monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    with FakeKfpApi() as api:
        out = submit(SubmitConfig(host=api.url, experiment="pd-ci", run_name="ci-42", params=PARAMS))
    assert out["run_id"] == "run-1" and out["url"].endswith("/#/runs/details/run-1")
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/apis/v2beta1/experiments", "/apis/v2beta1/runs"]
    assert posts[0]["body"] == {"display_name": "pd-ci"}
    run = posts[1]["body"]
    assert run["experiment_id"] == "exp-1" and run["display_name"] == "ci-42"
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "credit-risk-training"
    assert run["runtime_config"]["parameters"] == PARAMS
    assert all(r["headers"].get("authorization") == "Bearer secret-token" for r in api.requests)


def test_fail_on_rejection_flag_reaches_the_run():
    with FakeKfpApi() as api:
        args = ["submit", "--host", api.url, "--fail-on-rejection"]
        args += ["--param=data_uri=gs://b/d.csv", "--param=feature_spec_uri=gs://b/s.yaml"]
        assert cli.main(args) == cli.EXIT_OK
    run = next(r for r in api.requests if r["path"] == "/apis/v2beta1/runs")
    assert run["body"]["runtime_config"]["parameters"]["fail_on_rejection"] is True


def test_wait_reports_final_state_and_cli_fails_on_failed_run(capsys):
    with FakeKfpApi(run_states=["FAILED"]) as api:
        args = ["submit", "--host", api.url, "--wait", "--timeout", "60"]
        args += [f"--param={k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in PARAMS.items()]
        assert cli.main(args) == cli.EXIT_FAILED
    assert '"state": "FAILED"' in capsys.readouterr().out


def test_wait_success_exit_zero_and_cli_params_arrive_typed():
    with FakeKfpApi(run_states=["SUCCEEDED"]) as api:
        args = ["submit", "--host", api.url, "--wait"] + [
            f"--param={k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in PARAMS.items()
        ]
        assert cli.main(args) == cli.EXIT_OK
    run = next(r for r in api.requests if r["path"] == "/apis/v2beta1/runs")
    assert run["body"]["runtime_config"]["parameters"] == PARAMS


@pytest.mark.parametrize(
    "params, message",
    [
        ({**PARAMS, "learning_rte": 0.1}, "unknown pipeline parameter(s) ['learning_rte']"),
        ({"data_uri": "gs://b/d.csv"}, "no training data: set feature_spec_uri with data_uri or sql_query"),
        ({**PARAMS, "raw_history_uri": "gs://b/raw"}, "raw_history_uri='gs://b/raw' replaces data_uri and"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_sent(params, message):
    with FakeKfpApi() as api:
        with pytest.raises(ConfigError) as e:
            submit(SubmitConfig(host=api.url, params=params))
        assert message in str(e.value)
        assert api.requests == []


def test_bad_host_is_a_config_error():
    with pytest.raises(ConfigError, match="must be an http"):
        SubmitConfig(host="kubeflow.example.com")


def test_upload_registers_pipeline_then_versions_and_runs_the_version(tmp_path):
    from credit_risk.pipelines.compile import COMPILED_FILE

    from credit_risk.app.submit import version_name

    with FakeKfpApi() as api:
        first = submit(SubmitConfig(host=api.url, params=PARAMS, upload=True))
        again = submit(SubmitConfig(host=api.url, params=PARAMS, upload=True))  # adds the hash-named version
        once_more = submit(SubmitConfig(host=api.url, params=PARAMS, upload=True))  # reuses it
        changed = tmp_path / "p.yaml"
        changed.write_text(COMPILED_FILE.read_text() + "\n# changed\n")
        third = submit(SubmitConfig(host=api.url, params=PARAMS, upload=True, pipeline_file=str(changed)))
    assert first["pipeline_id"] == again["pipeline_id"] == third["pipeline_id"] == "pipeline-1"
    assert first["pipeline_version_id"] == "pipeline-1-v1"
    assert again["pipeline_version_id"] == once_more["pipeline_version_id"] == "pipeline-1-v2"
    assert [v["display_name"] for v in api.versions["pipeline-1"]] == [
        "credit-risk-training",
        version_name(COMPILED_FILE),
        version_name(changed),
    ]
    assert third["pipeline_version_id"] == "pipeline-1-v3"
    assert api.uploads[0] == COMPILED_FILE.read_bytes()  # the compiled YAML itself was uploaded
    runs = [r["body"] for r in api.requests if r["path"] == "/apis/v2beta1/runs"]
    assert runs[0]["pipeline_version_reference"] == {
        "pipeline_id": "pipeline-1",
        "pipeline_version_id": "pipeline-1-v1",
    }
    assert "pipeline_spec" not in runs[0]  # runs reference the registered version, not an inline spec
    assert runs[0]["runtime_config"]["parameters"] == PARAMS


MONITORING_PARAMS = {
    "model_uri": "gs://bank/serving/m-0123456789abcdef",
    "baseline_data_uri": "gs://bank/snapshots/2026-10",
    "current_data_uri": "gs://bank/applications/latest/",
}


def test_schedule_creates_a_daily_recurring_monitoring_run(monkeypatch, capsys):
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    with FakeKfpApi() as api:
        args = ["schedule", "--host", api.url, "--name", "pd-monitoring-daily", "--cron", "0 0 6 * * *"]
        args += [f"--param={k}={v}" for k, v in MONITORING_PARAMS.items()] + ["--param=fail_on_act=true"]
        assert cli.main(args) == cli.EXIT_OK
    printed = capsys.readouterr().out  # kfp.Client prints the experiment link first
    out = json.loads(printed[printed.index("{") :])
    assert out["recurring_run_id"] == "job-1" and out["url"].endswith("/#/recurringrun/details/job-1")
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/apis/v2beta1/experiments", "/apis/v2beta1/recurringruns"]
    assert posts[0]["body"] == {"display_name": "credit-risk-monitoring"}
    job = posts[1]["body"]
    assert job["display_name"] == "pd-monitoring-daily" and job["experiment_id"] == "exp-1"
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 6 * * *"
    assert int(job["max_concurrency"]) == 1 and job["no_catchup"] is True and job["mode"] == "ENABLE"
    assert job["pipeline_spec"]["pipelineInfo"]["name"] == "credit-risk-monitoring"
    assert job["runtime_config"]["parameters"] == {**MONITORING_PARAMS, "fail_on_act": True}
    assert all(r["headers"].get("authorization") == "Bearer secret-token" for r in api.requests)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cron", "0 6 * * *"], "6 fields .* got 5"),
        (["--interval-seconds", "30"], "must be >= 60"),
    ],
)
def test_schedule_refuses_bad_schedules_before_calling_kfp(extra, message):
    from credit_risk.app.submit import ScheduleConfig

    with pytest.raises(ConfigError, match=message):
        cron = extra[1] if extra[0] == "--cron" else None
        interval = int(extra[1]) if extra[0] == "--interval-seconds" else None
        ScheduleConfig(host="http://127.0.0.1:1", name="x", params={}, cron=cron, interval_seconds=interval)
    with pytest.raises(ConfigError, match="exactly one of"):
        ScheduleConfig(host="http://127.0.0.1:1", name="x", params={})


def test_schedule_checks_parameters_against_the_monitoring_pipeline():
    from credit_risk.app.submit import ScheduleConfig, schedule

    with pytest.raises(ConfigError, match=r"missing required pipeline parameter\(s\) \['current_data_uri'\]"):
        schedule(
            ScheduleConfig(
                host="http://127.0.0.1:1",
                name="x",
                params={k: v for k, v in MONITORING_PARAMS.items() if k != "current_data_uri"},
                cron="0 0 6 * * *",
            )
        )


@pytest.mark.parametrize("root", ["gs://bank-kfp/root", "s3://bank-kfp/root"])
def test_an_object_store_pipeline_root_reaches_the_run(root):
    """The local runner's root is a local directory, so the cluster's (gs:// on GCP, s3:// on AWS)
    is checked here, at submit time, and handed to the run as KFP expects."""
    with FakeKfpApi() as api:
        args = ["submit", "--host", api.url, "--pipeline-root", root]
        args += ["--param=data_uri=s3://b/d.csv", "--param=feature_spec_uri=s3://b/s.yaml"]
        assert cli.main(args) == cli.EXIT_OK
    run = next(r for r in api.requests if r["path"] == "/apis/v2beta1/runs")
    assert run["body"]["runtime_config"]["pipeline_root"] == root


@pytest.mark.parametrize("root", ["/tmp/kfp-root", "s3://", "file:///tmp/x"])
def test_a_pipeline_root_no_cluster_can_write_is_refused_before_submitting(root):
    with pytest.raises(ConfigError, match=r"--pipeline-root: .*object store"):
        SubmitConfig(host="http://127.0.0.1:1", pipeline_root=root)


def _caching(spec):
    return {
        name: t.get("cachingOptions", {}).get("enableCache", False)
        for name, t in spec["root"]["dag"]["tasks"].items()
    }


def test_submit_leaves_per_step_caching_alone_unless_told_to_disable_it_and_names_the_runner_account():
    """kfp.Client(enable_caching=True) would overwrite every step's compiled setting (a cached
    live ingest, a cached deploy): submit passes nothing by default, False with --no-cache."""
    with FakeKfpApi() as api:
        submit(SubmitConfig(host=api.url, params=PARAMS))
        submit(SubmitConfig(host=api.url, params=PARAMS, no_cache=True, service_account=""))
    first, second = [r["body"] for r in api.requests if r["path"] == "/apis/v2beta1/runs"]
    assert _caching(first["pipeline_spec"]) == {
        "history-features": False, "ingest": False, "validate": True, "split": True, "train": True,
        "evaluate": False, "deploy": False,
    }  # fmt: skip
    assert set(_caching(second["pipeline_spec"]).values()) == {False}
    assert first["service_account"] == "credit-risk-pipeline-runner"
    assert "service_account" not in second or not second["service_account"]  # the profile's default-editor
    with pytest.raises(ConfigError, match="--no-cache applies to an inline pipeline spec only"):
        SubmitConfig(host="http://kfp", upload=True, no_cache=True)


def test_schedule_names_the_runner_account_and_can_only_disable_caching():
    with FakeKfpApi() as api:
        args = ["schedule", "--host", api.url, "--name", "daily", "--cron", "0 0 6 * * *", "--no-cache"]
        args += [
            "--param=model_uri=gs://b/m",
            "--param=baseline_data_uri=gs://b/t",
            "--param=current_data_uri=gs://b/c",
        ]
        assert cli.main(args) == cli.EXIT_OK
    job = next(r["body"] for r in api.requests if r["path"] == "/apis/v2beta1/recurringruns")
    assert job["service_account"] == "credit-risk-pipeline-runner"
    assert set(_caching(job["pipeline_spec"]).values()) == {False}
