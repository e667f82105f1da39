"""Short-lived pools for operator commands on a service's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from lotse.credentials import database_login
from shared.db import Pool

T = TypeVar("T")


async def with_pool(dsn: str, action: Callable[[Pool], Awaitable[T]]) -> T:
    """A pool as the read-only operator role: lotse changes no service's state itself."""
    login, password = database_login(dsn)
    pool = await asyncpg.create_pool(
        login, password=password.get_secret_value() if password else None, min_size=1, max_size=2
    )
    try:
        return await action(pool)
    finally:
        await pool.close()
