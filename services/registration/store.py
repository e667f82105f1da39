"""The registration service's repository: plain SQL over asyncpg, in the caller's transaction.

Lock order, the same in every transaction of every instance (no deadlocks between instances):
first the registration ids of a batch (advisory locks, in hash order), then the seminar rows (in
seminar_id order). The seminar row lock serialises every change of a seminar's seats; the
registration lock serialises a withdrawal with a submission of the same id that arrives on
another partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg

from services.registration.domain import (
    ParticipantKey,
    RegistrationContent,
    SeminarSeats,
    SeminarView,
    Status,
)
from shared.events import RejectionReason, SeminarPublished, WithdrawalReason

# An arbitrary namespace for this service's advisory locks on registration ids.
REGISTRATION_LOCK_SPACE = 0x72656721

LOCK_REGISTRATION_IDS = """
SELECT count(pg_advisory_xact_lock($1::int, key_hash))
FROM (SELECT DISTINCT hashtext(id) AS key_hash FROM unnest($2::text[]) AS id ORDER BY key_hash) AS keys
"""
SEMINARS_OF_REGISTRATIONS = """
SELECT DISTINCT seminar_id FROM registrations WHERE registration_id = ANY($1::text[])
"""
LOCK_SEMINARS = """
SELECT seminar_id FROM seminars WHERE seminar_id = ANY($1::text[]) ORDER BY seminar_id FOR UPDATE
"""
# Locks the row again (a no-op after `lock_seminars`) in case the seminar appeared after `lock`.
GET_SEMINAR = """
SELECT seminar_id, title, starts_on, ends_on, fee_cents, capacity, accepted_count, cancelled,
       (SELECT count(*) FROM registrations r
        WHERE r.seminar_id = s.seminar_id AND r.status = 'waitlisted') AS waitlisted_count
FROM seminars s
WHERE seminar_id = $1
FOR UPDATE OF s
"""
# The same for every seminar of a run of submissions, in lock order.
GET_SEMINARS = """
SELECT seminar_id, title, starts_on, ends_on, fee_cents, capacity, accepted_count, cancelled,
       (SELECT count(*) FROM registrations r
        WHERE r.seminar_id = s.seminar_id AND r.status = 'waitlisted') AS waitlisted_count
FROM seminars s
WHERE seminar_id = ANY($1::text[])
ORDER BY seminar_id
FOR UPDATE OF s
"""
UPSERT_SEMINAR = """
INSERT INTO seminars (seminar_id, title, starts_on, ends_on, location, fee_cents, capacity)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (seminar_id) DO UPDATE SET
    title = EXCLUDED.title,
    starts_on = EXCLUDED.starts_on,
    ends_on = EXCLUDED.ends_on,
    location = EXCLUDED.location,
    fee_cents = EXCLUDED.fee_cents,
    capacity = EXCLUDED.capacity,
    kept_seats = CASE WHEN seminars.accepted_count > EXCLUDED.capacity
                      THEN seminars.accepted_count ELSE 0 END,
    updated_at = now()
"""
CANCEL_SEMINAR = """
UPDATE seminars SET cancelled = true, accepted_count = 0, kept_seats = 0, updated_at = now()
WHERE seminar_id = $1
"""
# Conditional: a seat is taken only while one is free, whatever the caller believes.
TAKE_SEAT = """
UPDATE seminars SET accepted_count = accepted_count + 1, updated_at = now()
WHERE seminar_id = $1 AND accepted_count < capacity AND NOT cancelled
RETURNING accepted_count
"""
# A run's seats, by seminar: taken only while enough are free, whatever the caller believes.
TAKE_SEATS = """
UPDATE seminars AS s SET accepted_count = s.accepted_count + taken.seats, updated_at = now()
FROM unnest($1::text[], $2::integer[]) AS taken (seminar_id, seats)
WHERE s.seminar_id = taken.seminar_id AND s.accepted_count + taken.seats <= s.capacity AND NOT s.cancelled
RETURNING s.seminar_id
"""
FREE_SEAT = """
UPDATE seminars
SET accepted_count = accepted_count - 1, kept_seats = LEAST(kept_seats, accepted_count - 1),
    updated_at = now()
