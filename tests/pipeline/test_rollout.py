"""Rollout policy through the real ``kubernetes`` client against tests/kube_api_fake.py, a
protocol-level fake of the API server's InferenceService REST paths (no cluster can run here)."""

import pytest

from credit_risk.release import deploy
from credit_risk.release.infra_validation import http_smoke
from credit_risk.release.rollout import (
    SERVING_URI_ANNOTATION,
    InferenceServiceApi,
    KubeApiError,
    RbacError,
    RolloutConfig,
    RolloutError,
    resolve_cluster_uri,
    rollout,
)
from tests.kube_api_fake import FakeKubeApi

NS = "credit-risk"
BODY = {"instances": [{"x": 1.0}, {"x": 2.0}]}
FAST = RolloutConfig(canary_traffic_percent=10, timeout_seconds=1.5, poll_seconds=0.05)


def _manifest(version):
    return deploy.render_inference_service(
        f"gs://bucket/models/credit-risk/{version}",
        deploy.DeployConfig(name="credit-risk"),
        version,
        "a1b2c3",
    )


@pytest.fixture
def fake():
    with FakeKubeApi() as api:
        yield api


def _roll(fake, manifest, config=FAST, expected_pds=None):
    """The rollout as the deploy step runs it; cluster-local names reach the fake through its
    gateway address (the Host header says which service)."""
    api = InferenceServiceApi(NS, host=fake.url)
    smoke = http_smoke("credit-risk", BODY, timeout=5, expected_pds=expected_pds, gateway=fake.url)
    return rollout(api, manifest, smoke, config)


LATEST = "latest-credit-risk-predictor.credit-risk.svc.cluster.local"  # the newest revision's tag service


def test_first_deployment_is_created_at_full_traffic_after_ready_and_smoke(fake):
    result = _roll(fake, _manifest("m-1"))
    assert result.action == "created" and result.revision == "credit-risk-predictor-00001"
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-predictor-00001": 100}
    verbs = [v for v, _ in fake.api_calls()]
    assert verbs[:2] == ["get", "create"] and set(verbs[2:]) == {"get"}  # create, then poll until Ready
    created = fake.api_calls()[1][1]
    assert "canaryTrafficPercent" not in created["spec"]["predictor"]
    assert created["metadata"]["labels"]["credit-risk/model-version"] == "m-1"
    assert created["metadata"]["labels"]["credit-risk/approval-id"] == "a1b2c3"
    assert fake.smoke_queries() == [LATEST]  # cluster-local: status.url is external, unreachable from a pod


