"""Out to production: images, manifests, infra-validation, rollout, deploy, batch scoring, monitoring."""