WHERE seminar_id = $1
"""
_REGISTRATION_COLUMNS = """
registration_id, seminar_id, kommune_key, given_name, family_name, participant_email,
contact_email, status
"""
GET_REGISTRATION = f"SELECT {_REGISTRATION_COLUMNS} FROM registrations WHERE registration_id = $1"
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
# Values for a run's waitlist entries; the caller hands them out in arrival order.
NEXT_WAITLIST_SEQS = "SELECT nextval('waitlist_order') AS seq FROM generate_series(1, $1)"
INSERT_REGISTRATIONS = """
INSERT INTO registrations (
    registration_id, seminar_id, given_kommune_key, kommune_key, given_name, family_name,
    participant_email, contact_email, status, waitlist_seq, rejection_reason
)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[])
"""
WAITLIST_HEAD = f"""
SELECT {_REGISTRATION_COLUMNS} FROM registrations
WHERE seminar_id = $1 AND status = 'waitlisted'
ORDER BY waitlist_seq
LIMIT $2
"""
PROMOTE = """
UPDATE registrations SET status = 'accepted', waitlist_seq = NULL, updated_at = now()
WHERE registration_id = $1 AND status = 'waitlisted'
"""
WITHDRAW = """
UPDATE registrations
SET status = 'withdrawn', waitlist_seq = NULL, withdrawal_reason = $2, updated_at = now()
WHERE registration_id = $1 AND status IN ('accepted', 'waitlisted')
"""
ACTIVE_REGISTRATIONS_OF_SEMINAR = f"""
SELECT {_REGISTRATION_COLUMNS} FROM registrations
WHERE seminar_id = $1 AND status IN ('accepted', 'waitlisted')
ORDER BY status, waitlist_seq NULLS FIRST, registration_id
"""
REMEMBER_WITHDRAWAL = """
INSERT INTO pending_withdrawals (registration_id, given_kommune_key, event_id)
VALUES ($1, $2, $3)
ON CONFLICT (registration_id) DO NOTHING
"""
PENDING_WITHDRAWALS = (
    "SELECT registration_id FROM pending_withdrawals WHERE registration_id = ANY($1::text[])"
)
DELETE_PENDING_WITHDRAWALS = "DELETE FROM pending_withdrawals WHERE registration_id = ANY($1::text[])"


class SeatUnavailableError(RuntimeError):
    """The database refused a seat the domain handed out: state and decision disagree."""


@dataclass(frozen=True)
class Seminar:
    seminar_id: str
    title: str
    starts_on: date
    ends_on: date
    fee_cents: int
    cancelled: bool
    seats: SeminarSeats

    @property
    def view(self) -> SeminarView:
        return SeminarView(cancelled=self.cancelled, seats=self.seats)


@dataclass(frozen=True)
class Registration:
    registration_id: str
    status: Status
    content: RegistrationContent


@dataclass(frozen=True)
class NewRegistration:
    """A stored submission: placed, or rejected for a reason that is recorded."""

    registration_id: str
    given_kommune_key: str
    content: RegistrationContent
    status: Status
    rejection_reason: RejectionReason | None


async def lock_registration_ids(conn: asyncpg.Connection, registration_ids: Iterable[str]) -> None:
    ids = list(set(registration_ids))
    if ids:
        await conn.fetchval(LOCK_REGISTRATION_IDS, REGISTRATION_LOCK_SPACE, ids)


async def seminars_of_registrations(conn: asyncpg.Connection, registration_ids: Iterable[str]) -> set[str]:
    rows = await conn.fetch(SEMINARS_OF_REGISTRATIONS, list(set(registration_ids)))
    return {row["seminar_id"] for row in rows}


async def lock_seminars(conn: asyncpg.Connection, seminar_ids: Iterable[str]) -> None:
    ids = sorted(set(seminar_ids))
    if ids:
        await conn.fetch(LOCK_SEMINARS, ids)


async def get_seminar(conn: asyncpg.Connection, seminar_id: str) -> Seminar | None:
    row = await conn.fetchrow(GET_SEMINAR, seminar_id)
    return None if row is None else _seminar(row)


async def get_seminars(conn: asyncpg.Connection, seminar_ids: Iterable[str]) -> dict[str, Seminar]:
    rows = await conn.fetch(GET_SEMINARS, sorted(set(seminar_ids)))
    return {row["seminar_id"]: _seminar(row) for row in rows}


def _seminar(row: asyncpg.Record) -> Seminar:
    return Seminar(
        seminar_id=row["seminar_id"],
        title=row["title"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        fee_cents=row["fee_cents"],
        cancelled=row["cancelled"],
        seats=SeminarSeats(
            capacity=row["capacity"], accepted=row["accepted_count"], waitlisted=row["waitlisted_count"]
        ),
    )


async def save_seminar(conn: asyncpg.Connection, seminar: SeminarPublished) -> None:
    await conn.execute(
        UPSERT_SEMINAR,
        seminar.seminar_id,
        seminar.title,
        seminar.starts_on,
        seminar.ends_on,
        seminar.location,
        seminar.fee_cents,
        seminar.capacity,
    )


async def cancel_seminar(conn: asyncpg.Connection, seminar_id: str) -> None:
    await conn.execute(CANCEL_SEMINAR, seminar_id)


async def take_seat(conn: asyncpg.Connection, seminar_id: str) -> None:
    if await conn.fetchval(TAKE_SEAT, seminar_id) is None:
        raise SeatUnavailableError(f"no free seat in seminar {seminar_id}")


async def take_seats(conn: asyncpg.Connection, seats: dict[str, int]) -> None:
    """Take `seats[seminar_id]` more seats of each seminar; refused if any has fewer free.

    A refusal raises, so the caller's transaction fails as a whole.
    """
    taken = {seminar_id: count for seminar_id, count in seats.items() if count > 0}
    if not taken:
        return
    updated = await conn.fetch(TAKE_SEATS, list(taken), list(taken.values()))
    refused = sorted(set(taken) - {row["seminar_id"] for row in updated})
    if refused:
        raise SeatUnavailableError(f"not enough free seats in seminars {', '.join(refused)}")


async def free_seat(conn: asyncpg.Connection, seminar_id: str) -> None:
    await conn.execute(FREE_SEAT, seminar_id)


def _registration(row: asyncpg.Record) -> Registration:
    return Registration(
        registration_id=row["registration_id"],
        status=Status(row["status"]),
        content=RegistrationContent(
            kommune_key=row["kommune_key"],
            seminar_id=row["seminar_id"],
            given_name=row["given_name"],
            family_name=row["family_name"],
            participant_email=row["participant_email"],
            contact_email=row["contact_email"],
        ),
    )


async def get_registration(conn: asyncpg.Connection, registration_id: str) -> Registration | None:
    row = await conn.fetchrow(GET_REGISTRATION, registration_id)
    return None if row is None else _registration(row)


async def get_registrations(
    conn: asyncpg.Connection, registration_ids: Iterable[str]
) -> dict[str, Registration]:
    rows = await conn.fetch(GET_REGISTRATIONS, list(set(registration_ids)))
    return {row["registration_id"]: _registration(row) for row in rows}


async def participants(
    conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]
) -> tuple[dict[tuple[str, str], ParticipantKey], set[ParticipantKey]]:
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


async def insert_registrations(conn: asyncpg.Connection, registrations: Sequence[NewRegistration]) -> None:
    """Insert in one statement; the waitlisted ones take waitlist places in the order given."""
    if not registrations:
        return
    waiting = sum(1 for r in registrations if r.status is Status.WAITLISTED)
    seqs: Iterator[int] = iter([])
    if waiting:
        # Sorted: rows come in no guaranteed order without an ORDER BY.
        seqs = iter(sorted(row["seq"] for row in await conn.fetch(NEXT_WAITLIST_SEQS, waiting)))
    rows = [
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
            next(seqs) if r.status is Status.WAITLISTED else None,
            r.rejection_reason,
        )
        for r in registrations
    ]
    await conn.execute(INSERT_REGISTRATIONS, *(list(column) for column in zip(*rows, strict=True)))


async def waitlist_head(conn: asyncpg.Connection, seminar_id: str, count: int) -> list[Registration]:
    if count <= 0:
        return []
    return [_registration(row) for row in await conn.fetch(WAITLIST_HEAD, seminar_id, count)]


async def promote(conn: asyncpg.Connection, registration: Registration) -> None:
    await take_seat(conn, registration.content.seminar_id)
    await conn.execute(PROMOTE, registration.registration_id)


async def withdraw(conn: asyncpg.Connection, registration: Registration, reason: WithdrawalReason) -> None:
    await conn.execute(WITHDRAW, registration.registration_id, reason)


async def active_registrations(conn: asyncpg.Connection, seminar_id: str) -> Sequence[Registration]:
    return [_registration(row) for row in await conn.fetch(ACTIVE_REGISTRATIONS_OF_SEMINAR, seminar_id)]


async def remember_withdrawal(
    conn: asyncpg.Connection, registration_id: str, given_kommune_key: str, event_id: object
) -> None:
    await conn.execute(REMEMBER_WITHDRAWAL, registration_id, given_kommune_key, event_id)


async def pending_withdrawals(conn: asyncpg.Connection, registration_ids: Iterable[str]) -> set[str]:
    rows = await conn.fetch(PENDING_WITHDRAWALS, list(set(registration_ids)))
    return {row["registration_id"] for row in rows}


async def delete_pending_withdrawals(conn: asyncpg.Connection, registration_ids: Sequence[str]) -> None:
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
ORDER BY r.created_at, r.registration_id
"""


async def registrations_of_kommune(conn: asyncpg.Connection, kommune_key: str) -> Sequence[asyncpg.Record]:
    rows: Sequence[asyncpg.Record] = await conn.fetch(REGISTRATIONS_OF_KOMMUNE, kommune_key)
    return rows