def test_update_goes_out_as_a_canary_then_is_promoted(fake):
    fake.seed(_manifest("m-1"))
    result = _roll(fake, _manifest("m-2"))
    assert result.action == "promoted"
    assert (result.revision, result.previous_revision) == (
        "credit-risk-predictor-00002",
        "credit-risk-predictor-00001",
    )
    patches = [body for verb, body in fake.api_calls() if verb == "patch"]
    assert patches[0]["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patches[0]["spec"]["predictor"]["containers"][0]["env"][0]["value"].endswith("/m-2")
    # the canary does not claim to serve; promotion (key removed = 100 %) does
    assert SERVING_URI_ANNOTATION not in patches[0]["metadata"]["annotations"]
    assert patches[1] == {
        "spec": {"predictor": {"canaryTrafficPercent": None}},
        "metadata": {"annotations": {SERVING_URI_ANNOTATION: "gs://bucket/models/credit-risk/m-2"}},
    }
    # the smoke query went to the canary revision alone, before promotion
    assert fake.smoke_queries() == [LATEST]
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-predictor-00002": 100}


def test_canary_that_never_becomes_ready_is_rolled_back(fake):
    fake.seed(_manifest("m-1"))
    fake.revision_script = ["never_ready"]
    with pytest.raises(RolloutError, match=r"rolled back.*credit-risk-predictor-00001.*timed out after 1.5s"):
        _roll(fake, _manifest("m-2"))
    assert [b for v, b in fake.api_calls() if v == "patch"][-1] == {
        "spec": {"predictor": {"canaryTrafficPercent": 0}}
    }
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-predictor-00001": 100}
    assert fake.smoke_queries() == []


def test_failed_revision_rolls_back_without_waiting_for_the_timeout(fake):
    fake.seed(_manifest("m-1"))
    fake.revision_script = ["fail"]
    slow = RolloutConfig(canary_traffic_percent=20, timeout_seconds=60, poll_seconds=0.05)
    with pytest.raises(RolloutError, match=r"RevisionFailed.*container exited with code 1"):
        _roll(fake, _manifest("m-2"), slow)
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-predictor-00001": 100}


def test_canary_failing_its_smoke_query_is_rolled_back(fake):
    fake.seed(_manifest("m-1"))
    fake.smoke_script = {"credit-risk-predictor-00002": "bad"}
    with pytest.raises(RolloutError, match=r"rolled back.*HTTP 500.*model failed to load"):
        _roll(fake, _manifest("m-2"))
    # 0 % to the failed canary, everything back on the previous revision
    assert fake.traffic(NS, "credit-risk") == {
        "credit-risk-predictor-00002": 0,
        "credit-risk-predictor-00001": 100,
    }


def test_create_conflict_falls_back_to_patch(fake):
    fake.seed(_manifest("m-1"))
    fake.hide_next_get = True  # another run created it between our GET and our POST
    result = _roll(fake, _manifest("m-2"))
    assert [v for v, _ in fake.api_calls()][:4] == ["get", "create", "get", "patch"]
    assert result.action == "promoted"


@pytest.mark.parametrize("verb, seeded", [("create", False), ("patch", True), ("get", False)])
def test_forbidden_verb_is_a_clear_rbac_error(fake, verb, seeded):
    if seeded:
        fake.seed(_manifest("m-1"))
    fake.forbid = {verb}
    with pytest.raises(
        RbacError, match=rf"may not '{verb}' inferenceservices.serving.kserve.io .*manifests/base/rbac.yaml"
    ):
        _roll(fake, _manifest("m-2"))


def test_rbac_role_grants_every_verb_the_rollout_uses():
    import yaml

    from tests.helpers import REPO

    role = next(
        d for d in yaml.safe_load_all((REPO / "manifests/base/rbac.yaml").read_text()) if d["kind"] == "Role"
    )
    (rule,) = role["rules"]  # one rule: nothing beyond InferenceServices
    assert rule == {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "create", "patch"],
    }


@pytest.mark.parametrize("percent", [0, 100, 150])
def test_canary_percent_must_leave_room_for_both_revisions(percent):
    from credit_risk.errors import ConfigError

    with pytest.raises(ConfigError, match=r"canary_traffic_percent must be 1\.\.99"):
        deploy.DeployConfig(name="x", canary_traffic_percent=percent)


def test_the_serving_model_is_the_promoted_one_and_stays_put_on_a_rollback(fake):
    """``isvc://<namespace>/<name>`` names the model that takes all traffic: the evaluate step's
    champion. A canary that is rolled back leaves it at the previous model."""
    where = f"isvc://{NS}/credit-risk"
    assert resolve_cluster_uri(where, fake.url) is None  # nothing deployed yet
    _roll(fake, _manifest("m-1"))
    assert resolve_cluster_uri(where, fake.url) == "gs://bucket/models/credit-risk/m-1"
    fake.smoke_script = {"credit-risk-predictor-00002": "bad"}
    with pytest.raises(RolloutError, match="rolled back"):
        _roll(fake, _manifest("m-2"))
    assert resolve_cluster_uri(where, fake.url) == "gs://bucket/models/credit-risk/m-1"
    fake.smoke_script = {}
    _roll(fake, _manifest("m-3"))
    assert resolve_cluster_uri(where, fake.url) == "gs://bucket/models/credit-risk/m-3"
    foreign = _manifest("m-x")
    foreign["metadata"].update(name="hand-made", annotations={})
    fake.seed(foreign)
    with pytest.raises(KubeApiError, match=r"'hand-made' .* has no 'credit-risk/serving-storage-uri'"):
        resolve_cluster_uri(f"isvc://{NS}/hand-made", fake.url)
    with pytest.raises(KubeApiError, match="is not isvc://<namespace>/<name>"):
        resolve_cluster_uri("isvc://credit-risk", fake.url)


def test_smoke_goes_to_cluster_local_addresses_never_the_external_url(fake):
    """As on a cluster, status.url and the tags' URLs are external names: a smoke query there
    fails (no such host from a pipeline pod). The rollout queries the cluster-local tag service."""
    _roll(fake, _manifest("m-1"))
    isvc = InferenceServiceApi(NS, host=fake.url).get("credit-risk")
    assert isvc["status"]["url"].endswith(".example.com")
    assert isvc["status"]["address"]["url"] == "http://credit-risk.credit-risk.svc.cluster.local"
    with pytest.raises(Exception, match="failed"):
        http_smoke("credit-risk", BODY, timeout=2, gateway="")(isvc["status"]["url"])
    assert http_smoke("credit-risk", BODY, gateway=fake.url)(isvc["status"]["address"]["url"]) == [0.25, 0.25]


