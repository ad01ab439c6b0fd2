"""The controller's settings, gathered in one frozen value the CLI builds from flags."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from controller.source.errors import redact
from preview import naming


@dataclass(frozen=True)
class ControllerConfig:
    repo: str
    state_dir: Path
    poll_interval: float = 15.0
    default_branch: str | None = None  # None: whatever the remote's HEAD points at
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    manifests_root: str = "agents"
    max_previews: int = 20
    allow_empty_production: bool = False  # a commit with no agents may stop all of production
    url_template: str = naming.DEFAULT_LOCAL_URL_TEMPLATE
    public_port: int = 8080
    secrets_file: Path | None = None
    forge_repository: str | None = None  # GitHub owner/name or GitLab group/name
    # The controller's own secrets (webhook secret, API and forge tokens, the repository
    # URL's password): never handed to an agent, whatever it asks for.
    credentials: frozenset[str] = field(default=frozenset(), repr=False)

    prometheus_url: str | None = None  # what PromQL canary analyses query
    trusted_label: str = "shipyard:trusted"  # lets a fork's pull request preview use secrets
    resync_interval: float = 600.0  # reconcile unchanged environments this often (drift)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    # Crashed local agents restart after these delays (kubelet's CrashLoopBackOff numbers).
    restart_backoff: float = 10.0
    restart_backoff_cap: float = 300.0
    restart_backoff_reset: float = 600.0  # a run this long forgets earlier crashes
    prune_interval: float = 3600.0  # unneeded checkouts and blobs are removed this often

    def __repr__(self) -> str:
        # The repository URL may carry a token; reprs end up in logs and tracebacks.
        shown = []
        for item in fields(self):
            if item.repr:
                value = redact(self.repo) if item.name == "repo" else getattr(self, item.name)
                shown.append(f"{item.name}={value!r}")
        return f"ControllerConfig({', '.join(shown)})"

    @property
    def mirror_dir(self) -> Path:
        return self.state_dir / "mirror.git"

    @property
    def checkouts_dir(self) -> Path:
        return self.state_dir / "checkouts"

    @property
    def database(self) -> Path:
        return self.state_dir / "shipyard.db"
