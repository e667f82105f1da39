"""The event loop every service runs on: uvloop unless EVENT_LOOP says asyncio."""

from __future__ import annotations

import asyncio
import ssl

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


def test_tls_connections_wait_briefly_for_the_peers_close_notify(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, object]] = []

    async def create_connection(self: object, *args: object, **kwargs: object) -> None:
        asked.append(kwargs)

    monkeypatch.setattr(uvloop.Loop, "create_connection", create_connection)
    loop = event_loop.uvloop_factory()
    try:
        context = ssl.create_default_context()
        loop.run_until_complete(loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl=context))
        loop.run_until_complete(
            loop.create_connection(asyncio.Protocol, "127.0.0.1", 1, ssl=context, ssl_shutdown_timeout=7.0)
        )
        loop.run_until_complete(loop.create_connection(asyncio.Protocol, "127.0.0.1", 1))
    finally:
        loop.close()
    assert asked[0]["ssl_shutdown_timeout"] == event_loop.TLS_SHUTDOWN_SECONDS
    assert asked[1]["ssl_shutdown_timeout"] == 7.0  # the caller's own limit stands
    assert "ssl_shutdown_timeout" not in asked[2]  # plain TCP has no TLS shutdown