def test_a_canary_serving_another_model_fails_its_smoke_and_is_rolled_back(fake):
    """The smoke answers are compared with the PDs infra validation computed for the same
    instances: a revision whose storage initializer fetched another model is caught."""
    fake.seed(_manifest("m-1"))
    with pytest.raises(
        RolloutError, match=r"rolled back.*instance 0 scored PD 0.250000.*approved model gives 0.310000"
    ):
        _roll(fake, _manifest("m-2"), expected_pds=[0.31, 0.12])
    assert fake.traffic(NS, "credit-risk") == {
        "credit-risk-predictor-00002": 0,
        "credit-risk-predictor-00001": 100,
    }


def test_every_wait_reads_a_status_the_controller_has_observed(fake):
    """After each write the fake shows the pre-write status once (observedGeneration behind
    metadata.generation); the rollout waits past it on every write - create, canary, promote."""
    fake.seed(_manifest("m-1"))
    _roll(fake, _manifest("m-2"))
    gets = [b for v, b in fake.api_calls() if v == "get"]
    assert len(gets) >= 3
    isvc = InferenceServiceApi(NS, host=fake.url).get("credit-risk")
    assert (
        isvc["status"]["observedGeneration"] == isvc["metadata"]["generation"] == 3
    )  # seed, canary, promote


