"""Domain exceptions, raised deep and converted once at a boundary (component exit, HTTP, CLI)."""


class CreditRiskError(Exception):
    """Base class: every error this package raises on purpose."""


class FeatureSpecError(CreditRiskError):
    """The feature spec file is malformed (names the key and the bad value)."""


class DataError(CreditRiskError):
    """Input data does not match the feature spec (names column, row and value)."""


class DataValidationError(CreditRiskError):
    """TFDV found anomalies; the message lists every one."""


class ModelRejectedError(CreditRiskError):
    """The gate rejected the model and the caller asked for that to fail the run (CI)."""


class ConfigError(CreditRiskError):
    """A parameter or threshold is out of range (names it and the bad value)."""


class DeployError(CreditRiskError):
    """An approved model could not be deployed (infra validation, publish or rollout failed)."""


class ImageBuildError(CreditRiskError):
    """An image build or push failed (the builder's own output says why, above the message)."""
