"""Each quality gate of bin/check fails on a planted violation (in a temp copy, never the repo)."""

import datetime as dt
import subprocess
from importlib.machinery import SourceFileLoader

import pytest

from tests.helpers import REPO

Q = REPO / ".venvs" / "quality" / "bin"
check = SourceFileLoader("check", str(REPO / "bin" / "check")).load_module()


def _run(*cmd, cwd=REPO):
    proc = subprocess.run(
        [str(c) for c in cmd], check=False, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_ruff_catches_a_planted_lint_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f(x):\n    return x == None\n")
    rc, out = _run(Q / "ruff", "check", "--config", REPO / "ruff.toml", bad)
    assert rc == 1 and "F401" in out and "E711" in out


def test_ruff_format_catches_unformatted_code(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("x = {  'a':1 }\n")
    rc, _ = _run(Q / "ruff", "format", "--check", "--config", REPO / "ruff.toml", bad)
    assert rc == 1


def test_mypy_is_strict_on_the_pure_core(tmp_path):
    pkg = tmp_path / "credit_risk"
    for sub in ("evidence", "modeling"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "evidence" / "metrics.py").write_text("def score(y, s):\n    return 1\n")
    (pkg / "modeling" / "training.py").write_text("def fit(y, s):\n    return 1\n")
    rc, out = _run(Q / "mypy", "--config-file", REPO / "mypy.ini", "credit_risk", cwd=tmp_path)
    assert rc == 1 and "metrics.py:1: error: Function is missing a type annotation" in out
    assert "training.py" not in out  # the non-core module is checked, not held to strict typing


def test_hadolint_catches_latest_and_unpinned_installs(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    rc, out = _run(Q / "hadolint", "--config", REPO / ".hadolint.yaml", bad)
    assert rc == 1 and "DL3007" in out and "DL3013" in out


def test_workflow_schema_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    stepz:\n      - run: bin/test\n"
    )
    rc, _ = _run(Q / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", bad)
    assert rc == 1


def test_jenkinsfile_steps_must_exist():
    text = (REPO / "Jenkinsfile").read_text()
    assert check.jenkinsfile_problems(text) == []
    planted = text + "\nsh '''bin/deploy-all --now \\\n  --force && rm -rf /tmp/x'''\n"
    assert check.jenkinsfile_problems(planted) == [
        "step calls 'bin/deploy-all', which is not a file in the repo",
        "step calls 'rm', which is not a file in the repo",
    ]


REPORT = {
    "dependencies": [
        {
            "name": "urllib3",
            "version": "1.0",
            "vulns": [{"id": "PYSEC-1", "aliases": ["GHSA-aaaa"], "fix_versions": ["2.0"]}],
        },
        {"name": "six", "version": "1.0", "vulns": []},
        {
            "name": "numpy",
            "version": "1.0",
            "skip_reason": "Dependency not found on PyPI and could not be audited",
        },
    ]
}


def test_audit_finding_fails_unless_waived():
    findings, audited, unreachable = check.audit_findings(REPORT, waived=set())
    assert findings == ["urllib3 1.0: PYSEC-1 (fix: ['2.0'])"] and (audited, unreachable) == (2, 1)
    assert check.audit_findings(REPORT, waived={"GHSA-aaaa"})[0] == []


def test_waivers_need_every_field_and_expire(tmp_path):
    path = tmp_path / "w.toml"
    path.write_text(
        '[[waiver]]\nid = "GHSA-1"\npackage = "a"\nreason = "not reachable"\nrevisit = 2030-01-01\n'
        '[[waiver]]\nid = "GHSA-2"\npackage = "b"\nreason = "old"\nrevisit = 2020-01-01\n'
        '[[waiver]]\nid = "GHSA-3"\npackage = "c"\nrevisit = 2030-01-01\n'
    )
    active, problems = check.load_waivers(path, today=dt.date(2026, 11, 28))
    assert active == {"GHSA-1"}
    assert problems == [
        "waiver GHSA-2 (b) expired on 2020-01-01: re-review it",
        "waiver GHSA-3: missing ['reason']",
    ]


def test_zizmor_catches_unpinned_actions_and_persisted_credentials(tmp_path):
    (tmp_path / "bad.yml").write_text(
        "on: push\npermissions: {}\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: bin/test\n"
    )
    ok, detail = check.gate_zizmor(tmp_path / "bad.yml")
    assert not ok and "unpinned-uses" in detail and "artipacked" in detail, detail


@pytest.mark.parametrize(
    "gate", ["ruff", "ruff-format", "hadolint", "workflows", "zizmor", "jenkinsfile", "manifests", "imports"]
)
def test_gate_passes_on_the_repo(gate):
    ok, detail = check.GATES[gate]()
    assert ok, detail


def test_manifest_scan_catches_a_privileged_root_container(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: credit-risk}\n"
        "spec:\n  selector: {matchLabels: {app: bad}}\n  template:\n    metadata: {labels: {app: bad}}\n"
        "    spec:\n      containers:\n        - name: c\n          image: registry.example/x:1.0\n"
        "          securityContext: {privileged: true, runAsUser: 0}\n"
    )
    ok, detail = check.scan_manifests(tmp_path)
    assert not ok
    # privileged, no CPU limits, privilege escalation, writable root filesystem, root user
    for check_id in ("CKV_K8S_16", "CKV_K8S_11", "CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23"):
        assert check_id in detail, detail


def test_core_objects_are_validated_against_the_kubernetes_schemas(tmp_path):
    """What the API server would refuse on apply: a wrong type, an unknown field (strict)."""
    (tmp_path / "ok.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: fine, namespace: credit-risk}\n"
    )
    ok, detail = check.validate_core_objects(tmp_path)
    assert ok, detail
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bad}\n"
        "spec:\n  podSelector: {matchLabels: {app: x}}\n"
        "  ingress:\n    - ports: [{port: 8080, protocl: TCP}]\n"
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: bad}\n"
        "rules:\n  - apiGroups: ['']\n    resources: pods\n    verbs: [get]\n"
    )
    ok, detail = check.validate_core_objects(tmp_path)
    assert not ok
    assert "protocl" in detail and "networkpolicy/bad" in detail.lower(), detail
    assert "role/bad" in detail.lower() and "is not of type 'array'" in detail, detail


