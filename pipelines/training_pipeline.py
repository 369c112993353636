"""The training pipeline: source -> ingest -> validate -> split -> train -> evaluate (gate) -> deploy.

The source step computes applicant features from raw loan history when ``raw_history_uri`` is set
(credit_risk/history) and otherwise passes ``data_uri``/``feature_spec_uri`` through.

Deploy always runs and reads the approval itself (TFX Pusher pattern), so the pipeline needs no
``dsl.If`` - which the kfp 2.13 local runner cannot execute - and the same YAML runs locally and on
Kubeflow.

``build_training_pipeline(database_secret)`` mounts that Kubernetes secret's keys as libpq's
variables on the ingest step (for ``sql_query`` runs); the default pipeline mounts none, so it
runs in namespaces without a database secret.
"""

from typing import Any

from credit_risk.components import deploy, evaluate, history_features, ingest, split, train, validate
from credit_risk.pipelines import policy
from kfp import dsl

from credit_risk.modeling.training import TrainingConfig
from credit_risk.release import images
from credit_risk.release.deploy import DeployConfig

PIPELINE_NAME = "credit-risk-training"
_DEFAULTS = TrainingConfig()
_DEPLOY = DeployConfig(name="credit-risk")


# secret key -> environment variable of the ingest step (libpq's names)
DATABASE_SECRET_KEYS = {
    "host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "database": "PGDATABASE",
}  # fmt: skip


