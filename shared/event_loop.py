"""How every long-running process of the project runs its event loop.

uvloop by default: its transports and its TLS are written in C, where asyncio's own selector
transports and `sslproto` are Python. Each batch of a service makes a dozen database round trips,
three to four Kafka requests over TLS and a consumer commit, and on asyncio's loop the Python
side of those writes and reads cost more CPU than the work itself (ADR 0022). `EVENT_LOOP=asyncio`
runs on the standard loop instead, e.g. to compare the two or where uvloop is not installed.

One difference matters: closing a TLS connection, uvloop waits for the peer's close_notify for
`ssl_shutdown_timeout` (30 s by default), and with a Kafka fetch still in flight that wait runs
out every time: each consumer's stop took 30 s. A closing client has nothing left to read, so our
loop waits at most TLS_SHUTDOWN_SECONDS (asyncio's own loop took 0.5 s, the broker's fetch wait).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoop = Literal["uvloop", "asyncio"]
TLS_SHUTDOWN_SECONDS = 0.5
EVENT_LOOPS: tuple[EventLoop, ...] = ("uvloop", "asyncio")


class EventLoopError(ValueError):
    pass


def chosen(environ: dict[str, str] | os._Environ[str] | None = None) -> EventLoop:
    """The loop EVENT_LOOP names (default uvloop); a clear error for any other value."""
    value = (environ if environ is not None else os.environ).get("EVENT_LOOP", "uvloop").strip().lower()
    if value == "uvloop":
        return "uvloop"
    if value == "asyncio":
        return "asyncio"
    raise EventLoopError(f"EVENT_LOOP={value!r}: choose one of {', '.join(EVENT_LOOPS)}")


def uvloop_factory() -> asyncio.AbstractEventLoop:
    """A uvloop loop whose TLS connections wait at most TLS_SHUTDOWN_SECONDS for the peer's
    close_notify, unless the caller asks for another limit."""
    import uvloop  # a dependency of the project; imported here so that the asyncio choice needs it not

    class Loop(uvloop.Loop):
        async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("ssl") and kwargs.get("ssl_shutdown_timeout") is None:
                kwargs["ssl_shutdown_timeout"] = TLS_SHUTDOWN_SECONDS
            return await super().create_connection(*args, **kwargs)

    return Loop()


def run(main: Coroutine[Any, Any, T], *, loop: EventLoop | None = None) -> T:
    """Run `main` to completion on the chosen loop, as `asyncio.run` does."""
    if (loop or chosen()) == "asyncio":
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop_factory) as runner:
        return runner.run(main)
