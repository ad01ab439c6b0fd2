"""Targets: where agent versions actually run (the bottom layer of the controller).

A target turns "run this version of this agent in this environment" into something that
serves traffic: local processes on this machine (the embedded default) or Kubernetes
objects in a cluster. Targets know nothing about manifests, git or previews; callers hand
them small, already-resolved value types, so this layer imports nothing above it.
"""
