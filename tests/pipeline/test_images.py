"""Image tags derived from content: exactly the files each Dockerfile COPYs (less .dockerignore), so a
change on main to component or predictor code, or to a lock, changes the tag the compiled pipeline
names; the build command passes the same hash as the image's label."""

import json
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import pytest
import yaml
from credit_risk.pipelines.compile import COMPILED_FILE

from credit_risk.app import image_build
from credit_risk.errors import ConfigError, ImageBuildError
from credit_risk.release import images
from tests.helpers import REPO

TREE = ["docker", "locks", "setup.py", "credit_risk", "components", "pipelines", "serving", ".dockerignore"]


@pytest.fixture
def tree(tmp_path):
    for name in TREE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    (tmp_path / "README.md").write_text("docs\n")
    return tmp_path


def _hash(root: Path, name=images.PIPELINE_IMAGE_NAME) -> str:
    images._hash_tree.cache_clear()
    return images.content_hash(name, root)


def test_the_tag_follows_every_copied_file_and_nothing_else(tree):
    before = {n: _hash(tree, n) for n in images.DOCKERFILES}
    assert before == {n: _hash(REPO, n) for n in images.DOCKERFILES}  # same bytes, same hash
    # not copied into either image, or kept out by .dockerignore: the tag stays
    (tree / "README.md").write_text("other docs\n")
    (tree / "pipelines" / "training_pipeline.yaml").write_text("recompiled: true\n")
    (tree / "credit_risk" / "__pycache__").mkdir(exist_ok=True)
    (tree / "credit_risk" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert {n: _hash(tree, n) for n in images.DOCKERFILES} == before
    # component code: a new pipeline-image tag (and predictor tag: it installs the same package)
    with open(tree / "credit_risk" / "steps.py", "a") as fh:
        fh.write("\n# changed\n")
    assert _hash(tree) != before[images.PIPELINE_IMAGE_NAME]
    # a lock only the predictor copies changes the predictor's tag
    changed = _hash(tree, images.SERVING_IMAGE_NAME)
    with open(tree / "locks" / "serving.txt", "a") as fh:
        fh.write("\n")
    assert _hash(tree, images.SERVING_IMAGE_NAME) != changed
    # and the Dockerfile itself
    pipeline = _hash(tree)
    with open(tree / "docker" / "pipeline.Dockerfile", "a") as fh:
        fh.write("\n# changed\n")
    assert _hash(tree) != pipeline


def test_committed_yaml_names_the_images_of_this_tree():
    """Fails when a hashed file changed without recompiling (tests/pipeline/test_pipeline_compile.py
    compares the whole file; this names the cause)."""
    spec = yaml.safe_load(COMPILED_FILE.read_text())
    used = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    serving = spec["root"]["inputDefinitions"]["parameters"]["serving_image"]["defaultValue"]
    assert used == {images.pipeline_image()}, "run `credit-risk compile`: component code changed"
    assert serving == images.serving_image()
    assert images.pipeline_image().endswith(f":{images.default_tag(images.PIPELINE_IMAGE_NAME)}")


def test_inside_an_image_the_hash_comes_from_its_environment(tmp_path, monkeypatch):
    images._hash_tree.cache_clear()
    monkeypatch.setenv(images.HASH_ENV, "credit-risk-pipeline=abc123,credit-risk-predictor=def456")
    assert images.content_hash(images.PIPELINE_IMAGE_NAME, tmp_path) == "abc123"
    monkeypatch.delenv(images.HASH_ENV)
    with pytest.raises(FileNotFoundError, match="image tags are derived from the source tree"):
        images.content_hash(images.PIPELINE_IMAGE_NAME, tmp_path)


@pytest.mark.parametrize("builder", image_build.BUILDERS)
def test_build_command_passes_the_tag_hash_as_the_label(builder, tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    ref = images.serving_image("r.example")
    cmd = image_build.build_command(builder, images.SERVING_IMAGE_NAME, ref, REPO, "base:1", ca_bundle=ca)
    digest = images.content_hash(images.SERVING_IMAGE_NAME)
    assert cmd[cmd.index("-t") + 1] == ref and ref.endswith(digest[:12])
    assert f"IMAGE_CONTENT_HASH={digest}" in cmd and "BASE_IMAGE=base:1" in cmd
    assert cmd[-1] == str(REPO)
    if builder == "docker":
        assert cmd[:2] == ["docker", "build"] and "-v" not in cmd
    else:
        assert "--isolation" in cmd and f"{ca}:{ca}:ro" in cmd  # TLS inside the build, never baked in


def test_build_refuses_clearly_without_disk(monkeypatch):
    usage = lambda path: types.SimpleNamespace(free=3e9)  # noqa: E731
    with pytest.raises(ConfigError, match=r"not enough disk for credit-risk-pipeline: 3.0 GB free .* 14 GB"):
        image_build.check_disk("buildah", [images.PIPELINE_IMAGE_NAME], usage=usage)


def test_build_and_push_record_what_was_built(tmp_path, monkeypatch):
    monkeypatch.setattr(image_build, "check_disk", lambda builder, names: None)
    calls = []

    def run(cmd):
        calls.append(cmd)
        for arg in cmd:  # podman/buildah write the digest the registry stored here
            if arg.startswith("--digestfile="):
                Path(arg.split("=", 1)[1]).write_text("sha256:" + "ab" * 32 + "\n")
        return types.SimpleNamespace(returncode=0, stdout="")

    record = tmp_path / "images.json"
    built = image_build.build_images(
        "podman", "127.0.0.1:5000", push=True, tls_verify=False, record=record, run=run
    )
    assert [c[:2] for c in calls] == [["podman", "build"], ["podman", "push"]] * 2
    assert any(a.startswith("--digestfile=") for a in calls[1])
    assert "--tls-verify=false" in calls[1]
    doc = json.loads(record.read_text())
    assert [i["reference"] for i in doc["images"]] == [images.pipeline_image("127.0.0.1:5000"),
                                                       images.serving_image("127.0.0.1:5000")]  # fmt: skip
    assert built[0].digest == "sha256:" + "ab" * 32
    failing = lambda cmd: types.SimpleNamespace(returncode=1, stdout="")  # noqa: E731
    with pytest.raises(ImageBuildError, match=r"building .*credit-risk-pipeline.* failed"):
        image_build.build_images("podman", run=failing)


def test_the_wheel_an_image_installs_holds_every_module_of_the_tree(tmp_path):
    """The images install this package as a wheel built from what the Dockerfile COPYs; a module
    the packaging leaves out (credit_risk/storage/ once did) breaks every component in its pod,
    which only the image stage would otherwise see. Built here with the same PEP 517 backend."""
    dockerfile = (REPO / images.DOCKERFILES[images.PIPELINE_IMAGE_NAME]).read_text()
    context = tmp_path / "context"
    context.mkdir()
    for name in images.copied_sources(dockerfile):
        if name.startswith("locks"):
            continue
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    out = tmp_path / "wheels"
    out.mkdir()
    build = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    proc = subprocess.run([sys.executable, "-c", build, str(out)], cwd=context, check=False,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheel = out / proc.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as zf:
        installed = {n for n in zf.namelist() if n.endswith(".py")}
    installs_as = {"credit_risk": "credit_risk", "components": "credit_risk/components",
                   "pipelines": "credit_risk/pipelines", "serving": "credit_risk/serving"}  # fmt: skip
    expected = {
        f"{installs_as[top]}/{path.relative_to(REPO / top).as_posix()}"
        for top in installs_as
        for path in (REPO / top).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert "credit_risk/storage/s3.py" in expected
    assert expected - installed == set(), f"modules the wheel leaves out: {sorted(expected - installed)}"
