"""Agent versions: a short content hash, so equal content is the same version everywhere.

The hash covers the normalized spec (defaults applied, so spelling a default out changes
nothing) and the bytes of every file the spec references. A commit that leaves both alone
leaves the version alone, on any branch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping

from controller.specs.model import AgentSpec

VERSION_LENGTH = 10


def compute(spec: AgentSpec, referenced_files: Mapping[str, bytes]) -> str:
    normalized = dataclasses.asdict(spec)
    # The prompt's text is covered by its file's bytes when it comes from a file.
    if spec.prompt.file is not None:
        normalized["prompt"]["text"] = None
    digest = hashlib.sha256()
    digest.update(json.dumps(normalized, sort_keys=True, separators=(",", ":")).encode())
    for path in sorted(referenced_files):
        digest.update(b"\x00file\x00" + path.encode() + b"\x00")
        digest.update(hashlib.sha256(referenced_files[path]).digest())
    return digest.hexdigest()[:VERSION_LENGTH]
