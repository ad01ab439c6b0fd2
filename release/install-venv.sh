#!/usr/bin/env bash
# Installs Shipyard into a new virtual environment at $1, from this source tree, with
# exactly the versions of requirements/runtime.lock (hashes required) and nothing
# downloaded unpinned: the locked setuptools builds the wheel, which is then installed
# without resolving anything. The Dockerfile runs this; tests/integration/
# test_container_install.py runs it too, so the image's install step is tested without
# Docker.
set -euo pipefail
venv="${1:?usage: install-venv.sh VENV_DIR}"
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"

wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --require-hashes \
  -r "$source_dir/requirements/runtime.lock"
"$venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation \
  --wheel-dir "$wheels" "$source_dir"
"$venv/bin/python" -m pip install --quiet --no-deps --no-index "$wheels"/shipyard-*.whl
"$venv/bin/shipyard" --version
