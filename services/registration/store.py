"""The registration service's state in PostgreSQL: its unit of work, and plain SQL beside it.

Lock order, the same in every transaction of every instance (no deadlocks between instances):
first the registration ids of a batch (advisory locks, in hash order), then the seminar ids
(advisory locks, in hash order), then the seminar rows (in seminar_id order). The seminar row lock
serialises every change of a seminar's seats and of its registrations' statuses; the registration
lock serialises a withdrawal with a submission of the same id that arrives on another partition.
The seminar id lock exists before the seminar's row does: it serialises parking a submission for
a seminar not known yet with that seminar's offer (which decides the parked ones) and with the
sweep that rejects them after the grace, so a parked submission is decided exactly once.

Reads and writes are one statement per table and batch (ADR 0009): `= ANY($1)` to read,
`unnest(...)` to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from services.registration.domain import (
    GivenParticipant,
    NewRegistration,
    ParkedSubmission,
    ParkingState,
    ParticipantKey,
    PendingWithdrawal,
    PortalRegistrationData,
    PortalSeminarData,
    Registration,
    RegistrationChange,
    RegistrationContent,
    RegistrationsState,
    SeatsChange,
    Seminar,
    SeminarSeats,
    SeminarsState,
    StateChanges,
    Status,
    seminar_reach,
    waitlist_reach,
)
from shared.db import Connection
from shared.erasure import ErasureRequest, mark_erased, record_erasure, strip_outbox
from shared.events import RegistrationSubmitted, SeminarPublished
from shared.unit_of_work import PostgresUnitOfWork

# Arbitrary namespaces for this service's advisory locks on registration ids and seminar ids.
REGISTRATION_LOCK_SPACE = 0x72656721
SEMINAR_LOCK_SPACE = 0x73656D21

LOCK_IDS = """
SELECT count(pg_advisory_xact_lock($1::int, key_hash))
FROM (SELECT DISTINCT hashtext(id) AS key_hash FROM unnest($2::text[]) AS id ORDER BY key_hash) AS keys
"""
LOCK_REGISTRATION_IDS = LOCK_IDS
# A registration's seminar never changes: safe to read before the seminar is locked. One
# statement, so that a parked submission moving into registrations is seen in one of the two.
SEMINARS_OF_REGISTRATIONS = """
SELECT seminar_id FROM registrations WHERE registration_id = ANY($1::text[])
UNION
SELECT seminar_id FROM parked_submissions WHERE registration_id = ANY($1::text[])
"""
LOCK_SEMINARS = """
SELECT seminar_id FROM seminars WHERE seminar_id = ANY($1::text[]) ORDER BY seminar_id FOR UPDATE
"""
# Read in a statement of its own once the rows are locked: under READ COMMITTED a statement reads
# with the snapshot it started with, so a count taken by the statement that waited for a lock
# would miss the registrations of the transaction it waited for. Locks again in case a seminar
# appeared after the lock (a no-op for the others).
GET_SEMINARS = """
SELECT seminar_id, title, starts_on, ends_on, location, course, fee_cents, capacity, accepted_count,
       kept_seats, cancelled,
       (SELECT count(*) FROM registrations r
        WHERE r.seminar_id = s.seminar_id AND r.status = 'waitlisted') AS waitlisted_count
FROM seminars s
WHERE seminar_id = ANY($1::text[])
ORDER BY seminar_id
FOR UPDATE OF s
"""
_REGISTRATION_COLUMNS = """
registration_id, seminar_id, kommune_key, given_name, family_name, participant_email,
contact_email, status, submitted_at, erased_at
"""
GET_REGISTRATIONS = f"""
SELECT {_REGISTRATION_COLUMNS} FROM registrations WHERE registration_id = ANY($1::text[])
"""
# Per (seminar_id, email): the email as lower() makes it, and whether that participant is active.
PARTICIPANTS = """
SELECT p.seminar_id, p.email, lower(p.email) AS email_key,
       EXISTS (
           SELECT 1 FROM registrations r
           WHERE r.seminar_id = p.seminar_id AND lower(r.participant_email) = lower(p.email)
             AND r.status IN ('accepted', 'waitlisted')
       ) AS registered
