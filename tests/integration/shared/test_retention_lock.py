"""The retention schedule runs one round at a time across a service's instances (shared.erasure):
while one instance holds the round's lock, another skips its round instead of waiting."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import Connection
from shared.erasure import run_retention_round, try_retention_lock
from tests.conftest import DatabaseFactory

pytestmark = pytest.mark.integration


async def test_a_second_instance_skips_the_round_another_one_runs(make_database: DatabaseFactory) -> None:
    dsn = await make_database("registration")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    rounds: list[str] = []

    async def job(conn: Connection) -> dict[str, int]:
        rounds.append("ran")
        return {"registrations": 0}

    try:
        holder = await asyncpg.connect(dsn)
        try:
            async with holder.transaction():
                assert await try_retention_lock(holder)  # the other instance, mid-round
                assert await run_retention_round(pool, "registration", job) is None
            assert rounds == []
            # Released with the holder's transaction: the next round runs.
            assert await run_retention_round(pool, "registration", job) == {"registrations": 0}
            assert rounds == ["ran"]
        finally:
            await holder.close()
    finally:
        await pool.close()
