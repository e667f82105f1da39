"""The services' database pool against a real PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import (
    TIMEOUT_SETTINGS,
    Connection,
    SessionTimeouts,
    connect,
    create_pool,
    is_transient,
    session_timeouts,
    without_timeouts,
)
from shared.settings import CommonSettings
from tests.conftest import DatabaseFactory

LOOKUP = "SELECT id FROM items WHERE id = ANY($1::text[])"
PLANS = "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1"
EXECUTIONS = 8  # PostgreSQL weighs a generic plan from the sixth execution on
SETTING_MS = "SELECT setting FROM pg_settings WHERE name = $1"  # these timeouts are kept in ms
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


async def test_a_session_idle_in_a_transaction_loses_its_locks_to_a_waiting_session(
    make_database: DatabaseFactory,
) -> None:
    """A stopped instance that holds a lock inside a transaction cannot hold it for ever: the
    server ends its session, and the session waiting for the lock gets it."""
    dsn = await make_database("registration")
    timeouts = SessionTimeouts(lock_timeout=30.0, statement_timeout=30.0, idle_in_transaction=0.5)
    pool = await create_pool(dsn, max_size=1, timeouts=timeouts)
    stopped = await connect(dsn, timeouts=timeouts)
    try:
        await pool.execute("CREATE TABLE periods (period_id text PRIMARY KEY, budget bigint)")
        await pool.execute("INSERT INTO periods VALUES ('2026-1', 100)")
        await stopped.execute("BEGIN")
        await stopped.execute("SELECT * FROM periods WHERE period_id = '2026-1' FOR UPDATE")
        # `stopped` now sits idle, holding the row's lock, as a paused process would.
        async with pool.acquire() as waiting, waiting.transaction():
            row = await waiting.fetchrow("SELECT budget FROM periods WHERE period_id = '2026-1' FOR UPDATE")
            assert row is not None and row["budget"] == 100
        with pytest.raises(Exception) as ended:  # the server's FATAL, or "connection is closed"
            await stopped.execute("SELECT 1")
        assert is_transient(ended.value), repr(ended.value)
        assert stopped.is_closed()
    finally:
        await stopped.close()
        await pool.close()


async def test_a_statement_waiting_for_a_lock_or_running_too_long_is_cancelled(
    make_database: DatabaseFactory,
) -> None:
    dsn = await make_database("registration")
    timeouts = SessionTimeouts(lock_timeout=0.2, statement_timeout=0.5, idle_in_transaction=30.0)
    pool = await create_pool(dsn, max_size=2, timeouts=timeouts)
    try:
        await pool.execute("CREATE TABLE periods (period_id text PRIMARY KEY)")
        await pool.execute("INSERT INTO periods VALUES ('2026-1')")
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT * FROM periods FOR UPDATE")
            with pytest.raises(asyncpg.LockNotAvailableError):
                async with pool.acquire() as waiting, waiting.transaction():
                    await waiting.execute("SELECT * FROM periods FOR UPDATE")
        with pytest.raises(asyncpg.QueryCanceledError):
            await pool.execute("SELECT pg_sleep(5)")
    finally:
        await pool.close()


async def test_every_session_has_the_configured_timeouts_and_sane_defaults(
    make_database: DatabaseFactory,
) -> None:
    dsn = await make_database("registration")
    defaults = CommonSettings()
    assert 0 < defaults.db_lock_timeout_seconds <= defaults.db_statement_timeout_seconds
    assert defaults.db_idle_in_transaction_timeout_seconds > 0
    pool = await create_pool(dsn, max_size=1, timeouts=session_timeouts(defaults))
    own = await connect(dsn, timeouts=SessionTimeouts(2.0, 3.0, 4.0), idle_session_timeout=5.0)
    try:
        async with pool.acquire() as conn:
            shown = [await conn.fetchval(SETTING_MS, name) for name in TIMEOUT_SETTINGS]
        expected = [
            defaults.db_lock_timeout_seconds,
            defaults.db_statement_timeout_seconds,
            defaults.db_idle_in_transaction_timeout_seconds,
        ]
        assert shown == [str(round(seconds * 1000)) for seconds in expected]
        assert [await own.fetchval(SETTING_MS, name) for name in TIMEOUT_SETTINGS] == ["2000", "3000", "4000"]
        assert await own.fetchval(SETTING_MS, "idle_session_timeout") == "5000"
        assert await own.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await own.close()
        await pool.close()


async def test_a_released_connection_is_rolled_back_but_not_reset(
    make_database: DatabaseFactory,
) -> None:
    """The pool skips asyncpg's reset statement (a round trip per unit of work): an open
    transaction is still rolled back on release, while session state stays, so the code that
    sets any must reset it itself (shared.db.PooledConnection)."""
    dsn = await make_database("registration")
    pool = await create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SET application_name = 'left-behind'")
            await conn.execute("CREATE TABLE items (id text PRIMARY KEY)")
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("INSERT INTO items VALUES ('uncommitted')")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend  # the same session
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM items") == 0
            assert await conn.fetchval("SHOW application_name") == "left-behind"
    finally:
        await pool.close()


async def test_a_block_without_timeouts_gives_them_back_or_ends_its_session(
    make_database: DatabaseFactory,
) -> None:
    """The migrations run without timeouts on a pooled session; since the pool does not reset
    it, the timeouts come back after the block, and a block that fails ends the session."""
    dsn = await make_database("registration")
    timeouts = SessionTimeouts(lock_timeout=2.0, statement_timeout=3.0)
    pool = await create_pool(dsn, max_size=1, timeouts=timeouts)
    lifted = ["lock_timeout", "statement_timeout"]
    try:
        async with pool.acquire() as conn:
            async with without_timeouts(conn):
                assert [await conn.fetchval(SETTING_MS, name) for name in lifted] == ["0", "0"]
            backend = await conn.fetchval("SELECT pg_backend_pid()")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            assert [await conn.fetchval(SETTING_MS, name) for name in lifted] == ["2000", "3000"]
        with pytest.raises(RuntimeError, match="migration failed"):
            async with pool.acquire() as conn, without_timeouts(conn):
                raise RuntimeError("migration failed")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != backend
            assert [await conn.fetchval(SETTING_MS, name) for name in lifted] == ["2000", "3000"]
    finally:
        await pool.close()
