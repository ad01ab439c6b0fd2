"""The read end of an agent's pipe, read on the event loop and closed exactly once.

Why not `loop.connect_read_pipe(…, file)`: who closes the descriptor then depends on the
loop. asyncio's transport closes it through the file object; uvloop's has libuv close it
and then closes the file object too, a second close of the same number, and a cancelled
`connect_read_pipe` there closes it through libuv while the file object still holds it.
A second close of a number that has meanwhile been handed to a new socket closes that
socket under libuv, which aborts the whole process when it next cannot watch it. So the
loop here only watches the descriptor (`add_reader` never closes anything), `os.read`
reads it, and `PipeReader.close` is the one place that closes it.
"""

from __future__ import annotations

import asyncio
import os
from types import TracebackType


class PipeReader:
    """Owns a pipe's read end: `read` chunks until end of file, then `close` it once."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)  # the read end is ours alone: the agent holds the other
        self._fd = fd
        self._waiting: asyncio.Future[None] | None = None  # a read waiting for data

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes as soon as any are there; b"" at end of file."""
        loop = asyncio.get_running_loop()
        while True:
            if self._fd < 0:
                raise ValueError("read from a closed pipe")
            try:
                return os.read(self._fd, size)
            except BlockingIOError:
                pass
            fd = self._fd
            self._waiting = readable = loop.create_future()
            loop.add_reader(fd, _resolve, readable)
            try:
                await readable
            finally:
                self._waiting = None
                if self._fd == fd:  # else close() stopped watching it already
                    loop.remove_reader(fd)

    async def read_to_end(self, size: int = 65536) -> bytes:
        chunks = []
        while chunk := await self.read(size):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the descriptor; later calls do nothing (its number may be reused by then)."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        if self._waiting is not None:
            # A loop must never watch a descriptor that is gone: stop first, then close.
            self._waiting.get_loop().remove_reader(fd)
            _resolve(self._waiting)  # that read then finds the pipe closed
        os.close(fd)

    def __enter__(self) -> PipeReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