def build_training_pipeline(
    database_secret: str | None = None,
    policies: dict[str, policy.StepPolicy] | None = None,
    s3: policy.S3Access | None = None,
) -> Any:
    """The pipeline (a kfp GraphComponent); ``database_secret``: name of the Kubernetes secret
    holding the database connection (keys host, port, user, password, database), mounted on the
    ingest step as PGHOST ... PGDATABASE; ``policies``: each step's caching, resources and
    retries (default ``policy.POLICIES``); ``s3``: S3-compatible storage access on every step."""

    def training_pipeline(
        data_uri: str = "",
        feature_spec_uri: str = "",
        raw_history_uri: str = "",
        history_lag_months: int = 0,
        history_engine: str = "spark",
        history_spark_master: str = "local[2]",
        history_driver_memory: str = "2g",
        history_spark_image: str = "",
        history_namespace: str = "",
        history_emr_application_id: str = "",
        history_emr_role_arn: str = "",
        history_executor_instances: int = 2,
        history_timeout_seconds: int = 3600,
        sql_query: str = "",
        sql_params: dict = {},  # noqa: B006 - KFP needs a literal default; never mutated
        ingest_chunk_rows: int = 100_000,
        schema_uri: str = "",
        baseline_stats_uri: str = "",
        serving_data_uri: str = "",
        warn_only_anomalies: list = [],  # noqa: B006 - KFP needs a literal default; never mutated
        beam_args: list = [],  # noqa: B006 - KFP needs a literal default; never mutated
        eval_fraction: float = 0.25,
        seed: int = _DEFAULTS.seed,
        epochs: int = _DEFAULTS.epochs,
        batch_size: int = _DEFAULTS.batch_size,
        learning_rate: float = _DEFAULTS.learning_rate,
        wide_learning_rate: float = _DEFAULTS.wide_learning_rate or 0.0,
        wide_optimizer: str = _DEFAULTS.wide_optimizer,
        hidden_units: list = list(_DEFAULTS.model.hidden_units),  # noqa: B006 - KFP needs a literal default
        embedding_dim: int = _DEFAULTS.model.embedding_dim,
        num_buckets: int = _DEFAULTS.model.num_buckets,
        cross_hash_bins: int = _DEFAULTS.model.cross_hash_bins,
        dropout: float = _DEFAULTS.model.dropout,
        l1: float = _DEFAULTS.model.l1,
        l2: float = _DEFAULTS.model.l2,
        monotone_constraints: bool = _DEFAULTS.model.monotone_constraints,
        class_weighting: bool = _DEFAULTS.class_weighting,
        early_stopping_patience: int = _DEFAULTS.early_stopping_patience,
        validation_fraction: float = _DEFAULTS.validation_fraction,
        ensemble_size: int = _DEFAULTS.ensemble_size,
        stream_training_data: bool = False,
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
        serving_root: str = "",
        apply_to_cluster: bool = False,
        canary_traffic_percent: int = _DEPLOY.canary_traffic_percent,
        rollout_timeout_seconds: int = int(_DEPLOY.rollout_timeout_seconds),
        min_replicas: int = _DEPLOY.min_replicas,
        max_replicas: int = _DEPLOY.max_replicas,
        logger_url: str = "",
        deployment_mode: str = _DEPLOY.deployment_mode,
    ):
        """Source: ``data_uri`` + ``feature_spec_uri`` (applicant rows), or ``raw_history_uri`` (raw loan
        history: applications/, repayments/, inquiries/) whose point-in-time features the first step
        computes with Spark (``history_spark_master``, ``history_driver_memory``) or pandas
        (``history_engine``) at a reporting lag of ``history_lag_months`` (docs/history.md), or sends
        the same job to a Spark cluster (``history_engine`` spark-operator: ``history_spark_image``,
        ``history_namespace``; emr-serverless: ``history_emr_application_id``,
        ``history_emr_role_arn``; both ``history_executor_instances``, ``history_timeout_seconds``).
        Ingest: ``sql_query`` (PostgreSQL, ``:name`` placeholders from ``sql_params``; credentials
        from the environment / database secret) or, when empty, the files at ``data_uri``.
        Validation: ``schema_uri`` (curated schema; "" = the one beside the spec),
        ``baseline_stats_uri`` (drift), ``serving_data_uri`` (skew), ``warn_only_anomalies`` (kinds
        that do not fail), ``beam_args`` (statistics on a Beam runner). Training parameters are
        ``credit_risk.modeling.training.TrainingConfig``'s (``wide_learning_rate`` 0 = ``learning_rate``);
        ``stream_training_data`` splits and trains from the snapshot in bounded chunks.
        ``champion_model_uri``: the model to beat (a model dir, a published gs:// or s3:// version, or
        ``isvc://<namespace>/<name>`` for what that InferenceService serves).
        ``serving_root`` (e.g. gs:// or s3://bucket/models): where approved versions are published, immutable;
        empty = serve the pipeline's model artifact. ``apply_to_cluster``: create/patch the
        InferenceService through the Kubernetes API with a canary (else only render and smoke-test it)."""
        source = history_features(
            raw_history_uri=raw_history_uri,
            data_uri=data_uri,
            feature_spec_uri=feature_spec_uri,
            lag_months=history_lag_months,
            engine=history_engine,
            spark_master=history_spark_master,
            driver_memory=history_driver_memory,
            cluster_namespace=history_namespace,
            spark_image=history_spark_image,
            emr_application_id=history_emr_application_id,
            emr_role_arn=history_emr_role_arn,
            executor_instances=history_executor_instances,
            timeout_seconds=history_timeout_seconds,
        ).set_display_name("training data source (raw history -> features, or pass-through)")
        policy.apply(source, "history_features", policies, s3)
        spec_uri = source.outputs["feature_spec_uri"]
        snapshot = ingest(
            data_uri=source.outputs["data_uri"],
            feature_spec_uri=spec_uri,
            sql_query=sql_query,
            sql_params=sql_params,
            chunk_rows=ingest_chunk_rows,
        ).set_display_name("ingest snapshot")
        policy.apply(snapshot, "ingest", policies, s3)
        if database_secret:
            from kfp import kubernetes

            kubernetes.use_secret_as_env(snapshot, database_secret, DATABASE_SECRET_KEYS)
        validated = validate(
            data=snapshot.outputs["snapshot"],
            feature_spec_uri=spec_uri,
            schema_uri=schema_uri,
            baseline_stats_uri=baseline_stats_uri,
            serving_data_uri=serving_data_uri,
            warn_only_anomalies=warn_only_anomalies,
            beam_args=beam_args,
        ).set_display_name("validate data (TFDV)")
        policy.apply(validated, "validate", policies, s3)
        splits = split(
            validated_data=validated.outputs["validated_data"],
            feature_spec_uri=spec_uri,
            eval_fraction=eval_fraction,
            seed=seed,
            stream_data=stream_training_data,
        ).set_display_name("train / held-out split")
        policy.apply(splits, "split", policies, s3)
        trained = train(
            train_data=splits.outputs["train_data"],
            feature_spec_uri=spec_uri,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            wide_learning_rate=wide_learning_rate,
            wide_optimizer=wide_optimizer,
            hidden_units=hidden_units,
            embedding_dim=embedding_dim,
            num_buckets=num_buckets,
            cross_hash_bins=cross_hash_bins,
            dropout=dropout,
            l1=l1,
            l2=l2,
            monotone_constraints=monotone_constraints,
            class_weighting=class_weighting,
            early_stopping_patience=early_stopping_patience,
            validation_fraction=validation_fraction,
            seed=seed,
            ensemble_size=ensemble_size,
            stream_data=stream_training_data,
        ).set_display_name("train wide-and-deep")
        policy.apply(trained, "train", policies, s3)
        evaluated = evaluate(
            model=trained.outputs["model"],
            eval_data=splits.outputs["eval_data"],
            feature_spec_uri=spec_uri,
            gate_config_uri=gate_config_uri,
            gate_overrides=gate_overrides,
            champion_model_uri=champion_model_uri,
            override_approver=override_approver,
            override_rationale=override_rationale,
            allow_override=allow_override,
        ).set_display_name("evaluate + approval gate")
        policy.apply(evaluated, "evaluate", policies, s3)
        deployed = deploy(
            model=trained.outputs["model"],
            approval=evaluated.outputs["approval"],
            service_name=service_name,
            namespace=namespace,
            serving_image=serving_image,
            fail_on_rejection=fail_on_rejection,
            serving_root=serving_root,
            apply_to_cluster=apply_to_cluster,
            canary_traffic_percent=canary_traffic_percent,
            rollout_timeout_seconds=rollout_timeout_seconds,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            logger_url=logger_url,
            deployment_mode=deployment_mode,
        ).set_display_name("deploy (approved only)")
        policy.apply(deployed, "deploy", policies, s3)

    return dsl.pipeline(
        name=PIPELINE_NAME,
        description="Ingest credit data (PostgreSQL or files), validate it with TFDV, train a wide-and-deep "
        "PD model, evaluate it against an approval gate, and deploy it as a KServe InferenceService "
        "(smoke test, canary) if approved.",
    )(training_pipeline)


training_pipeline = build_training_pipeline()
