"""`shipyard serve` runs on uvloop where it is installed, on asyncio's loop on request."""

from __future__ import annotations

import asyncio

import pytest

from controller.cli import event_loop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_is_uvloop_where_installed_else_asyncio() -> None:
    expected = "uvloop" if event_loop.available("uvloop") else "asyncio"
    assert event_loop.resolve("auto") == expected
    assert event_loop.run(loop_module()).split(".")[0] == expected


def test_asyncio_runs_on_asyncio_even_where_uvloop_is_installed() -> None:
    assert event_loop.resolve("asyncio") == "asyncio"
    assert event_loop.run(loop_module(), "asyncio").split(".")[0] == "asyncio"


@pytest.mark.skipif(not event_loop.available("uvloop"), reason="uvloop is not installed here")
def test_uvloop_runs_on_uvloop() -> None:
    assert event_loop.run(loop_module(), "uvloop").split(".")[0] == "uvloop"


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown event loop 'libev'; choose from auto"):
        event_loop.resolve("libev")
