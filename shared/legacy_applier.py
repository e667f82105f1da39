"""TRANSITIONAL, deleted once every service has its unit of work: runs an applier written against
a raw connection (`lock`, then `apply_batch` or `apply` per event) inside a PostgresUnitOfWork."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.events import Envelope
from shared.logging import bound_event
from shared.outbox import OutboxMessage
from shared.unit_of_work import PostgresUnitOfWork


class OnConnection:
    def __init__(self, legacy: Any) -> None:
        self._legacy = legacy

    async def apply_batch(
        self, uow: PostgresUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        conn = uow.connection
        await self._legacy.lock(conn, events)
        if hasattr(self._legacy, "apply_batch"):
            result: Sequence[OutboxMessage] = await self._legacy.apply_batch(conn, events)
            return result
        return await apply_each(self._legacy, conn, events)


async def apply_each(legacy: Any, conn: Any, events: Sequence[Envelope[Any]]) -> list[OutboxMessage]:
    """Apply events one at a time, each with its ids bound to the log."""
    outgoing: list[OutboxMessage] = []
    for event in events:
        with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
            outgoing.extend(await legacy.apply(conn, event))
    return outgoing