FROM unnest($1::text[], $2::text[]) AS p (seminar_id, email)
"""
# The batch's ids with a withdrawal remembered, and those that carry an erasure marker, in one
# statement (a batch costs the same queries as before erasure existed).
PENDING_OR_ERASED = """
SELECT registration_id, false AS erased FROM pending_withdrawals WHERE registration_id = ANY($1::text[])
UNION ALL
SELECT registration_id, true FROM erased_registrations WHERE registration_id = ANY($1::text[])
"""
# The first `entries` waiting registrations of each seminar, in waitlist order.
WAITLIST_HEADS = """
SELECT head.*
FROM unnest($1::text[], $2::integer[]) AS wanted (seminar_id, entries)
CROSS JOIN LATERAL (
    SELECT registration_id, seminar_id, kommune_key, given_name, family_name, participant_email,
           contact_email, status, submitted_at, erased_at, waitlist_seq
    FROM registrations r
    WHERE r.seminar_id = wanted.seminar_id AND r.status = 'waitlisted'
    ORDER BY r.waitlist_seq
    LIMIT wanted.entries
) AS head
ORDER BY head.seminar_id, head.waitlist_seq
"""
# Every active registration of the seminars, in the order a cancellation withdraws them, with
# each one's rank by registration_id (promotions within the batch reorder the accepted ones).
ROSTERS = f"""
SELECT {_REGISTRATION_COLUMNS},
       row_number() OVER (PARTITION BY seminar_id ORDER BY registration_id) AS registration_rank
FROM registrations
WHERE seminar_id = ANY($1::text[]) AND status IN ('accepted', 'waitlisted')
ORDER BY seminar_id, status, waitlist_seq NULLS FIRST, registration_id
"""

UPSERT_SEMINARS = """
INSERT INTO seminars (seminar_id, title, starts_on, ends_on, location, fee_cents, capacity, course)
SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::date[], $5::text[], $6::bigint[],
                     $7::integer[], $8::text[])
ON CONFLICT (seminar_id) DO UPDATE SET
    title = EXCLUDED.title,
    starts_on = EXCLUDED.starts_on,
    ends_on = EXCLUDED.ends_on,
    location = EXCLUDED.location,
    fee_cents = EXCLUDED.fee_cents,
    capacity = EXCLUDED.capacity,
    course = EXCLUDED.course,
    kept_seats = CASE WHEN seminars.accepted_count > EXCLUDED.capacity
                      THEN seminars.accepted_count ELSE 0 END,
    updated_at = now()
"""
# Only active registrations change: a promotion or a withdrawal.
CHANGE_REGISTRATIONS = """
UPDATE registrations AS r
SET status = changed.status, withdrawal_reason = changed.withdrawal_reason, waitlist_seq = NULL,
    updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[]) AS changed (registration_id, status, withdrawal_reason)
WHERE r.registration_id = changed.registration_id AND r.status IN ('accepted', 'waitlisted')
RETURNING r.registration_id
"""
# Values for a run's waitlist entries; the caller hands them out in arrival order.
NEXT_WAITLIST_SEQS = "SELECT nextval('waitlist_order') AS seq FROM generate_series(1, $1)"
INSERT_REGISTRATIONS = """
INSERT INTO registrations (
    registration_id, seminar_id, given_kommune_key, kommune_key, given_name, family_name,
    participant_email, contact_email, status, waitlist_seq, rejection_reason, withdrawal_reason,
    submitted_at
)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[],
                     $13::timestamptz[])
"""
# Written only over the seats the run started from, whatever the caller believes; the
# seats_within_capacity constraint refuses any seat beyond capacity.
SET_SEATS = """
UPDATE seminars AS s
SET accepted_count = changed.accepted, kept_seats = changed.kept, cancelled = changed.cancelled,
    updated_at = now()
FROM unnest($1::text[], $2::integer[], $3::integer[], $4::integer[], $5::boolean[])
    AS changed (seminar_id, accepted_before, accepted, kept, cancelled)
WHERE s.seminar_id = changed.seminar_id AND s.accepted_count = changed.accepted_before
  AND NOT s.cancelled
