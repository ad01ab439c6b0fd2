"""The reconcile loop: from branches and manifests to running versions, per environment."""
