#!/usr/bin/env bash
# Regenerates the dependency locks with the uv that requirements/test.lock pins (run it
# inside the project's .venv, after `bash .ci/test` made it):
#   test.lock     pyproject.toml's dependencies and test extra, and requirements/tools.in;
#                 what .ci/test installs
#   runtime.lock  pyproject.toml's dependencies and requirements/build.in, at the same
#                 versions as test.lock; what the Dockerfile installs
# Extra arguments go to both compiles: --upgrade, or --upgrade-package NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml requirements/tools.in --extra test --universal --python-version 3.11 --generate-hashes -o requirements/test.lock "$@"
uv pip compile pyproject.toml requirements/build.in --universal --python-version 3.11 --generate-hashes -c requirements/test.lock -o requirements/runtime.lock "$@"
