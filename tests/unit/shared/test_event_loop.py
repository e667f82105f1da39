"""The event loop every service runs on: uvloop unless EVENT_LOOP says asyncio."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from shared import event_loop


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "uvloop"),
        ({"EVENT_LOOP": "uvloop"}, "uvloop"),
        ({"EVENT_LOOP": "asyncio"}, "asyncio"),
        ({"EVENT_LOOP": " AsyncIO "}, "asyncio"),
    ],
)
def test_the_environment_chooses_the_loop(environ: dict[str, str], expected: str) -> None:
    assert event_loop.chosen(environ) == expected


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(event_loop.EventLoopError, match=r"EVENT_LOOP='trio'.*uvloop, asyncio"):
        event_loop.chosen({"EVENT_LOOP": "trio"})


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_run_uses_uvloop_by_default_and_asyncio_when_chosen() -> None:
    assert issubclass(event_loop.run(_loop_type(), loop="uvloop"), uvloop.Loop)
    assert not issubclass(event_loop.run(_loop_type(), loop="asyncio"), uvloop.Loop)


def test_run_returns_what_the_coroutine_returns() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert event_loop.run(answer()) == 42
