"""The admission rules of webhook intake, on a clock the test turns by hand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import Any

import pytest

from controller.api.webhook_intake import (
    Admission,
    ClientGone,
    IntakeLimits,
    RefusalLog,
    Refused,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoCheck:
    def __init__(self) -> None:
        self.seen = b""

    def update(self, chunk: bytes) -> None:
        self.seen += chunk


def admission(clock: Clock, **limits: Any) -> Admission:
    return Admission(IntakeLimits(**{"eviction_grace": 2.0, **limits}), clock)


class TestPlaces:
    def test_newcomers_are_refused_while_every_place_is_young(self) -> None:
        clock = Clock()
        intake = admission(clock, max_pending=2)
        intake.admit(10)
        intake.admit(10)
        with pytest.raises(Refused) as refused:
            intake.admit(10)
        assert (refused.value.status, refused.value.retry_after) == (503, 5)
        assert intake.pending == 2

    def test_a_newcomer_takes_the_place_of_the_oldest_slow_one(self) -> None:
        clock = Clock()
        intake = admission(clock, max_pending=2)
        oldest = intake.admit(10)
        clock.now += 1
        younger = intake.admit(10)
        clock.now += 1.5  # the oldest has waited 2.5 s, the younger 1.5 s
        newcomer = intake.admit(10)
        assert oldest.evicted
        assert not younger.evicted
        assert not newcomer.evicted
        assert intake.pending == 2

    def test_saturated_means_a_newcomer_would_be_refused(self) -> None:
        clock = Clock()
        intake = admission(clock, max_pending=1)
        assert not intake.saturated()
        intake.admit(10)
        assert intake.saturated()
        clock.now += 3  # the one place is now held too long: a newcomer would take it
        assert not intake.saturated()

    def test_released_places_and_bytes_are_given_back(self) -> None:
        intake = admission(Clock(), max_pending=1, max_buffered=100)
        pending = intake.admit(100)
        pending.release()
        pending.release()  # twice is harmless
        assert (intake.pending, intake.buffered) == (0, 0)
        intake.admit(100)


class TestBytes:
    def test_declared_sizes_share_one_budget(self) -> None:
        intake = admission(Clock(), max_buffered=100)
        intake.admit(60)
        with pytest.raises(Refused):
            intake.admit(60)
        intake.admit(40)
        assert intake.buffered == 100

    def test_a_chunked_body_reserves_as_it_grows(self) -> None:
        clock = Clock()
        intake = admission(clock, max_buffered=100)
        other = intake.admit(50)
        chunked = intake.admit(0)
        chunked.hold(50)
        with pytest.raises(Refused):
            chunked.hold(51)
        clock.now += 3
        chunked.hold(51)  # now the other, slow one gives way
        assert other.evicted
        assert intake.buffered == 51


def messages(*chunks: bytes, then_wait: bool = False) -> Any:
    queue: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    if not then_wait:
        queue[-1]["more_body"] = False

    async def receive() -> MutableMapping[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()  # a client that sends nothing more
        raise AssertionError("unreachable")

    return receive


class TestReading:
    def test_the_body_streams_through_the_check(self) -> None:
        intake = admission(Clock())
        check = NoCheck()
        body = asyncio.run(intake.admit(6).read(messages(b"abc", b"def"), check))
        assert body == check.seen == b"abcdef"

    def test_a_body_over_the_limit_is_413(self) -> None:
        intake = admission(Clock(), max_body=5)
        with pytest.raises(Refused) as refused:
            asyncio.run(intake.admit(0).read(messages(b"abc", b"def"), NoCheck()))
        assert refused.value.status == 413

    def test_a_stalled_body_is_408(self) -> None:
        intake = admission(Clock(), body_timeout=0.05)
        with pytest.raises(Refused) as refused:
            asyncio.run(intake.admit(10).read(messages(b"abc", then_wait=True), NoCheck()))
        assert refused.value.status == 408

    def test_a_disconnect_is_not_an_error_to_answer(self) -> None:
        intake = admission(Clock())

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.disconnect"}

        with pytest.raises(ClientGone):
            asyncio.run(intake.admit(10).read(receive, NoCheck()))

    def test_an_evicted_upload_stops_reading_with_503(self) -> None:
        clock = Clock()
        intake = admission(clock, max_pending=1)

        async def scenario() -> None:
            slow = intake.admit(10)
            reading = asyncio.ensure_future(slow.read(messages(b"a", then_wait=True), NoCheck()))
            await asyncio.sleep(0)
            clock.now += 3
            intake.admit(10)
            with pytest.raises(Refused) as refused:
                await reading
            assert refused.value.status == 503

        asyncio.run(scenario())


class TestRefusalLog:
    def test_a_flood_is_summarized_not_dropped(self, caplog: pytest.LogCaptureFixture) -> None:
        clock = Clock()
        refusals = RefusalLog(logging.getLogger("test.refusals"), rate=1.0, burst=2, clock=clock)
        with caplog.at_level(logging.WARNING, "test.refusals"):
            for _ in range(5):
                refusals.refused("github", "10.0.0.1", 503, "busy")
            clock.now += 10
            refusals.refused("github", "10.0.0.1", 408, "slow")
        lines = [record.getMessage() for record in caplog.records]
        assert len(lines) == 3
        assert lines[0] == "github webhook from 10.0.0.1 refused with 503: busy"
        assert lines[2].endswith("slow (3 more refusals not logged)")
