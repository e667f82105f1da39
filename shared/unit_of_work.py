"""The unit of work: one transaction in which a batch's inbox rows, new state and outbox rows are
written together, and the port through which appliers reach their service's state.

Each service extends `UnitOfWork` with the reads and writes its applier needs (its repository),
implements it over asyncpg beside its SQL (`PostgresUnitOfWork` gives the transaction, the inbox
and the outbox), and has an in-memory twin for unit tests, so that the appliers that run in
production are the ones the unit tests drive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from shared.db import Connection, Pool
from shared.events import Envelope
from shared.inbox import claim_new_events
from shared.outbox import OutboxMessage, enqueue


class UnitOfWork(Protocol):
    """What every applier's transaction offers: the inbox and the outbox."""

    async def claim_new_events(self, topic: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Record the events as processed; returns those seen for the first time."""

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        """Add messages to the outbox; they leave only if the unit of work commits."""


UnitOfWorkT = TypeVar("UnitOfWorkT", bound=UnitOfWork)
UnitOfWorkT_co = TypeVar("UnitOfWorkT_co", bound=UnitOfWork, covariant=True)
UnitOfWorkT_contra = TypeVar("UnitOfWorkT_contra", bound=UnitOfWork, contravariant=True)


class BatchApplier(Protocol[UnitOfWorkT_contra]):
    """A service's handler for one topic: load what the batch needs, run the domain, record."""

    async def apply_batch(
        self, uow: UnitOfWorkT_contra, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        """Apply the new events of one batch, in order, inside the unit of work; return what they publish."""


class UnitOfWorkContext(Protocol[UnitOfWorkT_co]):
    async def __aenter__(self) -> UnitOfWorkT_co: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None: ...


# Made with the service's pool once it has started.
UnitOfWorkFactory = Callable[[Pool], UnitOfWorkContext[UnitOfWorkT]]


class PostgresUnitOfWork:
    """A pooled connection in one transaction: committed on a clean exit, rolled back otherwise."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._connection: PoolConnectionProxy[asyncpg.Record] | None = None
        self._transaction: Transaction | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work has not begun")
        return self._connection

    async def __aenter__(self) -> Self:
        self._connection = await self._pool.acquire()
        try:
            self._transaction = self._connection.transaction()
            await self._transaction.start()
        except BaseException:
            await self._release()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._transaction is not None
        try:
            if exc_type is None:
                await self._transaction.commit()
            else:
                await self._transaction.rollback()
        finally:
            await self._release()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._pool.release(connection)

    async def claim_new_events(self, topic: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return await claim_new_events(self.connection, topic, event_ids)

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        await enqueue(self.connection, messages)