RETURNING s.seminar_id
"""
REMEMBER_WITHDRAWALS = """
INSERT INTO pending_withdrawals (registration_id, given_kommune_key, event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[])
ON CONFLICT (registration_id) DO NOTHING
"""
DELETE_PENDING_WITHDRAWALS = "DELETE FROM pending_withdrawals WHERE registration_id = ANY($1::text[])"

_PARKED_COLUMNS = """
registration_id, seminar_id, given_kommune_key, kommune_key, given_name, family_name,
participant_email, contact_email, submitted_at, event_id, correlation_id, arrived_at
"""
PARKED_BY_ID = f"""
SELECT {_PARKED_COLUMNS} FROM parked_submissions WHERE registration_id = ANY($1::text[])
ORDER BY arrival_seq
"""
# Each seminar's parked submissions in arrival order, with their rank by registration_id (a new
# seminar's registrations are all parked ones: a cancellation in the same batch withdraws the
# accepted ones in that order).
PARKED_OF_SEMINARS = f"""
SELECT {_PARKED_COLUMNS},
       row_number() OVER (PARTITION BY seminar_id ORDER BY registration_id) AS registration_rank
FROM parked_submissions
WHERE seminar_id = ANY($1::text[])
ORDER BY seminar_id, arrival_seq
"""
# Candidates for the sweep, read before their seminars are locked; read again once they are.
EXPIRED_PARKED = """
SELECT registration_id, seminar_id FROM parked_submissions
WHERE arrived_at <= now() - $1::interval
ORDER BY arrived_at, arrival_seq
LIMIT $2
"""
NOW = "SELECT now()"
NEXT_PARKING_SEQS = "SELECT nextval('parking_order') AS seq FROM generate_series(1, $1)"
PARK_SUBMISSIONS = """
INSERT INTO parked_submissions (
    registration_id, seminar_id, given_kommune_key, kommune_key, given_name, family_name,
    participant_email, contact_email, submitted_at, event_id, correlation_id, arrival_seq
)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::timestamptz[], $10::uuid[], $11::uuid[], $12::bigint[])
"""
UNPARK_SUBMISSIONS = """
DELETE FROM parked_submissions WHERE registration_id = ANY($1::text[]) RETURNING registration_id
"""


class StaleStateError(RuntimeError):
    """The stored state is not what the run was decided against: state and decision disagree."""


class PostgresRegistrationUnitOfWork(PostgresUnitOfWork):
    """`RegistrationUnitOfWork` over one PostgreSQL transaction."""

    async def load_for_registrations(self, events: Sequence[PortalRegistrationData]) -> RegistrationsState:
        conn = self.connection
        registration_ids = sorted({data.registration_id for data in events})
        submissions = [data for data in events if isinstance(data, RegistrationSubmitted)]
        await lock_registration_ids(conn, registration_ids)
        seminar_ids = {data.seminar_id for data in submissions}
        seminar_ids |= await seminars_of_registrations(conn, registration_ids)
        await lock_seminar_ids(conn, seminar_ids)
        seminars = await lock_and_get_seminars(conn, seminar_ids)
        registrations = await get_registrations(conn, registration_ids)
        participant_keys, active = await participants(
            conn,
            [(data.seminar_id, data.participant.email) for data in submissions]
            + [(r.content.seminar_id, r.content.participant_email) for r in registrations.values()],
        )
        pending, erased = await pending_or_erased(conn, registration_ids)
        heads = await waitlist_heads(conn, waitlist_reach(events, registrations, pending, seminars))
        parked = {p.registration_id: p for p in await parked_by_id(conn, registration_ids)}
        return RegistrationsState(
            registrations=registrations,
            seminars=seminars,
            waitlist_heads=heads,
            participant_keys=participant_keys,
            active_participants=active,
            pending_withdrawals=pending,
            parked=parked,
            erased=frozenset(erased),
        )

    async def load_for_seminars(self, events: Sequence[PortalSeminarData]) -> SeminarsState:
        conn = self.connection
        seminar_ids = {data.seminar_id for data in events}
        await lock_seminar_ids(conn, seminar_ids)
        seminars = await lock_and_get_seminars(conn, seminar_ids)
        reach = seminar_reach(events, seminars)
        heads = await waitlist_heads(
            conn, {sid: count for sid, count in reach.waitlist_heads.items() if sid not in reach.cancelled}
        )
        accepted, waiting, order = await rosters(conn, reach.cancelled)
        offered = {data.seminar_id for data in events if isinstance(data, SeminarPublished)}
        parked, parked_order = await parked_of_seminars(conn, offered - set(seminars))
        participant_keys, _ = await participants(
            conn,
            [(p.content.seminar_id, p.content.participant_email) for group in parked.values() for p in group],
        )
        return SeminarsState(
            seminars=seminars,
            waitlist_heads={**heads, **waiting},
            accepted=accepted,
            registration_order={**order, **parked_order},
            parked=parked,
            participant_keys=participant_keys,
        )

    async def load_expired_parking(self, grace: timedelta, limit: int) -> ParkingState:
        conn = self.connection
        candidates = await conn.fetch(EXPIRED_PARKED, grace, limit)
        if not candidates:
            return ParkingState(now=await conn.fetchval(NOW), parked=())
        await lock_seminar_ids(conn, {row["seminar_id"] for row in candidates})
        # Under the locks: those still parked (an offer or a withdrawal may have decided some).
        parked = await parked_by_id(conn, [row["registration_id"] for row in candidates])
        return ParkingState(now=await conn.fetchval(NOW), parked=parked)

    async def record(self, changes: StateChanges) -> None:
        conn = self.connection
        await upsert_seminars(conn, changes.published_seminars)
        # Withdrawals before insertions: a participant who withdrew may register again.
        await change_registrations(conn, changes.changed_registrations)
        await insert_registrations(conn, changes.new_registrations)
        await set_seats(conn, changes.seats)
        await remember_withdrawals(conn, changes.remembered_withdrawals)
        await delete_pending_withdrawals(conn, changes.forgotten_withdrawals)
        await unpark_submissions(conn, changes.unparked_submissions)
        await park_submissions(conn, changes.parked_submissions)


async def lock_registration_ids(conn: Connection, registration_ids: Iterable[str]) -> None:
    ids = list(set(registration_ids))
    if ids:
        await conn.fetchval(LOCK_REGISTRATION_IDS, REGISTRATION_LOCK_SPACE, ids)


async def lock_seminar_ids(conn: Connection, seminar_ids: Iterable[str]) -> None:
    ids = list(set(seminar_ids))
    if ids:
        await conn.fetchval(LOCK_IDS, SEMINAR_LOCK_SPACE, ids)


async def seminars_of_registrations(conn: Connection, registration_ids: Iterable[str]) -> set[str]:
    rows = await conn.fetch(SEMINARS_OF_REGISTRATIONS, list(set(registration_ids)))
    return {row["seminar_id"] for row in rows}


async def lock_and_get_seminars(conn: Connection, seminar_ids: Iterable[str]) -> dict[str, Seminar]:
    ids = sorted(set(seminar_ids))
    if not ids:
        return {}
    await conn.fetch(LOCK_SEMINARS, ids)
    rows = await conn.fetch(GET_SEMINARS, ids)
    return {row["seminar_id"]: _seminar(row) for row in rows}


def _seminar(row: asyncpg.Record) -> Seminar:
    return Seminar(
        seminar_id=row["seminar_id"],
        title=row["title"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        fee_cents=row["fee_cents"],
        cancelled=row["cancelled"],
        location=row["location"],
        course=row["course"],
        seats=SeminarSeats(
            capacity=row["capacity"],
            accepted=row["accepted_count"],
            waitlisted=row["waitlisted_count"],
            kept=row["kept_seats"],
        ),
    )


def _registration(row: asyncpg.Record) -> Registration:
    # An erased registration's personal columns are NULL: empty strings in the domain, which
    # publishes nothing of it (domain.publishes).
    return Registration(
        registration_id=row["registration_id"],
        status=Status(row["status"]),
        content=RegistrationContent(
            kommune_key=row["kommune_key"],
            seminar_id=row["seminar_id"],
            given_name=row["given_name"] or "",
            family_name=row["family_name"] or "",
            participant_email=row["participant_email"] or "",
            contact_email=row["contact_email"] or "",
        ),
        submitted_at=row["submitted_at"],
        erased=row["erased_at"] is not None,
    )


def _parked(row: asyncpg.Record) -> ParkedSubmission:
    return ParkedSubmission(
        registration_id=row["registration_id"],
        given_kommune_key=row["given_kommune_key"],
        content=RegistrationContent(
            kommune_key=row["kommune_key"],
            seminar_id=row["seminar_id"],
            given_name=row["given_name"],
            family_name=row["family_name"],
            participant_email=row["participant_email"],
            contact_email=row["contact_email"],
        ),
        submitted_at=row["submitted_at"],
        event_id=row["event_id"],
        correlation_id=row["correlation_id"],
        arrived_at=row["arrived_at"],
    )


async def parked_by_id(conn: Connection, registration_ids: Iterable[str]) -> list[ParkedSubmission]:
    """The parked submissions among the ids, in arrival order."""
    ids = list(set(registration_ids))
    if not ids:
        return []
    return [_parked(row) for row in await conn.fetch(PARKED_BY_ID, ids)]


async def parked_of_seminars(
    conn: Connection, seminar_ids: Iterable[str]
) -> tuple[dict[str, list[ParkedSubmission]], dict[str, int]]:
    """Per seminar its parked submissions in arrival order; and each one's rank by registration_id."""
    ids = sorted(set(seminar_ids))
    if not ids:
        return {}, {}
    parked: dict[str, list[ParkedSubmission]] = {}
    order: dict[str, int] = {}
    for row in await conn.fetch(PARKED_OF_SEMINARS, ids):
        parked.setdefault(row["seminar_id"], []).append(_parked(row))
        order[row["registration_id"]] = row["registration_rank"]
    return parked, order


