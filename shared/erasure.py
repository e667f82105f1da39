"""What the three services share to erase a registration's personal data (ADR 0018).

Every service records an erasure marker per registration (`erased_registrations`, its own
migration) and the erasure itself (`erasures`: who, why, when, how many; nothing of the person),
strips the personal fields of the registration's rows in its outbox (the shared outbox table),
and runs its retention on a schedule (`schedule_retention`), one instance at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.db import Connection, Pool
from shared.logging import get_logger
from shared.redaction import safe_error
from shared.runtime import ServiceRuntime

log = get_logger(__name__)

Cause = Literal["request", "retention"]
# Who a scheduled erasure is recorded as requested by (not a login: logins are alphanumeric).
RETENTION = "retention"

# The fields of the contract's event data that hold personal data: the participant (names and
# email), the Kommune's contact address, a letter's recipient, and a delivery error (the SMTP
# server's answer may quote the address). Removed from the stored payloads of erased registrations.
PERSONAL_EVENT_FIELDS = ("participant", "contact_email", "to", "error")

ERASED_AMONG = """
SELECT registration_id FROM erased_registrations WHERE registration_id = ANY($1::text[])
"""
MARK_ERASED = """
INSERT INTO erased_registrations (registration_id, command_id, cause)
SELECT id, $2::uuid, $3::text FROM unnest($1::text[]) AS id
ON CONFLICT (registration_id) DO NOTHING
RETURNING registration_id
"""
RECORD_ERASURE = """
INSERT INTO erasures (command_id, requested_by, reason, cause, registrations)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (command_id) DO NOTHING
RETURNING erased_at
"""
# Published rows keep their place in the outbox (the relay's markers name their ids) with the
# personal fields gone; unpublished ones are marked published too: they carry the data of an
# erased registration and must never leave.
STRIP_OUTBOX = """
UPDATE outbox SET
    payload = convert_to(
        ((convert_from(payload, 'UTF8')::jsonb) #- '{data,participant}' #- '{data,contact_email}'
            #- '{data,to}' #- '{data,error}')::text,
        'UTF8'),
    published_at = coalesce(published_at, now())
WHERE convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' = ANY($1::text[])
  AND (convert_from(payload, 'UTF8')::jsonb -> 'data') ?| $2::text[]
RETURNING id
"""
TRY_RETENTION_LOCK = "SELECT pg_try_advisory_xact_lock($1::int, 0)"
# One namespace for every service's retention lock (each service has its own database).
RETENTION_LOCK_SPACE = 0x72657421


@dataclass(frozen=True)
class ErasureRequest:
    """Who asked for an erasure and why: an operator's command, or the retention schedule."""

    command_id: uuid.UUID
    requested_by: str
    reason: str
    cause: Cause


def retention_request(service: str, days: int, now: datetime) -> ErasureRequest:
    """The record of one scheduled round (a fresh id: each round is its own erasure)."""
    return ErasureRequest(
        command_id=uuid.uuid4(),
        requested_by=RETENTION,
        reason=f"{service}: PERSONAL_DATA_RETENTION_DAYS={days} passed ({now.date().isoformat()})",
        cause="retention",
    )


async def erased_among(conn: Connection, registration_ids: Collection[str]) -> set[str]:
    """The registration ids among these that carry an erasure marker."""
    if not registration_ids:
        return set()
    return {row["registration_id"] for row in await conn.fetch(ERASED_AMONG, list(registration_ids))}


async def mark_erased(conn: Connection, registration_ids: Collection[str], request: ErasureRequest) -> int:
    """Record the markers; how many registrations were not erased before."""
    if not registration_ids:
        return 0
    rows = await conn.fetch(MARK_ERASED, sorted(set(registration_ids)), request.command_id, request.cause)
    return len(rows)


async def record_erasure(conn: Connection, request: ErasureRequest, registrations: int) -> datetime:
    """Record the erasure (once per command); when it was carried out (the transaction's time)."""
    erased_at = await conn.fetchval(
        RECORD_ERASURE,
        request.command_id,
        request.requested_by,
        request.reason,
        request.cause,
        registrations,
    )
    if erased_at is None:  # recorded before: the command is claimed once, so only a retry comes here
        erased_at = await conn.fetchval("SELECT now()")
    assert isinstance(erased_at, datetime)
    return erased_at


async def strip_outbox(conn: Connection, registration_ids: Collection[str]) -> int:
    """Remove the personal fields from the outbox rows of these registrations; how many rows."""
    if not registration_ids:
        return 0
    rows = await conn.fetch(STRIP_OUTBOX, list(registration_ids), list(PERSONAL_EVENT_FIELDS))
    return len(rows)


async def try_retention_lock(conn: Connection) -> bool:
    """Within a transaction: whether this instance runs the retention round (one at a time)."""
    return bool(await conn.fetchval(TRY_RETENTION_LOCK, RETENTION_LOCK_SPACE))


RetentionRound = Callable[[Connection], Awaitable[dict[str, int]]]


async def run_retention_round(pool: Pool, service: str, job: RetentionRound) -> dict[str, int] | None:
    """One round in one transaction, if no other instance runs one now (None then); logs counts."""
    async with pool.acquire() as conn, conn.transaction():
        if not await try_retention_lock(conn):
            log.info("retention round skipped: another instance runs it", service=service)
            return None
        counts = await job(conn)
    log.info("retention round", service=service, **counts)
    return counts


def schedule_retention(runtime: ServiceRuntime, interval_seconds: float, job: RetentionRound) -> None:
    """Run `job` every `interval_seconds` from start-up until stop (beside the consumers). A
    failed round is logged (without the error's arguments) and tried again at the next."""

    async def round_safely() -> None:
        try:
            await run_retention_round(runtime.pool, runtime.name, job)
        except Exception as exc:
            log.warning("retention round failed, trying again", error=safe_error(exc))

    runtime.every(interval_seconds, round_safely, name="retention")