def test_offline_audit_matches_the_vendored_snapshot():
    date, advisories = check.load_advisories()
    assert date == "2024-10-10" and len(advisories) > 400
    # the finding the offline audit exists for, and a version past its fix
    assert any(
        "PYSEC-2023-238" in f for f in check.offline_findings({"pyarrow": "10.0.1"}, advisories, set())
    )
    assert check.offline_findings({"pyarrow": "14.0.1"}, advisories, set()) == []
    assert check.offline_findings({"pyarrow": "10.0.1"}, advisories, {"CVE-2023-47248"}) == []
    # ranges with several introduced/fixed pairs, and PEP 503 names from a lock
    pins = check.lock_pins(
        "Urllib3==1.24.1 \\\n    --hash=sha256:ab\nzope.interface==5.0 ; python_version>'3'\n"
    )
    assert pins == {"urllib3": "1.24.1", "zope-interface": "5.0"}
    assert check.offline_findings({"urllib3": "1.24.1"}, advisories, set())
    assert not check.affects(
        {
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}],
                }
            ]
        },
        "1.5",
    )
    assert check.affects(
        {
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "1.0"}, {"fixed": "1.2"}, {"introduced": "2.0"}],
                }
            ]
        },
        "2.3",
    )


@pytest.mark.parametrize(
    ("online", "passes", "state"),
    [
        (lambda lock, waived: ("ONLINE", [], "9 packages audited online"), True, "AUDITED-ONLINE"),
        (lambda lock, waived: ("UNREACHABLE", [], "no route"), True, "AUDITED-OFFLINE(2024-10-10)"),
        (lambda lock, waived: ("CRASHED", [], "pip-audit exit 2: Traceback"), False, "FAILED"),
        (lambda lock, waived: ("ONLINE", ["x 1: GHSA-1"], "1 audited"), False, "AUDITED-ONLINE"),
    ],
    ids=["online", "offline", "crash-fails", "online-finding-fails"],
)
def test_audit_gate_says_which_audit_ran_and_never_passes_on_nothing(online, passes, state):
    ok, detail = check.gate_pip_audit(online=online)
    assert ok is passes, detail
    assert all(
        line.split(": ", 1)[1].startswith(state)
        for line in detail.splitlines()
        if line.endswith("findings") or "FAILED" in line
    ), detail


