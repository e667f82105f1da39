"""The registration service's state in memory: a unit of work that commits or rolls back like a
transaction, with the same loads, guards and constraints as `services/registration/store.py`.

The unit tests drive the real appliers through it; tests/integration/registration/test_batches.py
holds the SQL to the same behaviour against PostgreSQL.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Any

from services.registration.domain import (
    ACTIVE_STATUSES,
    GivenParticipant,
    ParkedSubmission,
    ParkingState,
    ParticipantKey,
    PendingWithdrawal,
    PortalRegistrationData,
    PortalSeminarData,
    Registration,
    RegistrationContent,
    RegistrationsState,
    Seminar,
    SeminarSeats,
    SeminarsState,
    StateChanges,
    Status,
    seminar_reach,
    waitlist_reach,
)
from services.registration.store import StaleStateError
from services.registration.unit_of_work import RegistrationUnitOfWork
from shared.events import Envelope, RegistrationSubmitted, SeminarPublished
from shared.outbox import OutboxMessage
from shared.unit_of_work import BatchApplier


class ConstraintViolationError(Exception):
    """What PostgreSQL's constraints would refuse."""


@dataclass(frozen=True)
class SeminarRow:
    seminar_id: str
    title: str
    starts_on: date
    ends_on: date
    location: str
    fee_cents: int
    capacity: int
    accepted_count: int = 0
    kept_seats: int = 0
    cancelled: bool = False
    course: str = "basic"


@dataclass(frozen=True)
class RegistrationRow:
    registration_id: str
    given_kommune_key: str
    content: RegistrationContent
    status: Status
    waitlist_seq: int | None
    rejection_reason: str | None
    withdrawal_reason: str | None
    submitted_at: datetime | None = None
    erased: bool = False  # store: erased_at IS NOT NULL, its personal columns NULL


@dataclass(frozen=True)
class ParkedRow:
    parked: ParkedSubmission  # with its arrived_at
    arrival_seq: int


class RegistrationRows(dict[str, RegistrationRow]):
    """The registrations by id, with an index by seminar as PostgreSQL keeps one: without it a
    replay of tens of thousands of events scans every registration for every event."""

    def __init__(self) -> None:
        super().__init__()
        self.by_seminar: dict[str, set[str]] = {}

    def __setitem__(self, registration_id: str, row: RegistrationRow) -> None:
        super().__setitem__(registration_id, row)
        self.by_seminar.setdefault(row.content.seminar_id, set()).add(registration_id)

    def of_seminar(self, seminar_id: str) -> list[RegistrationRow]:
        return [self[rid] for rid in self.by_seminar.get(seminar_id, ())]


