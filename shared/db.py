"""The PostgreSQL pool, the timeouts of every session, and the rule that tells a transient
database failure (retry the same work) from a deterministic one (the work itself is at fault)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import SecretStr

if TYPE_CHECKING:
    from shared.settings import CommonSettings

T = TypeVar("T")

# A connection of our own or one lent by a pool: what every store function takes.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

# Failures that are transient whatever their details: the same work, tried again, can succeed.
# `is_transient` is the whole rule; this tuple is its part that `isinstance` can express.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08, and the client's "connection was closed"
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    # Class 57: admin or crash shutdown, cannot connect now, statement_timeout, idle timeouts.
    asyncpg.OperatorInterventionError,
    asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.ObjectInUseError,
    # Resource exhaustion (too many connections, out of memory or disk) and the server's I/O.
    asyncpg.InsufficientResourcesError,
    asyncpg.PostgresSystemError,
    asyncpg.exceptions.TransactionResolutionUnknownError,
    asyncpg.exceptions.OutdatedSchemaCacheError,
    ConnectionError,
    TimeoutError,
)
# OSErrors of the file system are deterministic; the rest are the network's (DNS, routes,
# asyncio's "Multiple exceptions" when every address of a host refused).
_FILE_SYSTEM_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the same work may succeed if tried again: the connection, a lock, a timeout or
    the server failed, not the work. Everything else (constraint violations, bad data, a value
    the driver cannot encode, a wrong argument) fails again the same way: deterministic."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # The client's own errors. Its subclasses (DataError: a value it cannot encode, wrong
        # configuration, unsupported features) are deterministic, and so is a plain one (wrong
        # number of arguments, misuse) unless it says that the connection is gone.
        return type(exc) is asyncpg.InterfaceError and "closed" in str(exc)
    if isinstance(exc, asyncpg.InternalClientError):
        # The protocol's state broke, as when the server ended the session while it sat idle
        # ("cannot switch to state …; another operation is in progress"): the connection is
        # lost, the work was fine, and a fresh connection from the pool succeeds.
        return True
    if isinstance(exc, OSError):
        return not isinstance(exc, _FILE_SYSTEM_ERRORS)
    return False


@dataclass(frozen=True)
class SessionTimeouts:
    """Server-side limits of every session, so that a stopped or stuck instance cannot hold a
    lock for ever: the server cancels a statement that waits for a lock or runs too long, and ends
    a session that sits idle inside a transaction (which releases its locks)."""

    lock_timeout: float = 10.0
    statement_timeout: float = 30.0
    idle_in_transaction: float = 10.0

    def server_settings(self) -> dict[str, str]:
        return {
            "lock_timeout": _milliseconds(self.lock_timeout),
            "statement_timeout": _milliseconds(self.statement_timeout),
            "idle_in_transaction_session_timeout": _milliseconds(self.idle_in_transaction),
        }


TIMEOUT_SETTINGS = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")


def _milliseconds(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def session_timeouts(settings: CommonSettings) -> SessionTimeouts:
    return SessionTimeouts(
        lock_timeout=settings.db_lock_timeout_seconds,
        statement_timeout=settings.db_statement_timeout_seconds,
        idle_in_transaction=settings.db_idle_in_transaction_timeout_seconds,
    )


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


# Plan every execution with its parameters. asyncpg prepares each statement once per connection,
# and PostgreSQL would soon settle on a generic plan made while a table was still small: a batch
# lookup by `= ANY($1)` then stays a sequential scan as the table grows (110 ms instead of 1 ms
# per 500 keys at 35,000 rows, measured with pg_stat_statements in the benchmark).
SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
# Client side, above statement_timeout: the server cancels first and says why.
COMMAND_TIMEOUT_SECONDS = 60


class PooledConnection(asyncpg.Connection):
    """A pool's connection, released without asyncpg's reset statement.

    asyncpg sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: a round trip per unit of work, about one in fifteen of a service's statements (it
    still rolls back an open transaction and drops listeners on its own). Code on pooled
    connections leaves no session state behind: its locks are transaction-level, its listeners
    are removed when it ends, and whatever sets a session setting or takes a session lock resets
    it before release (the migrations at start-up).
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str,
    *,
    max_size: int = 10,
    min_size: int = 1,
    timeouts: SessionTimeouts | None = None,
    password: SecretStr | None = None,
) -> asyncpg.Pool:
    """A pool on `dsn`; the password is given apart, since URLs carry none (and end up in logs)."""
    pool = await asyncpg.create_pool(
        dsn,
        password=password.get_secret_value() if password is not None else None,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        connection_class=PooledConnection,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        server_settings={**SESSION_SETTINGS, **(timeouts or SessionTimeouts()).server_settings()},
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def without_timeouts(conn: Connection) -> AsyncIterator[Connection]:
    """The block runs without lock and statement timeouts, which come back after it: a pooled
    session is not reset on release (PooledConnection). A block that fails ends the session, and
    the pool replaces it."""
    await conn.execute("SET statement_timeout = 0; SET lock_timeout = 0")
    try:
        yield conn
    except BaseException:
        conn.terminate()
        raise
    await conn.execute("RESET statement_timeout; RESET lock_timeout")


async def connect(
    dsn: str,
    *,
    timeouts: SessionTimeouts | None = None,
    idle_session_timeout: float | None = None,
    password: SecretStr | None = None,
) -> asyncpg.Connection:
    """A connection of its own (a leader's session, a listener), with the pool's settings.

    `idle_session_timeout` also ends the session when it sits idle outside a transaction: for a
    session that holds a session-level lock, so that a stopped holder loses it.
    """
    settings = {**SESSION_SETTINGS, **(timeouts or SessionTimeouts()).server_settings()}
    if idle_session_timeout is not None:
        settings["idle_session_timeout"] = _milliseconds(idle_session_timeout)
    conn = await asyncpg.connect(
        dsn,
        password=password.get_secret_value() if password is not None else None,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        server_settings=settings,
    )
    await _init_connection(conn)
    return conn


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    base_delay: float = 0.1,
    max_delay: float = 5.0,
    give_up_after: float | None = None,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """Run operation, retrying transient database errors with exponential backoff and jitter."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            if give_up_after is not None and loop.time() - started > give_up_after:
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            delay = min(max_delay, base_delay * 2 ** min(attempt, 16))
            await asyncio.sleep(random.uniform(delay / 2, delay))
