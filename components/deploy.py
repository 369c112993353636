from credit_risk.components._base import component
from kfp.dsl import Artifact, Input, Markdown, Metrics, Model, Output


@component
def deploy(
    model: Input[Model],
    approval: Input[Artifact],
    service_name: str,
    namespace: str,
    serving_image: str,
    fail_on_rejection: bool,
    serving_root: str,
    apply_to_cluster: bool,
    canary_traffic_percent: int,
    rollout_timeout_seconds: int,
    min_replicas: int,
    max_replicas: int,
    logger_url: str,
    deployment_mode: str,
    deployment: Output[Artifact],
    inference_service: Output[Artifact],
    status: Output[Markdown],
    deploy_metrics: Output[Metrics],
):
    """Deploy an approved model; record why not otherwise (see ``credit_risk.release.deploy``).

    Always runs (no ``dsl.If``, as TFX's Pusher): it reads the approval first and never touches the
    cluster for a rejected model. Approved: smoke test in the serving environment, publish the version
    under ``serving_root`` (immutable), render the InferenceService, and with ``apply_to_cluster``
    create/patch it with a ``canary_traffic_percent`` canary, promote or roll back.
    ``fail_on_rejection`` (set by CI submits) makes a rejection fail the run; a failed deployment
    always fails it. ``deployment_mode``: KServe's Knative (revision canary, concurrency autoscaling)
    or Standard (Deployment + HPA on CPU; the canary is a second Deployment via ``spec.canary``).

    Outputs:
      deployment: JSON record: state (refused, failed, rendered, created, promoted), deployed
        (the cluster serves the new model), reason, version, approval id, storage URI, rollout.
      inference_service: the InferenceService YAML - written only for a model that went out.
      status / deploy_metrics: the URL, revision and traffic split for the KFP UI.
    """
    import logging

    from credit_risk import steps
    from credit_risk.release.deploy import RENDERED, DeployConfig
    from credit_risk.release.rollout import STANDARD

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    standard = deployment_mode == STANDARD  # the HPA scales on CPU there, not on concurrency
    config = DeployConfig(
        name=service_name,
        namespace=namespace,
        serving_image=serving_image,
        serving_root=serving_root,
        apply=apply_to_cluster,
        canary_traffic_percent=canary_traffic_percent,
        rollout_timeout_seconds=rollout_timeout_seconds,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        logger_url=logger_url,
        deployment_mode=deployment_mode,
        scale_metric="cpu" if standard else DeployConfig.scale_metric,
        scale_target=70 if standard else DeployConfig.scale_target,
    )
    record = steps.deploy_step(
        approval.path,
        model.path,
        config,
        inference_service.path,
        deployment.path,
        fail_on_rejection,
        model_uri=model.uri,
        status_path=status.path,
    )
    deployment.metadata.update({"state": record.state, "deployed": record.deployed, "reason": record.reason})
    # deployed = 1 only when the cluster serves the new model; rendered = 1 for a manifest not applied
    deploy_metrics.log_metric("deployed", 1.0 if record.deployed else 0.0)
    deploy_metrics.log_metric("rendered", 1.0 if record.state == RENDERED else 0.0)
    if record.rollout:
        deploy_metrics.log_metric("traffic_percent_new_model", float(record.traffic_to_new_model()))