@dataclass
class RegistrationTables:
    """The service's tables, its inbox and its outbox."""

    seminars: dict[str, SeminarRow] = field(default_factory=dict)
    registrations: RegistrationRows = field(default_factory=RegistrationRows)
    pending_withdrawals: dict[str, PendingWithdrawal] = field(default_factory=dict)
    parked_submissions: dict[str, ParkedRow] = field(default_factory=dict)
    waitlist_order: int = 0  # the sequence's last value
    parking_order: int = 0
    inbox: set[uuid.UUID] = field(default_factory=set)
    outbox: list[OutboxMessage] = field(default_factory=list)
    erased_registrations: set[str] = field(default_factory=set)  # the erasure markers

    def erase(self, registration_ids: set[str]) -> None:
        """As store.erase_registrations: personal columns NULL (here: empty), parked ones gone,
        a marker for every id."""
        for rid in registration_ids:
            row = self.registrations.get(rid)
            if row is not None:
                content = replace(
                    row.content, given_name="", family_name="", participant_email="", contact_email=""
                )
                self.registrations[rid] = replace(row, content=content, erased=True)
            self.parked_submissions.pop(rid, None)
        self.erased_registrations |= registration_ids

    def check_constraints(self) -> None:
        for s in self.seminars.values():
            if not (0 <= s.kept_seats <= s.accepted_count <= max(s.capacity, s.kept_seats)):
                raise ConstraintViolationError(f"seats of {s.seminar_id}: {s}")
        active: set[ParticipantKey] = set()
        for r in self.registrations.values():
            if (r.status is Status.WAITLISTED) != (r.waitlist_seq is not None):
                raise ConstraintViolationError(f"waitlist_seq of {r.registration_id}")
            if (r.status is Status.REJECTED) != (r.rejection_reason is not None):
                raise ConstraintViolationError(f"rejection_reason of {r.registration_id}")
            if (r.status is Status.WITHDRAWN) != (r.withdrawal_reason is not None):
                raise ConstraintViolationError(f"withdrawal_reason of {r.registration_id}")
            if r.status in ACTIVE_STATUSES and not r.erased:  # a NULL email is in no unique key
                key = (r.content.seminar_id, r.content.participant_email.lower())
                if key in active:
                    raise ConstraintViolationError(f"registrations_active_participant: {key}")
                active.add(key)

    def waitlist(self, seminar_id: str) -> list[RegistrationRow]:
        waiting = [r for r in self.registrations.of_seminar(seminar_id) if r.status is Status.WAITLISTED]
        return sorted(waiting, key=lambda r: r.waitlist_seq or 0)

    def parked(self, registration_ids: set[str]) -> list[ParkedSubmission]:
        """Those among the ids that are parked, in arrival order."""
        rows = [row for rid, row in self.parked_submissions.items() if rid in registration_ids]
        return [row.parked for row in sorted(rows, key=lambda row: row.arrival_seq)]


class InMemoryDatabase:
    """Committed state; each unit of work works on a copy and replaces it on commit.

    Without isolation (the fault suite's model, tens of thousands of events that all commit) a
    unit of work changes the tables in place and the constraints are checked once, at the end."""

    def __init__(self, *, isolated: bool = True) -> None:
        self.isolated = isolated
        self.tables = RegistrationTables()
        # The database's clock (now() of a transaction): the tests move it.
        self.now = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)

    def unit_of_work(self, _pool: object = None) -> InMemoryRegistrationUnitOfWork:
        return InMemoryRegistrationUnitOfWork(self)


def _registration(row: RegistrationRow) -> Registration:
    return Registration(row.registration_id, row.status, row.content, row.submitted_at, row.erased)


