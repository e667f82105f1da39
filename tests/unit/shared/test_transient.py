"""Which failures rewind a batch (transient) and which dead-letter its message (deterministic)."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base

from shared.db import is_transient

TRANSIENT = [
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.PostgresConnectionError("08006"),
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.SerializationError("could not serialize access"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("crash"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
    asyncpg.IdleInTransactionSessionTimeoutError("terminating connection due to idle-in-transaction timeout"),
    asyncpg.exceptions.IdleSessionTimeoutError("terminating connection due to idle-session timeout"),
    asyncpg.TooManyConnectionsError("too many clients"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg_base.OutdatedSchemaCacheError("cache lookup failed"),
    # What the next statement raises on a session the server ended while it sat idle.
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ConnectionRefusedError(111, "Connect call failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed"),
    socket.gaierror(-2, "Name or service not known"),
    TimeoutError(),
]
DETERMINISTIC = [
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.ForeignKeyViolationError("violates foreign key constraint"),
    asyncpg.CheckViolationError("violates check constraint"),
    asyncpg.NotNullViolationError("null value in column"),
    asyncpg.DataError("invalid input for query argument $1: 'abc'"),  # what asyncpg raises on encoding
    asyncpg.NumericValueOutOfRangeError("value out of range"),
    asyncpg.DivisionByZeroError("division by zero"),
    asyncpg.InvalidTextRepresentationError("invalid input syntax for type uuid"),
    asyncpg.UndefinedColumnError("column does not exist"),
    asyncpg.InsufficientPrivilegeError("permission denied"),
    asyncpg.RaiseError("raised by a trigger"),
    asyncpg_base.DataError("the client could not encode the value"),
    asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg_base.ClientConfigurationError("bad configuration"),
    ValueError("invalid literal"),
    TypeError("expected str, got int"),
    KeyError("seminar_id"),
    FileNotFoundError(2, "No such file or directory"),
    PermissionError(13, "Permission denied"),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=repr)
def test_transient_failures_are_retried(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize("error", DETERMINISTIC, ids=repr)
def test_deterministic_failures_dead_letter(error: BaseException) -> None:
    assert not is_transient(error)
