"""Short-lived pools for operator commands on a service's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from shared.db import Pool

T = TypeVar("T")


async def with_pool(dsn: str, action: Callable[[Pool], Awaitable[T]]) -> T:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        return await action(pool)
    finally:
        await pool.close()
