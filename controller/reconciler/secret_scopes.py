"""Which secret values an environment may receive: scopes, as Vercel and Netlify have them.

Whoever can push a branch gets a preview running their code, so a secret reference in a
manifest is a request, not a right. Every value the controller can hand out carries a
scope — production, previews, or both — and production only is the default: a preview
receives a value only when an operator said so. The controller's own credentials (webhook
secret, API tokens, forge tokens, anything under the reserved `SHIPYARD_` names) are never
resolvable, whatever name an agent asks for; they are refused by name and by value.

The values come from the secrets file (`--secrets-file`), read again for every rollout so
edits apply without a restart. Its format is dotenv lines with optional sections:

    OPENAI_API_KEY=sk-live-...   # before any section: production only (the old format)
    [previews]
    OPENAI_API_KEY=sk-test-...   # previews get their own value
    [all]
    SENTRY_DSN=https://...       # production and previews alike

The controller's environment is never a source: on the local target agents run as the
controller's user and can read it anyway (`/proc/<pid>/environ`), so nothing scoped may
live there.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller.errors import ShipyardError
from preview import naming

RESERVED_PREFIX = "SHIPYARD_"
# Names that configure the controller itself, not an agent: refused whatever they hold.
RESERVED_NAMES = frozenset({"KUBECONFIG", "GIT_ASKPASS", "GIT_PASSWORD", "GIT_USERNAME"})
# Shorter credentials are compared whole only, so a short token cannot match by accident.
_CONTAINED_MINIMUM = 8
_SECTION = re.compile(r"\[\s*([A-Za-z_-]*)\s*\]")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Scope(enum.Enum):
    PRODUCTION = "production"
    PREVIEWS = "previews"
    ALL = "all"


class SecretsFileError(ShipyardError):
    """The secrets file cannot be read or has a line that is not `NAME=VALUE` or a section."""


@dataclass(frozen=True)
class ScopedSecrets:
    """The secrets file as read: the values of each section, by variable name."""

    production: Mapping[str, str] = field(default_factory=dict, repr=False)
    previews: Mapping[str, str] = field(default_factory=dict, repr=False)
    everywhere: Mapping[str, str] = field(default_factory=dict, repr=False)

    def for_production(self) -> dict[str, str]:
        return {**self.everywhere, **self.production}

    def for_previews(self) -> dict[str, str]:
        return {**self.everywhere, **self.previews}


def read_file(path: Path | None) -> ScopedSecrets:
    """The secrets file's values by scope; no file (or none configured) means no secrets."""
    if path is None:
        return ScopedSecrets()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ScopedSecrets()
    except (OSError, UnicodeDecodeError) as error:
        raise SecretsFileError(f"cannot read the secrets file {path}: {error}") from error
    return parse(text, str(path))


def parse(text: str, origin: str = "secrets file") -> ScopedSecrets:
    sections: dict[Scope, dict[str, str]] = {scope: {} for scope in Scope}
    scope = Scope.PRODUCTION
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        section = _SECTION.fullmatch(stripped)
        if section is not None:
            scope = _scope(section.group(1), origin, number)
            continue
        name, equals, value = stripped.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if not equals or not _VARIABLE.fullmatch(name):
            # Never echo the line: it may be a value that lost its name.
            raise SecretsFileError(
                f"{origin}:{number}: expected NAME=VALUE or a section such as [previews]"
            )
        sections[scope][name] = _unquote(value.strip())
    return ScopedSecrets(
        production=sections[Scope.PRODUCTION],
        previews=sections[Scope.PREVIEWS],
        everywhere=sections[Scope.ALL],
    )


def _scope(name: str, origin: str, number: int) -> Scope:
    try:
        return Scope(name.lower())
    except ValueError:
        known = ", ".join(f"[{scope.value}]" for scope in Scope)
        raise SecretsFileError(
            f"{origin}:{number}: unknown section [{name}]; sections are {known}"
        ) from None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def is_reserved(variable: str) -> bool:
    """Names that belong to the controller (`SHIPYARD_*`, `KUBECONFIG`, git's credentials)."""
    return variable.startswith(RESERVED_PREFIX) or variable in RESERVED_NAMES


def holds_credential(value: str, credentials: Iterable[str]) -> bool:
    """Whether `value` is, or contains, one of the controller's own credentials."""
    for credential in credentials:
        if not credential:
            continue
        if value == credential or (len(credential) >= _CONTAINED_MINIMUM and credential in value):
            return True
    return False


class SecretView(Mapping[str, str]):
    """The values one environment may receive, and why any other name is not among them."""

    def __init__(
        self,
        values: Mapping[str, str],
        *,
        environment: str,
        production_only: frozenset[str] = frozenset(),
        refused: frozenset[str] = frozenset(),
        unavailable: str | None = None,
        withheld: str | None = None,
        secrets_file: Path | None = None,
    ) -> None:
        self._values = dict(values)
        self.environment = environment
        self._production_only = production_only
        self._refused = refused
        self._unavailable = withheld or unavailable
        self.withheld = withheld  # why this environment gets no secrets at all (a fork)
        self._secrets_file = secrets_file

    @classmethod
    def empty(
        cls,
        environment: str = naming.PRODUCTION,
        why: str | None = None,
        *,
        withheld: str | None = None,
    ) -> SecretView:
        return cls({}, environment=environment, unavailable=why, withheld=withheld)

    def __getitem__(self, variable: str) -> str:
        return self._values[variable]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # never the values
        return f"SecretView({self.environment!r}, {len(self._values)} values)"

    def explain(self, reference: str, variable: str) -> str:
        """Why `variable` (asked for as `reference`, e.g. `openai/api-key`) has no value."""
        if is_reserved(variable):
            return (
                f"secret {reference} ({variable}) names the controller's own settings; "
                "agents never receive the controller's credentials. Give the agent a "
                "secret of its own under another name"
            )
        if variable in self._refused:
            return (
                f"secret {reference} ({variable}) holds one of the controller's own "
                "credentials (webhook secret, API token or forge token); agents never "
                "receive those. Give the agent a credential of its own"
            )
        if self._unavailable is not None:
            return f"secret {reference} ({variable}) is not available: {self._unavailable}"
        where = str(self._secrets_file) if self._secrets_file else "a secrets file (--secrets-file)"
        if variable in self._production_only:
            return (
                f"secret {reference} ({variable}) is scoped to production; previews never "
                f"receive it. To expose it to previews, add {variable}=… under a [previews] "
                f"section (a value for previews only) or move it under [all] in {where}"
            )
        if self.environment == naming.PRODUCTION:
            section = "before any section (production only) or under [all]"
        else:
            section = "under [previews] or [all]"
        return f"secret {reference} ({variable}) is not set: add {variable}=… {section} in {where}"


def view(
    secrets: ScopedSecrets,
    environment: str,
    *,
    credentials: Iterable[str] = (),
    secrets_file: Path | None = None,
) -> SecretView:
    """What `environment` may receive: its scope's values minus the controller's own."""
    own = tuple(credentials)
    preview = environment != naming.PRODUCTION
    scoped = secrets.for_previews() if preview else secrets.for_production()
    refused = frozenset(name for name, value in scoped.items() if holds_credential(value, own))
    values = {
        name: value
        for name, value in scoped.items()
        if not is_reserved(name) and name not in refused
    }
    production_only = (
        frozenset(secrets.for_production()) - frozenset(scoped) if preview else frozenset()
    )
    return SecretView(
        values,
        environment=environment,
        production_only=production_only,
        refused=refused,
        secrets_file=secrets_file,
    )
