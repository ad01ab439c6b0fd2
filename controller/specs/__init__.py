"""Agent manifests: discovery, safe parsing, validation, typed specs and versions."""