async def park_submissions(conn: Connection, parked: Sequence[ParkedSubmission]) -> None:
    """Park in one statement; the arrival order values are handed out in the order given."""
    if not parked:
        return
    # Sorted: rows come in no guaranteed order without an ORDER BY.
    seqs = sorted(row["seq"] for row in await conn.fetch(NEXT_PARKING_SEQS, len(parked)))
    await conn.execute(
        PARK_SUBMISSIONS,
        [p.registration_id for p in parked],
        [p.content.seminar_id for p in parked],
        [p.given_kommune_key for p in parked],
        [p.content.kommune_key for p in parked],
        [p.content.given_name for p in parked],
        [p.content.family_name for p in parked],
        [p.content.participant_email for p in parked],
        [p.content.contact_email for p in parked],
        [p.submitted_at for p in parked],
        [p.event_id for p in parked],
        [p.correlation_id for p in parked],
        seqs,
    )


async def unpark_submissions(conn: Connection, registration_ids: Sequence[str]) -> None:
    """Remove decided parked submissions; refused if one is no longer parked."""
    if not registration_ids:
        return
    rows = await conn.fetch(UNPARK_SUBMISSIONS, list(registration_ids))
    stale = sorted(set(registration_ids) - {row["registration_id"] for row in rows})
    if stale:
        raise StaleStateError(f"submissions no longer parked: {', '.join(stale)}")


