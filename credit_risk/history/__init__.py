"""Raw loan history to applicant features: the raw schema, a seeded generator, the point-in-time
feature set, a vectorised pandas reference and the PySpark job that computes the same features at
scale (docs/history.md).

Imports flow one way: ``schema`` (pure: names, types, the boundary rule) ← ``generate``,
``reference``, ``spark_job`` ← ``etl`` (the step: run an engine, publish a typed snapshot and its
feature spec). Nothing here imports TensorFlow, TFDV or kfp.
"""
