"""The notification appliers' unit of work in memory, for unit tests of the real appliers.

It keeps the service's tables as PostgreSQL would after the same statements (store.py), commits
on a clean exit and rolls back otherwise, and refuses to write a registration's rows that the
unit of work did not lock first.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType

from services.notification.domain import BatchState, Effects, NewEmail, RegistrationData
from shared.events import FUNDING_DECISION_EVENTS, EventDecoder
from shared.outbox import OutboxMessage

_PENDING_DECISIONS = EventDecoder("pending funding decision", FUNDING_DECISION_EVENTS)


@dataclass
class NotificationTables:
    registrations: dict[str, RegistrationData] = field(default_factory=dict)
    # event id -> (registration id, envelope as JSON); in arrival order
    pending_decisions: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)
    emails: dict[tuple[uuid.UUID, str], NewEmail] = field(default_factory=dict)  # by (event, template)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    outbox: list[OutboxMessage] = field(default_factory=list)
    erased_registrations: set[str] = field(default_factory=set)  # the erasure markers

    def copy(self) -> NotificationTables:
        return replace(
            self,
            registrations=dict(self.registrations),
            pending_decisions=dict(self.pending_decisions),
            emails=dict(self.emails),
            inbox=set(self.inbox),
            outbox=list(self.outbox),
            erased_registrations=set(self.erased_registrations),
        )

    def erase(self, registration_ids: set[str]) -> None:
        """As store.erase_registrations: the registrations are no longer read (their personal
        columns are NULL), their waiting decisions go, their letters lose recipient, subject and
        facts, every id is marked."""
        for rid in registration_ids:
            self.registrations.pop(rid, None)
        self.pending_decisions = {
            event_id: pending
            for event_id, pending in self.pending_decisions.items()
            if pending[0] not in registration_ids
        }
        self.emails = {
            key: replace(email, recipient="", subject="", planned=replace(email.planned, to="", facts={}))
            if email.registration_id in registration_ids
            else email
            for key, email in self.emails.items()
        }
        self.erased_registrations |= registration_ids


class InMemoryNotificationDatabase:
    """The committed tables; `unit_of_work()` begins a transaction on them."""

    def __init__(self) -> None:
        self.tables = NotificationTables()

    def unit_of_work(self, pool: object = None) -> InMemoryNotificationUnitOfWork:
        """A unit of work; `pool` is taken, and ignored, as the BatchConsumer's factory passes one."""
        return InMemoryNotificationUnitOfWork(self)


class InMemoryNotificationUnitOfWork:
    def __init__(self, database: InMemoryNotificationDatabase) -> None:
        self._database = database
        self._work: NotificationTables | None = None
        self._locked: set[str] = set()

    @property
    def _tables(self) -> NotificationTables:
        if self._work is None:
            raise RuntimeError("the unit of work has not begun")
        return self._work

    async def __aenter__(self) -> InMemoryNotificationUnitOfWork:
        self._work = self._database.tables.copy()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self._database.tables = self._tables
        self._work = None
        self._locked = set()

    async def claim_new_events(self, topic: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        new = {event_id for event_id in event_ids if (topic, event_id) not in self._tables.inbox}
        self._tables.inbox.update((topic, event_id) for event_id in new)
        return new

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        self._tables.outbox.extend(messages)

    async def lock_and_load(
        self, registration_ids: Sequence[str], *, with_pending_decisions: bool
    ) -> BatchState:
        self._locked.update(registration_ids)
        tables = self._tables
        wanted = set(registration_ids)
        return BatchState(
            registrations={
                rid: tables.registrations[rid] for rid in registration_ids if rid in tables.registrations
            },
            pending_decisions=(
                [
                    _PENDING_DECISIONS.decode(envelope.encode())
                    for registration_id, envelope in tables.pending_decisions.values()
                    if registration_id in wanted
                ]
                if with_pending_decisions
                else ()
            ),
            erased=frozenset(wanted & tables.erased_registrations),
        )

    async def record(self, effects: Effects) -> set[uuid.UUID]:
        written = [
            *(r.registration_id for r in effects.registrations),
            *(d.data.registration_id for d in (*effects.released, *effects.keep_pending)),
            *(email.registration_id for email in effects.emails),
        ]
        unlocked = set(written) - self._locked
        assert not unlocked, f"rows written for registrations not locked first: {sorted(unlocked)}"
        tables = self._tables
        for registration in effects.registrations:
            tables.registrations[registration.registration_id] = registration
        for decision in effects.released:
            tables.pending_decisions.pop(decision.event_id, None)
        for decision in effects.keep_pending:
            tables.pending_decisions.setdefault(
                decision.event_id, (decision.data.registration_id, decision.model_dump_json())
            )
        recorded: set[uuid.UUID] = set()
        for email in effects.emails:
            if (email.event_id, email.template) not in tables.emails:
                tables.emails[(email.event_id, email.template)] = email
                recorded.add(email.id)
        return recorded


def pending_registration_ids(tables: NotificationTables) -> dict[uuid.UUID, str]:
    return {event_id: registration_id for event_id, (registration_id, _) in tables.pending_decisions.items()}


def emails_by_event(tables: NotificationTables) -> dict[uuid.UUID, NewEmail]:
    return {email.event_id: email for email in tables.emails.values()}
