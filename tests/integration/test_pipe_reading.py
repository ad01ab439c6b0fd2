"""An agent's pipe is read on the event loop and closed exactly once, on either loop.

`shipyard serve` runs on uvloop where it can and on asyncio's own loop elsewhere; both
watch descriptors for the local target's pipes. A descriptor closed twice, or closed
while a loop still watches it, hits whatever got its number in between (under uvloop,
libuv aborts the process when that was one of its sockets). These run real pipes on
each loop that is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from controller.targets.local.pipe_reading import PipeReader

T = TypeVar("T")
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
with contextlib.suppress(ImportError):
    import uvloop

    LOOPS["uvloop"] = uvloop.new_event_loop


def run_on(loop_name: str, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        return runner.run(scenario())


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("loop_name", LOOPS)
def test_reads_every_chunk_as_written_until_the_writer_closes(loop_name: str) -> None:
    async def scenario() -> list[bytes]:
        read_end, write_end = os.pipe()
        chunks = []
        with PipeReader(read_end) as pipe:
            for piece in (b"first line\n", b"second ", b"line\n"):
                os.write(write_end, piece)
                chunks.append(await pipe.read(1024))
            waiting = asyncio.ensure_future(pipe.read(1024))
            await asyncio.sleep(0.05)
            assert not waiting.done()  # nothing written: the read waits, it does not spin
            os.write(write_end, b"late")
            chunks.append(await waiting)
            os.close(write_end)
            chunks.append(await pipe.read(1024))
        return chunks

    assert run_on(loop_name, scenario) == [b"first line\n", b"second ", b"line\n", b"late", b""]


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_second_close_leaves_whatever_got_the_number_since_alone(loop_name: str) -> None:
    async def scenario() -> None:
        read_end, write_end = os.pipe()
        pipe = PipeReader(read_end)
        os.close(write_end)
        assert await pipe.read_to_end() == b""
        pipe.close()
        assert not is_open(read_end)
        newcomer, other = os.pipe()  # the lowest free numbers: the ones just closed
        try:
            assert read_end in (newcomer, other)
            pipe.close()
            assert is_open(newcomer)
            assert is_open(other)
        finally:
            os.close(newcomer)
            os.close(other)

    run_on(loop_name, scenario)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_closing_while_a_read_waits_stops_watching_before_the_number_is_reused(
    loop_name: str,
) -> None:
    async def scenario() -> bytes:
        read_end, write_end = os.pipe()
        pipe = PipeReader(read_end)
        waiting = asyncio.ensure_future(pipe.read(1024))
        await asyncio.sleep(0.05)
        pipe.close()
        os.close(write_end)
        with pytest.raises(ValueError, match="closed pipe"):
            await waiting
        # The same number again, now a pipe of someone else's, watched by the same loop.
        newcomer, other = os.pipe()
        assert read_end in (newcomer, other)
        reused_read, reused_write = (newcomer, other) if newcomer == read_end else (other, newcomer)
        with PipeReader(reused_read) as again:
            os.write(reused_write, b"for the newcomer")
            os.close(reused_write)
            return await again.read_to_end()

    assert run_on(loop_name, scenario) == b"for the newcomer"
