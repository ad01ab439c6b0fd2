"""The controller's settings, gathered in one frozen value the CLI builds from flags."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    url_template: str = naming.DEFAULT_LOCAL_URL_TEMPLATE
    public_port: int = 8080
    secrets_file: Path | None = None
    forge_repository: str | None = None  # GitHub owner/name or GitLab group/name

    trusted_label: str = "shipyard:trusted"  # lets a fork's pull request preview use secrets
    resync_interval: float = 600.0  # reconcile unchanged environments this often (drift)
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    # Crashed local agents restart after these delays (kubelet's CrashLoopBackOff numbers).
    restart_backoff: float = 10.0
    restart_backoff_cap: float = 300.0
    restart_backoff_reset: float = 600.0  # a run this long forgets earlier crashes

    @property
    def mirror_dir(self) -> Path:
        return self.state_dir / "mirror.git"

    @property
    def checkouts_dir(self) -> Path:
        return self.state_dir / "checkouts"

    @property
    def database(self) -> Path:
        return self.state_dir / "shipyard.db"
