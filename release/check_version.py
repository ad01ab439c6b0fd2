"""Check, before anything is published, that a release tag names pyproject.toml's version
and that the install manifests run the image of that version.

`python3 release/check_version.py v1.2.3` exits 0 when all three agree, else 1 with what
differs; `.github/workflows/release.yml` runs it first. Standard library only.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "ghcr.io/shipyard-dev/shipyard"


def package_version(root: Path = ROOT) -> str:
    with (root / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def manifest_image_tags(root: Path = ROOT) -> list[str]:
    """Every tag of the controller image that manifests/ names."""
    pattern = re.compile(rf"image:\s*{re.escape(IMAGE)}:(\S+)")
    return [
        match[1]
        for path in sorted((root / "manifests").glob("*.yaml"))
        for match in pattern.finditer(path.read_text(encoding="utf-8"))
    ]


def problems(tag: str, root: Path = ROOT) -> list[str]:
    version = package_version(root)
    found = []
    if tag != f"v{version}":
        found.append(f"tag {tag!r} is not 'v' + pyproject.toml's version {version!r}")
    tags = manifest_image_tags(root)
    if not tags:
        found.append(f"manifests/ names no {IMAGE}:<tag> image")
    found.extend(
        f"manifests/ runs {IMAGE}:{image_tag}, not the package version {version}"
        for image_tag in tags
        if image_tag != version
    )
    return found


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: check_version.py TAG (e.g. v1.2.3)", file=sys.stderr)
        return 2
    found = problems(arguments[0])
    for problem in found:
        print(f"release: {problem}", file=sys.stderr)
    if not found:
        print(f"release: {arguments[0]} matches pyproject.toml and manifests/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
