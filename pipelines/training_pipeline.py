"""The training pipeline: validate -> split -> train -> evaluate (gate) -> deploy.

Deploy always runs and reads the approval itself (TFX Pusher pattern), so the pipeline needs no
``dsl.If`` - which the kfp 2.13 local runner cannot execute - and the same YAML runs locally and on
Kubeflow.
"""

from credit_risk.components import deploy, evaluate, split, train, validate
from kfp import dsl

from credit_risk import images
from credit_risk.training import TrainingConfig

PIPELINE_NAME = "credit-risk-training"
_DEFAULTS = TrainingConfig()


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Validate credit data with TFDV, train a wide-and-deep PD model, evaluate it against "
    "an approval gate, and render its KServe InferenceService if approved.",
)
def training_pipeline(
    data_uri: str,
    feature_spec_uri: str,
    eval_fraction: float = 0.25,
    seed: int = _DEFAULTS.seed,
    epochs: int = _DEFAULTS.epochs,
    batch_size: int = _DEFAULTS.batch_size,
    learning_rate: float = _DEFAULTS.learning_rate,
    gate_config_uri: str = "",
    gate_overrides: dict = {},  # noqa: B006 - KFP needs a literal default; never mutated
    champion_model_uri: str = "",
    override_approver: str = "",
    override_rationale: str = "",
    allow_override: bool = False,
    service_name: str = "credit-risk",
    namespace: str = "credit-risk",
    serving_image: str = images.serving_image(),
    fail_on_rejection: bool = False,
):
    validated = validate(data_uri=data_uri, feature_spec_uri=feature_spec_uri).set_display_name(
        "validate data (TFDV)"
    )
    splits = split(
        validated_data=validated.outputs["validated_data"],
        feature_spec_uri=feature_spec_uri,
        eval_fraction=eval_fraction,
        seed=seed,
    ).set_display_name("train / held-out split")
    trained = train(
        train_data=splits.outputs["train_data"],
        feature_spec_uri=feature_spec_uri,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
    ).set_display_name("train wide-and-deep")
    evaluated = evaluate(
        model=trained.outputs["model"],
        eval_data=splits.outputs["eval_data"],
        feature_spec_uri=feature_spec_uri,
        gate_config_uri=gate_config_uri,
        gate_overrides=gate_overrides,
        champion_model_uri=champion_model_uri,
        override_approver=override_approver,
        override_rationale=override_rationale,
        allow_override=allow_override,
    ).set_display_name("evaluate + approval gate")
    deploy(
        model=trained.outputs["model"],
        approval=evaluated.outputs["approval"],
        service_name=service_name,
        namespace=namespace,
        serving_image=serving_image,
        fail_on_rejection=fail_on_rejection,
    ).set_display_name("deploy (approved only)")