def test_the_fake_api_server_validates_like_the_real_one(fake):
    """Schema (422 naming the field), pruning of unknown fields (with a Warning header), optimistic
    concurrency (409 on a stale resourceVersion) - what a real API server does with a CRD."""
    import json
    import urllib.request

    api = InferenceServiceApi(NS, host=fake.url)
    bad = _manifest("m-1")
    bad["spec"]["predictor"]["minReplicas"] = "two"
    with pytest.raises(
        KubeApiError, match=r"spec\.predictor\.minReplicas.*'two' is not of type 'integer'"
    ) as e:
        api.create(bad)
    assert e.value.status == 422
    typo = _manifest("m-1")
    typo["spec"]["predictor"]["minReplica"] = 1  # unknown: dropped, with a warning, as the server does
    request = urllib.request.Request(
        f"{fake.url}/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices",
        data=json.dumps(typo).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as resp:
        created, warning = json.loads(resp.read()), resp.headers.get("Warning", "")
    assert "minReplica" not in created["spec"]["predictor"]
    assert 'unknown field \\"spec.predictor.minReplica\\"' in warning
    stale = {"metadata": {"resourceVersion": "0"}, "spec": {"predictor": {"minReplicas": 2}}}
    with pytest.raises(KubeApiError, match="the object has been modified") as e:
        api.patch("credit-risk", stale)
    assert e.value.status == 409


# --- Standard mode: spec.canary (a second Deployment), promotion retargets the stable predictor ---
M1, M2, M3 = "m-111111aaaaaaaaaa", "m-222222bbbbbbbbbb", "m-333333cccccccccc"


def _standard(version):
    config = deploy.DeployConfig(
        name="credit-risk", deployment_mode="Standard", scale_metric="cpu", scale_target=70
    )
    return deploy.render_inference_service(
        f"gs://bucket/models/credit-risk/{version}", config, version, "a1b2c3"
    )


def test_standard_mode_first_deployment_is_smoked_at_the_services_cluster_local_address(fake):
    result = _roll(fake, _standard(M1))
    assert result.action == "created" and result.revision == "credit-risk-predictor"
    assert fake.smoke_queries() == ["credit-risk-predictor.credit-risk.svc.cluster.local"]
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-predictor": 100}


def test_standard_mode_update_is_a_spec_canary_then_the_stable_predictor_is_retargeted(fake):
    fake.seed(_standard(M1))
    result = _roll(fake, _standard(M2))
    assert (result.action, result.revision, result.previous_revision) == (
        "promoted", "credit-risk-v222222-predictor", "credit-risk-predictor",
    )  # fmt: skip
    canary, promote = [body for verb, body in fake.api_calls() if verb == "patch"]
    (entry,) = canary["spec"]["canary"]
    assert entry["trafficPercent"] == 10 and entry["predictor"]["name"] == "v222222"
    assert not {"maxReplicas", "scaleMetric", "scaleTarget"} & set(entry["predictor"])  # the webhook's rule
    assert entry["predictor"]["containers"][0]["env"][0]["value"].endswith(M2)
    assert "predictor" not in canary["spec"]  # the stable predictor keeps serving the old model
    assert SERVING_URI_ANNOTATION not in canary["metadata"]["annotations"]
    # smoke-queried at the canary's own Service, before promotion
    assert fake.smoke_queries() == ["credit-risk-v222222-predictor.credit-risk.svc.cluster.local"]
    assert promote["spec"]["canary"] == [] and promote["spec"]["predictor"]["name"] == "v222222"
    assert promote["metadata"]["annotations"][SERVING_URI_ANNOTATION].endswith(M2)
    svc = fake.services[(NS, "credit-risk")]
    assert set(svc.deployments) == {"credit-risk-v222222-predictor"}  # the old one is an orphan, removed
    assert svc.deployments["credit-risk-v222222-predictor"]["polls"] > fake.polls_until_ready  # not restarted
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-v222222-predictor": 100}
    # the next model goes out under its own name beside the retargeted stable one
    again = _roll(fake, _standard(M3))
    assert (again.revision, again.previous_revision) == (
        "credit-risk-v333333-predictor",
        "credit-risk-v222222-predictor",
    )
    assert set(svc.deployments) == {"credit-risk-v333333-predictor"}


def test_standard_mode_canary_failing_its_smoke_is_removed_and_the_stable_one_untouched(fake):
    fake.seed(_standard(M1))
    fake.smoke_script = {"credit-risk-v222222-predictor": "bad"}
    with pytest.raises(RolloutError, match=r"rolled back: the canary was removed.*HTTP 500"):
        _roll(fake, _standard(M2))
    assert [b for v, b in fake.api_calls() if v == "patch"][-1] == {"spec": {"canary": []}}
    svc = fake.services[(NS, "credit-risk")]
    assert set(svc.deployments) == {"credit-risk-predictor"} and not svc.obj["spec"].get("canary")
    assert svc.obj["spec"]["predictor"]["containers"][0]["env"][0]["value"].endswith(M1)


def test_standard_mode_canary_that_never_becomes_ready_is_removed_after_the_timeout(fake):
    fake.seed(_standard(M1))
    fake.revision_script = ["never_ready"]
    with pytest.raises(
        RolloutError,
        match=r"removed.*timed out after 1.5s waiting for the canary Deployment "
        r"credit-risk-v222222-predictor to become Ready with 10% of traffic "
        r"\(canary v222222 ready=False at 10%",
    ):
        _roll(fake, _standard(M2))
    assert fake.traffic(NS, "credit-risk") == {"credit-risk-predictor": 100}
    assert fake.smoke_queries() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["metadata"]["annotations"].update({"serving.kserve.io/deploymentMode": "Knative"}),
         "only supported in Standard deployment mode"),
        (lambda m: m["spec"]["canary"][0]["predictor"].update({"maxReplicas": 3}),
         "may not set autoscaling fields"),
        (lambda m: m["spec"]["canary"].append(m["spec"]["canary"][0]), "must be unique"),
        (lambda m: m["spec"]["canary"].append({**m["spec"]["canary"][0], "trafficPercent": 95,
                   "predictor": {**m["spec"]["canary"][0]["predictor"], "name": "v2"}}),
         "sum to at most 100"),
        (lambda m: m["spec"]["canary"][0]["predictor"].pop("name"), "must be a DNS-1123 label"),
    ],
)  # fmt: skip
def test_the_fake_plays_kserves_canary_webhook(fake, change, message):
    """What KServe's validating webhook refuses on spec.canary is refused here too (403, as
    controller-runtime denies), so a rollout that would be refused on a cluster fails here."""
    manifest = _standard(M1)
    predictor = {
        k: v
        for k, v in manifest["spec"]["predictor"].items()
        if k not in ("maxReplicas", "scaleMetric", "scaleTarget")
    }
    manifest["spec"]["canary"] = [{"trafficPercent": 10, "predictor": {**predictor, "name": "v1"}}]
    change(manifest)
    with pytest.raises(KubeApiError, match=f"denied the request: .*{message}") as e:
        InferenceServiceApi(NS, host=fake.url).create(manifest)
    assert e.value.status == 403