async def get_registrations(conn: Connection, registration_ids: Iterable[str]) -> dict[str, Registration]:
    ids = list(set(registration_ids))
    if not ids:
        return {}
    rows = await conn.fetch(GET_REGISTRATIONS, ids)
    return {row["registration_id"]: _registration(row) for row in rows}


async def participants(
    conn: Connection, pairs: Iterable[GivenParticipant]
) -> tuple[dict[GivenParticipant, ParticipantKey], set[ParticipantKey]]:
    """For (seminar_id, email) pairs: each pair's participant key, and the keys that are active.

    The database lowers the emails, as its unique index of active participants does.
    """
    given = sorted(set(pairs))
    if not given:
        return {}, set()
    rows = await conn.fetch(PARTICIPANTS, [p[0] for p in given], [p[1] for p in given])
    keys = {(row["seminar_id"], row["email"]): (row["seminar_id"], row["email_key"]) for row in rows}
    active = {keys[(row["seminar_id"], row["email"])] for row in rows if row["registered"]}
    return keys, active


async def pending_or_erased(conn: Connection, registration_ids: Iterable[str]) -> tuple[set[str], set[str]]:
    """Among the ids: those with a withdrawal remembered, and those erased."""
    ids = list(set(registration_ids))
    if not ids:
        return set(), set()
    rows = await conn.fetch(PENDING_OR_ERASED, ids)
    return (
        {row["registration_id"] for row in rows if not row["erased"]},
        {row["registration_id"] for row in rows if row["erased"]},
    )


async def waitlist_heads(conn: Connection, entries: dict[str, int]) -> dict[str, list[Registration]]:
    wanted = sorted((seminar_id, count) for seminar_id, count in entries.items() if count > 0)
    if not wanted:
        return {}
    rows = await conn.fetch(WAITLIST_HEADS, [w[0] for w in wanted], [w[1] for w in wanted])
    heads: dict[str, list[Registration]] = {}
    for row in rows:
        heads.setdefault(row["seminar_id"], []).append(_registration(row))
    return heads


