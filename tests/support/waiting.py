"""Polling until something holds, for tests that wait on another task, process or service."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool],
    timeout: float = 60.0,
    *,
    interval: float = 0.1,
    message: str = "condition not met in time",
) -> None:
    """Poll until the condition (a check, or a coroutine function) holds; fail the test if it does
    not within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _holds(condition):
        if loop.time() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(interval)


async def _holds(condition: Callable[[], Awaitable[bool] | bool]) -> bool:
    result = condition()
    return bool(await result) if inspect.isawaitable(result) else bool(result)
