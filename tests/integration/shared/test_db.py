"""The services' database pool against a real PostgreSQL."""

from __future__ import annotations

import asyncpg

from shared.db import Connection, create_pool
from tests.conftest import DatabaseFactory

LOOKUP = "SELECT id FROM items WHERE id = ANY($1::text[])"
PLANS = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1"
EXECUTIONS = 8  # PostgreSQL weighs a generic plan from the sixth execution on
BATCH_KEYS = [f"registration-{n}" for n in range(500)]  # a consumer batch's keys


async def _plans_after_lookups(conn: Connection) -> tuple[int, int]:
    await conn.execute("CREATE TABLE IF NOT EXISTS items (id text PRIMARY KEY)")
    for _ in range(EXECUTIONS):
        await conn.fetch(LOOKUP, BATCH_KEYS)
    row = await conn.fetchrow(PLANS, LOOKUP)
    assert row is not None
    return row["generic_plans"], row["custom_plans"]


async def test_batch_lookups_are_planned_with_their_own_keys_every_time(
    make_database: DatabaseFactory,
) -> None:
    """A generic plan made while a table is small stays a sequential scan as the table grows;
    the pool's sessions plan each execution with its parameters and the table's size instead."""
    dsn = await make_database("registration")
    pool = await create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            assert await _plans_after_lookups(conn) == (0, EXECUTIONS)
    finally:
        await pool.close()
    # The same statement on a default session settles on a generic plan: the check above can fail.
    own = await asyncpg.connect(dsn)
    try:
        generic, _ = await _plans_after_lookups(own)
        assert generic > 0
    finally:
        await own.close()