class InMemoryRegistrationUnitOfWork:
    """`RegistrationUnitOfWork` over a copy of the database's tables."""

    def __init__(self, database: InMemoryDatabase) -> None:
        self._database = database
        self._tables: RegistrationTables | None = None

    @property
    def tables(self) -> RegistrationTables:
        if self._tables is None:
            raise RuntimeError("the unit of work has not begun")
        return self._tables

    async def __aenter__(self) -> InMemoryRegistrationUnitOfWork:
        tables = self._database.tables
        self._tables = copy.deepcopy(tables) if self._database.isolated else tables
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tables, self._tables = self._tables, None
        if exc_type is not None and not self._database.isolated:
            raise RuntimeError("a unit of work without isolation failed and cannot roll back") from exc
        if exc_type is None and tables is not None:
            self._database.tables = tables

    async def claim_new_events(self, topic: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        new = set(event_ids) - self.tables.inbox
        self.tables.inbox |= new
        return new

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        self.tables.outbox.extend(messages)

    def _seminars(self, seminar_ids: set[str]) -> dict[str, Seminar]:
        found: dict[str, Seminar] = {}
        for seminar_id in sorted(seminar_ids):
            row = self.tables.seminars.get(seminar_id)
            if row is not None:
                found[seminar_id] = Seminar(
                    seminar_id=row.seminar_id,
                    title=row.title,
                    starts_on=row.starts_on,
                    ends_on=row.ends_on,
                    fee_cents=row.fee_cents,
                    cancelled=row.cancelled,
                    location=row.location,
                    course="follow_up" if row.course == "follow_up" else "basic",
                    seats=SeminarSeats(
                        capacity=row.capacity,
                        accepted=row.accepted_count,
                        waitlisted=len(self.tables.waitlist(seminar_id)),
                        kept=row.kept_seats,
                    ),
                )
        return found

    def _heads(self, entries: dict[str, int]) -> dict[str, list[Registration]]:
        return {
            seminar_id: [_registration(r) for r in self.tables.waitlist(seminar_id)[:count]]
            for seminar_id, count in entries.items()
            if count > 0
        }

    async def load_for_registrations(self, events: Sequence[PortalRegistrationData]) -> RegistrationsState:
        ids = {data.registration_id for data in events}
        submissions = [data for data in events if isinstance(data, RegistrationSubmitted)]
        stored = {
            rid: _registration(self.tables.registrations[rid])
            for rid in ids
            if rid in self.tables.registrations
        }
        parked = {p.registration_id: p for p in self.tables.parked(ids)}
        seminars = self._seminars(
            {data.seminar_id for data in submissions}
            | {r.content.seminar_id for r in stored.values()}
            | {p.content.seminar_id for p in parked.values()}
        )
        pairs: set[GivenParticipant] = {(data.seminar_id, data.participant.email) for data in submissions}
        pairs |= {(r.content.seminar_id, r.content.participant_email) for r in stored.values()}
        keys = {pair: (pair[0], pair[1].lower()) for pair in pairs}
        active_now = {
            (r.content.seminar_id, r.content.participant_email.lower())
            for seminar_id in {seminar_id for seminar_id, _ in keys.values()}
            for r in self.tables.registrations.of_seminar(seminar_id)
            if r.status in ACTIVE_STATUSES
        }
        pending = {rid for rid in ids if rid in self.tables.pending_withdrawals}
        return RegistrationsState(
            registrations=stored,
            seminars=seminars,
            waitlist_heads=self._heads(waitlist_reach(events, stored, pending, seminars)),
            participant_keys=keys,
            active_participants={key for key in keys.values() if key in active_now},
            pending_withdrawals=pending,
            parked=parked,
            erased=frozenset(ids & self.tables.erased_registrations),
        )

    async def load_for_seminars(self, events: Sequence[PortalSeminarData]) -> SeminarsState:
        seminars = self._seminars({data.seminar_id for data in events})
        reach = seminar_reach(events, seminars)
        heads = self._heads({sid: n for sid, n in reach.waitlist_heads.items() if sid not in reach.cancelled})
        accepted: dict[str, list[Registration]] = {}
        order: dict[str, int] = {}
        for seminar_id in reach.cancelled:
            active = sorted(
                (r for r in self.tables.registrations.of_seminar(seminar_id) if r.status in ACTIVE_STATUSES),
                key=lambda r: r.registration_id,
            )
            order.update({r.registration_id: rank for rank, r in enumerate(active, start=1)})
            accepted[seminar_id] = [_registration(r) for r in active if r.status is Status.ACCEPTED]
            heads[seminar_id] = [_registration(r) for r in self.tables.waitlist(seminar_id)]
        offered = {data.seminar_id for data in events if isinstance(data, SeminarPublished)} - set(seminars)
        parked: dict[str, list[ParkedSubmission]] = {}
        for p in self.tables.parked(set(self.tables.parked_submissions)):
            if p.content.seminar_id in offered:
                parked.setdefault(p.content.seminar_id, []).append(p)
        for group in parked.values():
            ranked = sorted(p.registration_id for p in group)
            order.update({rid: rank for rank, rid in enumerate(ranked, start=1)})
        keys = {
            (p.content.seminar_id, p.content.participant_email): (
                p.content.seminar_id,
                p.content.participant_email.lower(),
            )
            for group in parked.values()
            for p in group
        }
        return SeminarsState(
            seminars=seminars,
            waitlist_heads=heads,
            accepted=accepted,
            registration_order=order,
            parked=parked,
            participant_keys=keys,
        )

    async def load_expired_parking(self, grace: timedelta, limit: int) -> ParkingState:
        now = self._database.now
        waiting = self.tables.parked(set(self.tables.parked_submissions))
        expired = [p for p in waiting if p.arrived_at is not None and p.arrived_at <= now - grace]
        return ParkingState(now=now, parked=expired[:limit])

    async def record(self, changes: StateChanges) -> None:
        tables = self.tables
        for data in changes.published_seminars:
            before = tables.seminars.get(data.seminar_id)
            details: dict[str, Any] = {
                "course": data.course,
                "title": data.title,
                "starts_on": data.starts_on,
                "ends_on": data.ends_on,
                "location": data.location,
                "fee_cents": data.fee_cents,
                "capacity": data.capacity,
            }
            if before is None:
                tables.seminars[data.seminar_id] = SeminarRow(seminar_id=data.seminar_id, **details)
            else:
                kept = before.accepted_count if before.accepted_count > data.capacity else 0
                tables.seminars[data.seminar_id] = replace(before, **details, kept_seats=kept)
        for change in changes.changed_registrations:
            row = tables.registrations.get(change.registration_id)
            if row is None or row.status not in ACTIVE_STATUSES:
                raise StaleStateError(f"registration no longer active: {change.registration_id}")
            tables.registrations[change.registration_id] = replace(
                row, status=change.status, withdrawal_reason=change.withdrawal_reason, waitlist_seq=None
            )
        for new in changes.new_registrations:
            if new.registration_id in tables.registrations:
                raise ConstraintViolationError(f"registrations_pkey: {new.registration_id}")
            seq = None
            if new.took_waitlist_place:
                tables.waitlist_order += 1
                seq = tables.waitlist_order
            tables.registrations[new.registration_id] = RegistrationRow(
                registration_id=new.registration_id,
                given_kommune_key=new.given_kommune_key,
                content=new.content,
                status=new.status,
                waitlist_seq=seq if new.status is Status.WAITLISTED else None,
                rejection_reason=new.rejection_reason,
                withdrawal_reason=new.withdrawal_reason,
                submitted_at=new.submitted_at,
            )
        for seats in changes.seats:
            seminar = tables.seminars.get(seats.seminar_id)
            if seminar is None or seminar.cancelled or seminar.accepted_count != seats.accepted_before:
                raise StaleStateError(f"seats changed underneath the run in seminar {seats.seminar_id}")
            tables.seminars[seats.seminar_id] = replace(
                seminar,
                accepted_count=seats.seats.accepted,
                kept_seats=seats.seats.kept,
                cancelled=seats.cancelled,
            )
        for pending in changes.remembered_withdrawals:
            tables.pending_withdrawals.setdefault(pending.registration_id, pending)
        for registration_id in changes.forgotten_withdrawals:
            tables.pending_withdrawals.pop(registration_id, None)
        for registration_id in changes.unparked_submissions:
            if tables.parked_submissions.pop(registration_id, None) is None:
                raise StaleStateError(f"submission no longer parked: {registration_id}")
        for parked in changes.parked_submissions:
            if parked.registration_id in tables.parked_submissions:
                raise ConstraintViolationError(f"parked_submissions_pkey: {parked.registration_id}")
            tables.parking_order += 1
            tables.parked_submissions[parked.registration_id] = ParkedRow(
                replace(parked, arrived_at=self._database.now), tables.parking_order
            )
        if self._database.isolated:
            tables.check_constraints()


async def consume(
    database: InMemoryDatabase,
    topic: str,
    applier: BatchApplier[RegistrationUnitOfWork],
    events: Sequence[Envelope[Any]],
) -> list[OutboxMessage]:
    """What the batch consumer does with one batch: in one unit of work, claim the events in the
    inbox, apply the new ones, put what they publish in the outbox. Returns what they published."""
    async with database.unit_of_work() as uow:
        new_ids = await uow.claim_new_events(topic, [event.event_id for event in events])
        fresh: list[Envelope[Any]] = []
        for event in events:
            if event.event_id in new_ids:
                new_ids.discard(event.event_id)  # a second copy within the batch is a redelivery
                fresh.append(event)
        messages = list(await applier.apply_batch(uow, fresh)) if fresh else []
        await uow.enqueue(messages)
    return messages