async def rosters(
    conn: Connection, seminar_ids: Iterable[str]
) -> tuple[dict[str, list[Registration]], dict[str, list[Registration]], dict[str, int]]:
    """Per seminar, its accepted and its waiting registrations in the order a cancellation
    withdraws them; and every one's rank by registration_id within its seminar."""
    ids = sorted(set(seminar_ids))
    if not ids:
        return {}, {}, {}
    accepted: dict[str, list[Registration]] = {sid: [] for sid in ids}
    waiting: dict[str, list[Registration]] = {sid: [] for sid in ids}
    order: dict[str, int] = {}
    for row in await conn.fetch(ROSTERS, ids):
        registration = _registration(row)
        group = accepted if registration.status is Status.ACCEPTED else waiting
        group[row["seminar_id"]].append(registration)
        order[registration.registration_id] = row["registration_rank"]
    return accepted, waiting, order


async def upsert_seminars(conn: Connection, seminars: Sequence[SeminarPublished]) -> None:
    if not seminars:
        return
    await conn.execute(
        UPSERT_SEMINARS,
        [s.seminar_id for s in seminars],
        [s.title for s in seminars],
        [s.starts_on for s in seminars],
        [s.ends_on for s in seminars],
        [s.location for s in seminars],
        [s.fee_cents for s in seminars],
        [s.capacity for s in seminars],
        [s.course for s in seminars],
    )


async def change_registrations(conn: Connection, changes: Sequence[RegistrationChange]) -> None:
    if not changes:
        return
    rows = await conn.fetch(
        CHANGE_REGISTRATIONS,
        [c.registration_id for c in changes],
        [c.status.value for c in changes],
        [c.withdrawal_reason for c in changes],
    )
    stale = sorted({c.registration_id for c in changes} - {row["registration_id"] for row in rows})
    if stale:
        raise StaleStateError(f"registrations no longer active: {', '.join(stale)}")


async def insert_registrations(conn: Connection, registrations: Sequence[NewRegistration]) -> None:
    """Insert in one statement; those that waited take waitlist order values in the order given."""
    if not registrations:
        return
    waited = sum(1 for r in registrations if r.took_waitlist_place)
    seqs: list[int] = []
    if waited:
        # Sorted: rows come in no guaranteed order without an ORDER BY.
        seqs = sorted(row["seq"] for row in await conn.fetch(NEXT_WAITLIST_SEQS, waited))
    next_seq = iter(seqs)
    rows: list[tuple[Any, ...]] = []
    for r in registrations:
        seq = next(next_seq) if r.took_waitlist_place else None
        rows.append(
            (
                r.registration_id,
                r.content.seminar_id,
                r.given_kommune_key,
                r.content.kommune_key,
                r.content.given_name,
                r.content.family_name,
                r.content.participant_email,
                r.content.contact_email,
                r.status.value,
                seq if r.status is Status.WAITLISTED else None,
                r.rejection_reason,
                r.withdrawal_reason,
                r.submitted_at,
            )
        )
    await conn.execute(INSERT_REGISTRATIONS, *(list(column) for column in zip(*rows, strict=True)))


async def set_seats(conn: Connection, changes: Sequence[SeatsChange]) -> None:
    """Write the seminars' new seats; refused if any holds other seats than the run started from.

    A refusal raises, so the caller's transaction fails as a whole.
    """
    if not changes:
        return
    rows = await conn.fetch(
        SET_SEATS,
        [c.seminar_id for c in changes],
        [c.accepted_before for c in changes],
        [c.seats.accepted for c in changes],
        [c.seats.kept for c in changes],
        [c.cancelled for c in changes],
    )
    refused = sorted({c.seminar_id for c in changes} - {row["seminar_id"] for row in rows})
    if refused:
        raise StaleStateError(f"seats changed underneath the run in seminars {', '.join(refused)}")


async def remember_withdrawals(conn: Connection, pending: Sequence[PendingWithdrawal]) -> None:
    if pending:
        await conn.execute(
            REMEMBER_WITHDRAWALS,
            [p.registration_id for p in pending],
            [p.given_kommune_key for p in pending],
            [p.event_id for p in pending],
        )


async def delete_pending_withdrawals(conn: Connection, registration_ids: Sequence[str]) -> None:
    if registration_ids:
        await conn.execute(DELETE_PENDING_WITHDRAWALS, list(registration_ids))


