# The Shipyard controller: `docker build -t shipyard .`, run as `shipyard serve …`
# (manifests/deployment.yaml). Python packages at the versions of requirements/runtime.lock,
# the ones the tests ran; git for the repository mirror; a non-root numeric user; nothing
# written outside the state directory and /tmp, so the root filesystem can be read-only.
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz. The base keeps its /bin/sh:
# git runs some of its helpers (credential helpers, ssh) through it, so a shell-less
# base would break fetching.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# Build: the wheel, from the locked setuptools, installed with its locked dependencies
# into a venv that the runtime stage copies whole.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/runtime.lock requirements/
COPY release/install-venv.sh release/
COPY controller/ controller/
COPY preview/ preview/
COPY schemas/ schemas/
RUN bash release/install-venv.sh /opt/shipyard

# Runtime: the same Python base (the venv links to its interpreter), git, the venv.
FROM ${PYTHON_IMAGE}
# git follows Debian's security updates for the base's release; pinning its exact
# version would break the build whenever Debian publishes a fix.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 shipyard \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/shipyard --no-create-home \
       --shell /usr/sbin/nologin shipyard \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/shipyard
COPY --from=build /opt/shipyard /opt/shipyard
# State (the git mirror, the history database) lives in /var/lib/shipyard: mount a
# volume there (manifests/ mounts one, and an emptyDir at /tmp) and the root
# filesystem can be read-only. HOME points there too, for git's own files.
ENV PATH=/opt/shipyard/bin:$PATH \
    HOME=/var/lib/shipyard \
    SHIPYARD_STATE_DIR=/var/lib/shipyard \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/shipyard
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["shipyard"]
CMD ["--help"]