def test_an_unreachable_audit_service_is_asked_once_and_every_lock_still_audited_offline():
    asked = []

    def unreachable(lock, waived):
        asked.append(lock.name)
        return "UNREACHABLE", [], "pip-audit exit 1: connection refused"

    ok, detail = check.gate_pip_audit(online=unreachable)
    locks = sorted(p.name for p in (REPO / "locks").glob("*.txt"))
    assert ok and len(asked) == 1 and len(locks) > 1, detail
    audited = [line for line in detail.splitlines() if "AUDITED-OFFLINE" in line]
    assert [line.split(":")[0] for line in audited] == locks  # each lock still audited offline
    assert all("not retried" in line for line in audited[1:])


def test_online_audit_without_json_is_a_crash_not_a_pass(monkeypatch):
    monkeypatch.setattr(check, "run", lambda cmd: (1, "Traceback (most recent call last):\nKeyError: 'x'"))
    state, _findings, detail = check.online_audit(REPO / "locks" / "serving.txt", set())
    assert state == "CRASHED" and "KeyError" in detail
    monkeypatch.setattr(check, "run", lambda cmd: (1, "requests.exceptions.ConnectionError: Max retries"))
    assert check.online_audit(REPO / "locks" / "serving.txt", set())[0] == "UNREACHABLE"


# modules allowed to look at a URI's scheme: the storage package (data URIs), deploy (what KServe's
# storage initializer can fetch) and rollout (isvc://, not a storage scheme)
SCHEME_OWNERS = ("credit_risk/storage/", "credit_risk/release/deploy.py", "credit_risk/release/rollout.py")