REGISTRATIONS_OF_KOMMUNE = """
SELECT r.registration_id, r.seminar_id, s.starts_on AS seminar_starts_on, r.status,
       coalesce(r.rejection_reason, r.withdrawal_reason) AS reason,
       CASE WHEN r.status = 'waitlisted' THEN (
           SELECT count(*) FROM registrations AS ahead
           WHERE ahead.seminar_id = r.seminar_id AND ahead.status = 'waitlisted'
             AND ahead.waitlist_seq <= r.waitlist_seq) END AS position,
       r.created_at
FROM registrations AS r LEFT JOIN seminars AS s USING (seminar_id)
WHERE r.kommune_key = $1
UNION ALL
-- Submissions waiting for their seminar's offer: the seminar is not known yet.
SELECT registration_id, seminar_id, NULL::date, 'waiting_for_seminar', NULL, NULL, arrived_at
FROM parked_submissions
WHERE kommune_key = $1
ORDER BY created_at, registration_id
"""


async def kommune_registration_rows(conn: Connection, kommune_key: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(REGISTRATIONS_OF_KOMMUNE, kommune_key))


# --- erasure (ADR 0018) ------------------------------------------------------------------------

ERASE_REGISTRATIONS = """
UPDATE registrations
SET given_name = NULL, family_name = NULL, participant_email = NULL, contact_email = NULL,
    erased_at = coalesce(erased_at, now()), updated_at = now()
WHERE registration_id = ANY($1::text[])
  AND (given_name IS NOT NULL OR family_name IS NOT NULL OR participant_email IS NOT NULL
       OR contact_email IS NOT NULL)
RETURNING registration_id
"""
# A parked submission is nothing but personal data waiting for its seminar: it goes.
DELETE_PARKED = (
    "DELETE FROM parked_submissions WHERE registration_id = ANY($1::text[]) RETURNING registration_id"
)
# The participant's registrations, submitted or waiting for their seminar (`lotse erase --email`
# and `lotse person export` resolve an address with it; the operator role reads it).
REGISTRATIONS_OF_PARTICIPANT = """
SELECT registration_id FROM registrations WHERE lower(participant_email) = lower($1)
UNION
SELECT registration_id FROM parked_submissions WHERE lower(participant_email) = lower($1)
ORDER BY registration_id
"""
# The retention schedule: registrations whose seminar ended `days` ago and that changed last
# `days` ago (Europe/Berlin; a case is kept that long after anything last happened to it, a late
# withdrawal or promotion included), those of no known seminar (rejected) by their last change.
DUE_FOR_RETENTION = """
SELECT r.registration_id
FROM registrations r LEFT JOIN seminars s USING (seminar_id)
WHERE r.erased_at IS NULL
  AND coalesce(s.ends_on + $1::integer < (now() AT TIME ZONE 'Europe/Berlin')::date, true)
  AND (r.updated_at AT TIME ZONE 'Europe/Berlin')::date + $1::integer
      <= (now() AT TIME ZONE 'Europe/Berlin')::date
ORDER BY r.registration_id
LIMIT $2
"""


async def erase_registrations(
    conn: Connection, registration_ids: Sequence[str], request: ErasureRequest
) -> dict[str, int | str]:
    """Erase the personal data of these registrations in the caller's transaction; what went, per
    table. Locks as every applier does (registration ids, seminar ids, seminar rows), so that no
    batch decided from the data before publishes it after."""
    ids = sorted(set(registration_ids))
    await lock_registration_ids(conn, ids)
    seminar_ids = await seminars_of_registrations(conn, ids)
    await lock_seminar_ids(conn, seminar_ids)
    await lock_and_get_seminars(conn, seminar_ids)
    registrations = await conn.fetch(ERASE_REGISTRATIONS, ids)
    parked = await conn.fetch(DELETE_PARKED, ids)
    outbox = await strip_outbox(conn, ids)
    newly_erased = await mark_erased(conn, ids, request)
    erased_at = await record_erasure(conn, request, newly_erased)
    return {
        "registrations": len(registrations),
        "parked_submissions": len(parked),
        "outbox": outbox,
        "marked": newly_erased,
        "erased_at": erased_at.isoformat(timespec="seconds"),
    }


async def registrations_of_participant(conn: Connection, email: str) -> list[str]:
    return [row["registration_id"] for row in await conn.fetch(REGISTRATIONS_OF_PARTICIPANT, email)]


async def due_for_retention(conn: Connection, days: int, limit: int) -> list[str]:
    return [row["registration_id"] for row in await conn.fetch(DUE_FOR_RETENTION, days, limit)]
