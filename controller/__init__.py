"""Shipyard's controller: git source, manifests, planning, reconcile loop, targets, API and CLI."""
