"""Reading a child process's output with a deadline.

`readline` on a pipe blocks until the child writes or exits: a test waiting for a line a
broken build never prints would hang the whole run instead of failing with a message.
"""

from __future__ import annotations

import queue
import threading
from typing import IO


def readline_within(stream: IO[str], seconds: float = 30.0, *, what: str = "a line") -> str:
    """The next line of `stream`, or an AssertionError naming `what` after `seconds`.

    The reading thread outlives a timeout blocked on the pipe; it ends when the test ends
    the child (the pipe then reads empty)."""
    lines: queue.Queue[str] = queue.Queue(maxsize=1)
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        raise AssertionError(f"no output within {seconds:g} s: waited for {what}") from None
