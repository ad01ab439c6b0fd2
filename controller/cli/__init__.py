"""The `shipyard` / `kubectl shipyard` command line: thin commands over the service layer."""
