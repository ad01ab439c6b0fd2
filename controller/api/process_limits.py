"""Process limits the server raises for itself at start-up.

Every connection holds a file descriptor, and so does every git fetch and agent pipe.
The usual soft limit (1024) lets a few hundred slow clients starve git of descriptors
("too many open files"), while the hard limit is typically far higher and is ours to
take. Raising the soft limit to the hard one costs nothing until descriptors are used.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("shipyard")


def raise_open_files_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY in {hard, soft} or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning("open files limit stays at %d (hard %d): %s", soft, hard, error)
        return soft
    return hard
