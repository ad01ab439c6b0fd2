"""Which repository each forge's deliveries must name to be acted on.

A webhook secret is often shared by many repositories (an organization-wide hook), so a
signature proves who sent a delivery, not which repository it is about. Shipyard acts
only on deliveries about the repository it serves: GitHub's and Gitea's
`repository.full_name`, GitLab's `project.path_with_namespace`, compared without regard
to case (all three forges treat owner and name case-insensitively).

The served name per forge is `--github-repo` / `--gitlab-project` / `--gitea-repo` when
given, else the path of the remote URL. With a local path as the remote nothing can be
derived: such a forge's deliveries are *unbound* (see `webhooks._not_ours`).
"""

from __future__ import annotations

from dataclasses import dataclass

from preview.github import repository_from_remote
from preview.remotes import project_path_from_remote


@dataclass(frozen=True)
class ServedRepositories:
    github: str | None = None
    gitlab: str | None = None
    gitea: str | None = None

    @classmethod
    def derive(
        cls,
        remote: str,
        github_repo: str | None = None,
        gitlab_project: str | None = None,
        gitea_repo: str | None = None,
    ) -> ServedRepositories:
        return cls(
            github=github_repo or repository_from_remote(remote),
            gitlab=gitlab_project or project_path_from_remote(remote),
            gitea=gitea_repo or repository_from_remote(remote),
        )

    def served(self, provider: str) -> str | None:
        served: str | None = getattr(self, provider)
        return served

    def matches(self, provider: str, named: str) -> bool:
        served = self.served(provider)
        return served is not None and served.casefold() == named.strip("/").casefold()


def unbound_reason(provider: str) -> str:
    flag = {"github": "--github-repo", "gitlab": "--gitlab-project"}.get(provider, "--gitea-repo")
    return f"the served repository is unknown (set {flag} to accept pull requests)"
