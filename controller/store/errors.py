"""The store's own failure that callers act on: the state directory cannot be written.

SQLite reports a full disk as "database or disk is full" (SQLITE_FULL) and a failing
or read-only filesystem as I/O or read-only errors; Python may also see ENOSPC itself.
Callers answer these as "try again later" (the webhook receivers with 503, the
reconciler as a transient error) and the next write after space returns succeeds.
"""

from __future__ import annotations

import errno
import sqlite3

from controller.errors import ShipyardError

# Primary result codes (the low byte of extended ones) meaning "cannot write now".
_UNWRITABLE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY})


class StoreUnwritable(ShipyardError):
    """The state directory is full or cannot be written."""


def unwritable(error: BaseException) -> StoreUnwritable | None:
    """`error` as a `StoreUnwritable` when it means the disk cannot take the write."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _UNWRITABLE_CODES:
            return StoreUnwritable(f"the state directory cannot be written ({error})")
    if isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EROFS}:
        return StoreUnwritable(f"the state directory cannot be written ({error.strerror})")
    return None
