"""How every long-running process of the project runs its event loop.

uvloop by default: its transports and its TLS are written in C, where asyncio's own selector
transports and `sslproto` are Python. Each batch of a service makes a dozen database round trips,
three to four Kafka requests over TLS and a consumer commit, and on asyncio's loop the Python
side of those writes and reads cost more CPU than the work itself (ADR 0022). `EVENT_LOOP=asyncio`
runs on the standard loop instead, e.g. to compare the two or where uvloop is not installed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoop = Literal["uvloop", "asyncio"]
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


def run(main: Coroutine[Any, Any, T], *, loop: EventLoop | None = None) -> T:
    """Run `main` to completion on the chosen loop, as `asyncio.run` does."""
    if (loop or chosen()) == "asyncio":
        return asyncio.run(main)
    import uvloop  # a dependency of the project; imported here so that the asyncio choice needs it not

    return uvloop.run(main)
