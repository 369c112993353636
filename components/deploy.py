from credit_risk.components._base import component
from kfp.dsl import Artifact, Input, Model, Output


@component
def deploy(
    model: Input[Model],
    approval: Input[Artifact],
    service_name: str,
    namespace: str,
    serving_image: str,
    fail_on_rejection: bool,
    deployment: Output[Artifact],
    inference_service: Output[Artifact],
):
    """Render the KServe InferenceService for an approved model; record why not otherwise.

    Always runs (no ``dsl.If``, as TFX's Pusher): it reads the approval first and never deploys a
    rejected model. ``fail_on_rejection`` (set by CI submits) makes a rejection fail the run.

    Outputs:
      deployment: JSON record: deployed true/false, the reason, manifest and storage URI.
      inference_service: the InferenceService YAML - written only for an approved model.
    """
    import logging

    from credit_risk import steps
    from credit_risk.deploy import DeployConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = DeployConfig(name=service_name, namespace=namespace, serving_image=serving_image)
    record = steps.deploy_step(
        approval.path, model.uri, config, inference_service.path, deployment.path, fail_on_rejection
    )
    deployment.metadata.update({"deployed": record.deployed, "reason": record.reason})