def _scheme_tests(path):
    """(line, literal) of each comparison of a string with a literal holding '://' in ``path``:
    ``x.startswith("gs://")``, ``"s3://" in x``, ``x == "gs://…"``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        literals = []
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("startswith", "removeprefix"):
            literals = [a for arg in node.args for a in ast.walk(arg) if isinstance(a, ast.Constant)]
        elif isinstance(node, ast.Compare):
            literals = [a for a in [node.left, *node.comparators] if isinstance(a, ast.Constant)]
        found += [
            (node.lineno, a.value)
            for a in literals
            if isinstance(a.value, str) and "://" in a.value and not a.value.startswith("http")
        ]  # http(s):// checks validate endpoints (--host, logger_url), not data URIs
    return found


def test_no_module_outside_storage_tests_a_uri_scheme(tmp_path):
    """gs:// and s3:// are the storage package's business (issue: one interface, backends by
    scheme); the check itself is shown to catch a planted branch."""
    planted = tmp_path / "planted.py"
    planted.write_text('def f(uri):\n    return uri.startswith(("gs://", "x")) or "s3://" in uri\n')
    assert [v for _, v in _scheme_tests(planted)] == ["gs://", "s3://"]
    offenders = {}
    for folder in ("credit_risk", "components", "pipelines", "serving"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if not relative.startswith(SCHEME_OWNERS) and (hits := _scheme_tests(path)):
                offenders[relative] = hits
    assert offenders == {}, "ask credit_risk.storage (is_remote, scheme, ...) instead"


def test_xdist_groups_keep_tests_sharing_a_run_on_one_worker(tmp_path):
    """bin/test runs this suite with ``-n auto --dist loadgroup`` so the tests sharing the one
    german_credit run (GERMAN_RUN_GROUP) compute it once. pytest 9.2 made that grouping a silent
    no-op (pytest-xdist#1386) and the run was computed twice, 2 minutes lost; this catches it."""
    import sys

    (tmp_path / "conftest.py").write_text(
        "import os, pytest\n"
        "@pytest.fixture(scope='session')\n"
        "def shared():\n"
        "    with open(os.path.join(os.path.dirname(__file__), 'runs.txt'), 'a') as f:\n"
        "        f.write(os.environ.get('PYTEST_XDIST_WORKER', '-') + '\\n')\n"
    )
    for name in "abcdefgh":  # grouped tests in eight modules, with ungrouped ones around them
        (tmp_path / f"test_{name}.py").write_text(
            "import pytest\n"
            "def test_free(): pass\n"
            f"@pytest.mark.xdist_group('run')\ndef test_{name}(shared): pass\n"
            "def test_free2(): pass\n"
        )
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    rc, out = _run(sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", cwd=tmp_path)
    assert rc == 0, out
    assert len((tmp_path / "runs.txt").read_text().split()) == 1, "the shared fixture ran on several workers"


def test_ci_runs_exactly_the_readmes_test_command():
    """Non-negotiable: `.ci/run` calls the README's one test command, nothing else."""
    import re

    readme = (REPO / "README.md").read_text()
    block = re.search(r"Run every test[^\n]*\n\n```bash\n(.*?)```", readme, re.S)
    assert block, "README has no 'Run every test' command block"
    (command,) = [ln.split("#")[0].strip() for ln in block.group(1).splitlines() if ln.strip()]
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    steps = [ln for ln in ci if ln and not ln.startswith(("#", "set ", "cd "))]
    assert steps == [f"exec {command}"], steps


LAYERS, CYCLES, APP = "App -> pipelines", "No import cycles", "cli -> local_run"


def _repo_copy(tmp_path):
    import shutil

    root = tmp_path / "repo"
    for name in ("credit_risk", "components", "pipelines", "serving"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", ".importlinter"):
        shutil.copy(REPO / name, root / name)
    return root


@pytest.mark.parametrize(
    ("path", "line", "broken"),
    [
        # the core imports the app (inside a function: deferred imports count too); the app already
        # imports the core, so this is a cycle as well
        (
            "credit_risk/evidence/metrics.py",
            "def _f():\n    from credit_risk.app import cli\n",
            {LAYERS, CYCLES, APP},
        ),
        # a component imports a pipeline: the package_dir folders are layered as installed
        ("components/split.py", "from credit_risk.pipelines import policy\n", {LAYERS, CYCLES}),
        # the predictor imports a step (nothing imports the predictor: no cycle)
        ("serving/metrics.py", "from credit_risk import steps\n", {LAYERS}),
        # a cycle between two modules of one package (gate already imports vintage); a lower
        # package reaching up into a higher one (also a cycle: evidence imports spec)
        (
            "credit_risk/evidence/vintage.py",
            "def _g():\n    from credit_risk.evidence import gate\n",
            {CYCLES},
        ),
        (
            "credit_risk/spec/rating.py",
            "def _g():\n    from credit_risk.evidence import vintage\n",
            {LAYERS, CYCLES},
        ),
        # inside the app: an entry point imports another
        ("credit_risk/app/submit.py", "def _s():\n    from credit_risk.app import local_run\n", {APP}),
        # the data side loads TensorFlow
        ("credit_risk/dataset/ingest.py", "def _h():\n    import tensorflow\n", {"never reach TensorFlow"}),
        # a new module no layer names
        ("credit_risk/newcomer.py", "X = 1\n", {LAYERS}),
    ],
)
def test_the_import_contract_fails_on_a_planted_violation(tmp_path, path, line, broken):
    root = _repo_copy(tmp_path)
    assert check.gate_imports(root)[0]  # the copy passes before the plant
    target = root / path
    target.write_text((target.read_text() if target.exists() else "") + "\n\n" + line)
    ok, detail = check.gate_imports(root)
    assert not ok and "BROKEN" in detail, detail
    broken_lines = [ln for ln in detail.splitlines() if ln.endswith("BROKEN")]
    assert len(broken_lines) == len(broken), detail
    assert all(any(name in ln for ln in broken_lines) for name in broken), detail
