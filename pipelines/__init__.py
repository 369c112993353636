"""Pipelines composed from ``credit_risk.components`` and their compiler."""
