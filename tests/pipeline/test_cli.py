import json
import subprocess
import sys

import pytest

from credit_risk.app import cli
from tests.helpers import CREDIT_SPEC, REPO


def _commands() -> list[str]:
    import argparse

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


COMMANDS = _commands()


def test_every_documented_command_exists():
    assert {"compile", "run-local", "submit", "schedule", "score", "monitor", "serve", "train"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_everywhere(command):
    out = subprocess.run(
        [sys.executable, "-m", "credit_risk.app.cli", *command, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    assert out.startswith("usage: credit-risk")


def test_datasets_lists_bundled(capsys):
    assert cli.main(["datasets"]) == 0
    assert "credit_data" in capsys.readouterr().out


def test_unknown_dataset_is_a_clear_error(capsys):
    assert cli.main(["run-local", "--dataset", "nope"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "unknown dataset 'nope'" in err and "german_credit" in err


def test_bad_param_is_a_clear_error(capsys):
    assert cli.main(["run-local", "--param", "epochs"]) == cli.EXIT_FAILED
    assert "--param expects key=value, got 'epochs'" in capsys.readouterr().err


def test_infer_schema_never_replaces_a_curated_schema_unless_forced(tmp_path, capsys):
    curated = REPO / "data" / "german_credit.schema.pbtxt"
    before = curated.read_bytes()
    assert cli.main(["infer-schema", "--dataset", "german_credit"]) == cli.EXIT_FAILED
    assert "german_credit.schema.pbtxt exists" in capsys.readouterr().err
    assert curated.read_bytes() == before
    out = tmp_path / "inferred.schema.pbtxt"
    assert cli.main(["infer-schema", "--dataset", "german_credit", "-o", str(out)]) == cli.EXIT_OK
    assert 'name: "purpose"' in out.read_text()
    out.write_text("stale")
    assert cli.main(["infer-schema", "--dataset", "german_credit", "-o", str(out)]) == cli.EXIT_FAILED
    assert out.read_text() == "stale"
    assert cli.main(["infer-schema", "--dataset", "german_credit", "-o", str(out), "--force"]) == cli.EXIT_OK
    assert 'name: "purpose"' in out.read_text()


def test_sample_request(capsys):
    assert cli.main(["sample-request", "--spec", str(CREDIT_SPEC), "--rows", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["instances"]) == 3


def test_serve_without_serving_env_says_where_to_go(capsys):
    assert cli.main(["serve", "--model-dir", "/nowhere"]) == cli.EXIT_FAILED
    assert ".venvs/serving/bin/credit-risk serve" in capsys.readouterr().err


def test_parse_params_types():
    assert cli.parse_params(["a=1", "b=0.5", "c=text", "d=true"]) == {
        "a": 1,
        "b": 0.5,
        "c": "text",
        "d": True,
    }


def test_run_local_sql_flags_become_pipeline_parameters():
    args = cli.build_parser().parse_args(
        ["run-local", "--dataset", "credit_data", "--sql-query", "SELECT * FROM loans WHERE id > :min_id",
         "--sql-param", "min_id=100", "--sql-param", "region=north", "--epochs", "5"]
    )  # fmt: skip
    params = cli._pipeline_params(args)
    assert params["sql_query"] == "SELECT * FROM loans WHERE id > :min_id"
    assert params["sql_params"] == {"min_id": 100, "region": "north"}  # typed like --param values
    assert params["epochs"] == 5 and not any("password" in k.lower() for k in params)


def test_compile_writes_both_pipelines_and_output_needs_a_pipeline(tmp_path, capsys):
    assert cli.main(["compile", "--output", str(tmp_path / "x.yaml")]) == cli.EXIT_FAILED
    assert "--output needs --pipeline" in capsys.readouterr().err
    out = tmp_path / "m.yaml"
    assert cli.main(["compile", "--pipeline", "monitoring", "--output", str(out)]) == cli.EXIT_OK
    assert "credit-risk-monitoring" in out.read_text()


def _doc_commands(path):
    """Shell commands of a Markdown file's ```bash blocks, continuation lines joined."""
    import re

    blocks = re.findall(r"```bash\n(.*?)```", (REPO / path).read_text(), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize(
    ("doc", "at_least"),
    [
        ("docs/kubeflow.md", 6),
        ("README.md", 4),
        ("docs/storage.md", 3),
        ("docs/history.md", 6),
        ("docs/credit-evidence.md", 2),
    ],
)
def test_every_credit_risk_and_kustomize_command_in_the_guides_is_valid(doc, at_least):
    """Each `credit-risk ...` command of a guide's bash blocks parses with the real CLI (flags
    exist, values typed), each `kubectl apply -k DIR` renders with kustomize - what can be checked
    here (docs/storage.md's commands also run against an S3 server: test_storage_s3.py)."""
    import shlex

    commands = _doc_commands(doc)
    checked = 0
    for command in commands:
        if not command.startswith(("credit-risk ", "kubectl apply -k ")):
            continue  # curl bodies and the like: not ours to check
        words = shlex.split(command.replace("...", "x"))
        if words[0] == "credit-risk":
            cli.build_parser().parse_args(words[1:])  # SystemExit (exit 2) on an unknown flag
            checked += 1
        elif words[:3] == ["kubectl", "apply", "-k"]:
            subprocess.run(
                [str(REPO / ".venvs/quality/bin/kubectl"), "kustomize", str(REPO / words[3])],
                check=True,
                capture_output=True,
            )
            checked += 1
    assert checked >= at_least, commands
