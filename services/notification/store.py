"""All SQL of the notification service, the repository functions around it, and the appliers'
unit of work over PostgreSQL (`PostgresNotificationUnitOfWork`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from services.notification.domain import (
    BatchState,
    Effects,
    NewEmail,
    RegistrationData,
    planned_email_json,
)
from shared.db import Connection, Pool
from shared.erasure import ErasureRequest, mark_erased, record_erasure, strip_outbox
from shared.events import FUNDING_DECISION_EVENTS, Envelope, EventDecoder
from shared.unit_of_work import PostgresUnitOfWork

# Funding and registration consumers serialise on the registration id, so that a decision is
# either seen by the registration's transaction as pending, or sees the registration itself.
# The two-key form keeps these locks apart from the one-key advisory locks of migrations and relay.
_LOCK_NAMESPACE = 0x4E4F54  # "NOT"
LOCK_REGISTRATIONS = """
SELECT pg_advisory_xact_lock($2::int, key)
FROM (SELECT DISTINCT hashtext(id) AS key FROM unnest($1::text[]) AS id ORDER BY key) AS ordered
"""
# The stored registrations among the ids that are not erased, and the ids that carry an erasure
# marker, in one statement (a batch costs the same queries as before erasure existed).
SELECT_REGISTRATIONS_OR_ERASED = """
SELECT registration_id, kommune_key, contact_email, given_name, family_name, seminar_id,
       seminar_title, seminar_starts_on, seminar_ends_on, fee_cents, course, seminar_location,
       seat_confirmed, false AS erased
FROM registrations WHERE registration_id = ANY($1::text[])
  AND NOT EXISTS (
      SELECT 1 FROM erased_registrations e WHERE e.registration_id = registrations.registration_id)
UNION ALL
SELECT registration_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL::date, NULL::date, NULL::bigint,
       NULL, NULL, NULL::boolean, true
FROM erased_registrations WHERE registration_id = ANY($1::text[])
"""
# One row per registration id: ON CONFLICT DO UPDATE may touch a row only once per statement.
UPSERT_REGISTRATIONS = """
INSERT INTO registrations (registration_id, kommune_key, contact_email, given_name, family_name,
                           seminar_id, seminar_title, seminar_starts_on, seminar_ends_on, fee_cents,
                           course, seminar_location, seat_confirmed)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::date[], $9::date[], $10::bigint[], $11::text[], $12::text[],
                     $13::boolean[])
ON CONFLICT (registration_id) DO UPDATE SET
    kommune_key = EXCLUDED.kommune_key, contact_email = EXCLUDED.contact_email,
    given_name = EXCLUDED.given_name, family_name = EXCLUDED.family_name,
    seminar_id = EXCLUDED.seminar_id, seminar_title = EXCLUDED.seminar_title,
    seminar_starts_on = EXCLUDED.seminar_starts_on, seminar_ends_on = EXCLUDED.seminar_ends_on,
    fee_cents = EXCLUDED.fee_cents, course = EXCLUDED.course,
    seminar_location = EXCLUDED.seminar_location, seat_confirmed = EXCLUDED.seat_confirmed,
    updated_at = now()
"""
INSERT_PENDING_DECISIONS = """
INSERT INTO pending_decisions (event_id, registration_id, envelope)
SELECT event_id, registration_id, envelope::jsonb
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS decision (event_id, registration_id, envelope)
ON CONFLICT (event_id) DO NOTHING
"""
SELECT_PENDING_DECISIONS_OF = """
SELECT envelope::text AS envelope FROM pending_decisions WHERE registration_id = ANY($1::text[])
ORDER BY received_at
"""
DELETE_PENDING_DECISIONS = "DELETE FROM pending_decisions WHERE event_id = ANY($1::uuid[])"
# Committed new emails wake the senders that listen on EMAILS_CHANNEL (a notification is delivered
# at commit, one per transaction however many rows); the poll interval is their fallback. The
# notification is part of the insert, so recording a batch's emails stays one statement; the
# scalar subquery runs once, and only when a row was inserted.
EMAILS_CHANNEL = "emails_due"
INSERT_EMAILS = """
WITH inserted AS (
    INSERT INTO emails (id, event_id, template, registration_id, kommune_key, recipient, subject,
                        facts, correlation_id)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::json[], $9::uuid[])
    ON CONFLICT (event_id, template) DO NOTHING
    RETURNING id
)
SELECT id FROM inserted WHERE (SELECT count(*) FROM (SELECT pg_notify('emails_due', '')) AS notified) > 0
"""
# A claim is a lease: the row is hidden from other senders until the lease ends, so no
# transaction stays open during SMTP; a sender that dies mid-way leaves it to the next one. A
# sender leaves out the emails it is still delivering ($3), should their lease have run out.
CLAIM_DUE = """
UPDATE emails SET next_attempt_at = now() + make_interval(secs => $2), claim_token = $4
WHERE id IN (
    SELECT id FROM emails
    WHERE status = 'pending' AND next_attempt_at <= now() AND NOT (id = ANY($3::uuid[]))
      AND (message IS NOT NULL OR facts IS NOT NULL)
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, registration_id, kommune_key, template, recipient, message, facts, correlation_id,
          attempts, resends, claim_token
"""
# A live sender's renewal: only rows still pending under its own claim (another sender that took
# an email over after a lapsed lease keeps it).
RENEW_LEASES = """
UPDATE emails SET next_attempt_at = now() + make_interval(secs => $3)
FROM unnest($1::uuid[], $2::uuid[]) AS claimed (id, claim_token)
WHERE emails.id = claimed.id AND emails.status = 'pending' AND emails.claim_token = claimed.claim_token
"""
MARK_SENT = """
UPDATE emails SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL
WHERE id = ANY($1::uuid[]) AND status = 'pending'
RETURNING id
"""
MARK_PARKED = """
UPDATE emails SET status = 'parked', parked_at = now(), attempts = emails.attempts + 1,
                  last_error = failed.error
FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS failed (id, error, claim_token)
WHERE emails.id = failed.id AND emails.status = 'pending' AND emails.claim_token = failed.claim_token
RETURNING emails.id
"""
SCHEDULE_RETRY = """
UPDATE emails SET attempts = emails.attempts + 1, last_error = failed.error,
                  next_attempt_at = now() + make_interval(secs => failed.delay)
FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::uuid[]) AS failed (id, error, delay, claim_token)
WHERE emails.id = failed.id AND emails.status = 'pending' AND emails.claim_token = failed.claim_token
"""
# Claimed, never tried: due again at once, its attempts unchanged.
RELEASE_CLAIMED = """
UPDATE emails SET next_attempt_at = now()
FROM unnest($1::uuid[], $2::uuid[]) AS claimed (id, claim_token)
WHERE emails.id = claimed.id AND emails.status = 'pending' AND emails.claim_token = claimed.claim_token
"""
RESEND_PARKED = """
UPDATE emails SET status = 'pending', attempts = 0, resends = resends + 1, parked_at = NULL,
                  next_attempt_at = now()
WHERE id = $1 AND status = 'parked' AND (message IS NOT NULL OR facts IS NOT NULL)
"""
# By hand (`lotse mail park`): only a pending email. A sender delivering it at this moment finds
# it no longer pending and records nothing (MARK_SENT, MARK_PARKED).
PARK_PENDING = """
UPDATE emails SET status = 'parked', parked_at = now(), last_error = $2
WHERE id = $1 AND status = 'pending'
RETURNING id, registration_id, kommune_key, template, recipient, correlation_id, resends
"""
SELECT_WAITING_DECISIONS = """
SELECT event_id, registration_id, envelope->>'event_type' AS event_type, received_at
FROM pending_decisions ORDER BY received_at LIMIT $1
"""
COUNT_BY_STATUS = "SELECT status, count(*) AS n FROM emails GROUP BY status"
SELECT_EMAIL = """
SELECT id, event_id, template, registration_id, kommune_key, recipient, subject, status, attempts,
       resends, next_attempt_at, last_error, created_at, sent_at, parked_at
FROM emails WHERE id = $1
"""
SELECT_PARKED = """
SELECT id, event_id, template, registration_id, kommune_key, recipient, subject, status, attempts,
       resends, next_attempt_at, last_error, created_at, sent_at, parked_at
FROM emails WHERE status = 'parked' ORDER BY parked_at LIMIT $1
"""


@dataclass(frozen=True)
class ClaimedEmail:
    id: uuid.UUID
    registration_id: str
    kommune_key: str
    template: str
    recipient: str
    # What is sent: the facts the message is composed from (ADR 0024), or, for a letter recorded
    # before that, its bytes.
    message: bytes | None
    facts: str | None
    correlation_id: uuid.UUID
    attempts: int  # failed attempts so far
    resends: int
    claim_token: uuid.UUID  # the claim that holds the lease; failures are recorded under it only


async def lock_registrations(conn: Connection, registration_ids: Sequence[str]) -> None:
    if registration_ids:
        await conn.execute(LOCK_REGISTRATIONS, list(registration_ids), _LOCK_NAMESPACE)


async def registrations_and_erased(
    conn: Connection, registration_ids: Collection[str]
) -> tuple[dict[str, RegistrationData], frozenset[str]]:
    """The stored registrations among these ids that are not erased, by id; and the erased ids."""
    if not registration_ids:
        return {}, frozenset()
    rows = await conn.fetch(SELECT_REGISTRATIONS_OR_ERASED, list(registration_ids))
    stored = {
        row["registration_id"]: RegistrationData(**{k: v for k, v in dict(row).items() if k != "erased"})
        for row in rows
        if not row["erased"]
    }
    return stored, frozenset(row["registration_id"] for row in rows if row["erased"])


async def save_registrations(conn: Connection, registrations: Collection[RegistrationData]) -> None:
    """Insert or replace these registrations; each id at most once."""
    if not registrations:
        return
    await conn.execute(
        UPSERT_REGISTRATIONS,
        [r.registration_id for r in registrations],
        [r.kommune_key for r in registrations],
        [r.contact_email for r in registrations],
        [r.given_name for r in registrations],
        [r.family_name for r in registrations],
        [r.seminar_id for r in registrations],
        [r.seminar_title for r in registrations],
        [r.seminar_starts_on for r in registrations],
        [r.seminar_ends_on for r in registrations],
        [r.fee_cents for r in registrations],
        [r.course for r in registrations],
        [r.seminar_location for r in registrations],
        [r.seat_confirmed for r in registrations],
    )


_PENDING_DECISIONS = EventDecoder("pending funding decision", FUNDING_DECISION_EVENTS)


async def keep_pending(conn: Connection, decisions: Sequence[Envelope[Any]]) -> None:
    """Keep these funding decisions until their registrations are known; each event at most once."""
    if decisions:
        await conn.execute(
            INSERT_PENDING_DECISIONS,
            [d.event_id for d in decisions],
            [d.data.registration_id for d in decisions],
            [d.model_dump_json() for d in decisions],
        )


async def pending_decisions_of(conn: Connection, registration_ids: Collection[str]) -> list[Envelope[Any]]:
    """The funding decisions waiting for these registrations, in arrival order."""
    if not registration_ids:
        return []
    rows = await conn.fetch(SELECT_PENDING_DECISIONS_OF, list(registration_ids))
    return [_PENDING_DECISIONS.decode(row["envelope"].encode()) for row in rows]


async def forget_pending(conn: Connection, decisions: Sequence[Envelope[Any]]) -> None:
    """These decisions wait no longer: their emails are recorded in the same transaction."""
    if decisions:
        await conn.execute(DELETE_PENDING_DECISIONS, [d.event_id for d in decisions])


async def record_emails(conn: Connection, emails: Sequence[NewEmail]) -> set[uuid.UUID]:
    """Record emails to send, each (event, template) at most once; returns the ids new here (the
    others were recorded before)."""
    if not emails:
        return set()
    rows = await conn.fetch(
        INSERT_EMAILS,
        [e.id for e in emails],
        [e.event_id for e in emails],
        [e.template for e in emails],
        [e.registration_id for e in emails],
        [e.kommune_key for e in emails],
        [e.recipient for e in emails],
        [e.subject for e in emails],
        [planned_email_json(e.planned) for e in emails],
        [e.correlation_id for e in emails],
    )
    return {row["id"] for row in rows}


async def claim_due(
    pool: Pool, limit: int, lease_seconds: float, exclude: Collection[uuid.UUID] = ()
) -> list[ClaimedEmail]:
    """Lease up to `limit` due emails, except those in `exclude` (the caller's own in flight),
    under a new claim token. One statement, so its own transaction: an explicit one added a
    BEGIN and a COMMIT, two round trips, to every claim."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(CLAIM_DUE, limit, lease_seconds, list(exclude), uuid.uuid4())
    return [ClaimedEmail(**dict(row)) for row in rows]


async def renew_leases(pool: Pool, emails: Collection[ClaimedEmail], lease_seconds: float) -> None:
    """Extend the leases of emails still being delivered or recorded under their claims."""
    if not emails:
        return
    async with pool.acquire() as conn:
        await conn.execute(
            RENEW_LEASES, [e.id for e in emails], [e.claim_token for e in emails], lease_seconds
        )


@dataclass(frozen=True)
class ScheduledRetry:
    email: ClaimedEmail
    error: str
    delay_seconds: float


async def mark_all_sent(conn: Connection, email_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Mark these emails sent; returns those that were still pending (the others were recorded)."""
    if not email_ids:
        return set()
    return {row["id"] for row in await conn.fetch(MARK_SENT, list(email_ids))}


async def park_all(conn: Connection, failed: Sequence[tuple[ClaimedEmail, str]]) -> set[uuid.UUID]:
    """Park these (email, error) that are still pending under their claim; returns those parked."""
    if not failed:
        return set()
    rows = await conn.fetch(
        MARK_PARKED,
        [email.id for email, _ in failed],
        [error for _, error in failed],
        [email.claim_token for email, _ in failed],
    )
    return {row["id"] for row in rows}


async def schedule_retries(conn: Connection, retries: Sequence[ScheduledRetry]) -> None:
    if retries:
        await conn.execute(
            SCHEDULE_RETRY,
            [r.email.id for r in retries],
            [r.error for r in retries],
            [r.delay_seconds for r in retries],
            [r.email.claim_token for r in retries],
        )


async def release(conn: Connection, emails: Sequence[ClaimedEmail]) -> None:
    """Hand claimed emails back untried, due again at once, if their claim still holds them."""
    if emails:
        await conn.execute(RELEASE_CLAIMED, [e.id for e in emails], [e.claim_token for e in emails])


async def resend_parked(conn: Connection, email_id: uuid.UUID) -> bool:
    return bool(await conn.execute(RESEND_PARKED, email_id) == "UPDATE 1")


@dataclass(frozen=True)
class ParkedEmail:
    id: uuid.UUID
    registration_id: str
    kommune_key: str
    template: str
    recipient: str
    correlation_id: uuid.UUID
    resends: int


async def park_pending(conn: Connection, email_id: uuid.UUID, error: str) -> ParkedEmail | None:
    row = await conn.fetchrow(PARK_PENDING, email_id, error)
    return None if row is None else ParkedEmail(**dict(row))


async def count_emails_by_status(conn: Connection) -> dict[str, int]:
    counts = {"pending": 0, "sent": 0, "parked": 0}
    counts.update({row["status"]: row["n"] for row in await conn.fetch(COUNT_BY_STATUS)})
    return counts


async def email_delivery_state(conn: Connection, email_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SELECT_EMAIL, email_id)
    return dict(row) if row is not None else None


async def parked_emails(conn: Connection, limit: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(SELECT_PARKED, limit)]


async def oldest_pending_decisions(conn: Connection, limit: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(SELECT_WAITING_DECISIONS, limit)]


class PostgresNotificationUnitOfWork(PostgresUnitOfWork):
    """The appliers' unit of work: one transaction on a pooled connection."""

    async def lock_and_load(
        self, registration_ids: Sequence[str], *, with_pending_decisions: bool
    ) -> BatchState:
        conn = self.connection
        await lock_registrations(conn, registration_ids)
        registrations, erased = await registrations_and_erased(conn, registration_ids)
        return BatchState(
            registrations=registrations,
            pending_decisions=(
                await pending_decisions_of(conn, registration_ids) if with_pending_decisions else ()
            ),
            erased=erased,
        )

    async def record(self, effects: Effects) -> set[uuid.UUID]:
        conn = self.connection
        await save_registrations(conn, effects.registrations)
        await forget_pending(conn, effects.released)
        await keep_pending(conn, effects.keep_pending)
        return await record_emails(conn, effects.emails)


# --- erasure (ADR 0018) ------------------------------------------------------------------------

ERASE_REGISTRATIONS = """
UPDATE registrations SET contact_email = NULL, given_name = NULL, family_name = NULL, updated_at = now()
WHERE registration_id = ANY($1::text[])
  AND (contact_email IS NOT NULL OR given_name IS NOT NULL OR family_name IS NOT NULL)
RETURNING registration_id
"""
# Decisions waiting for an erased registration would only ever write a letter with its data.
DELETE_PENDING_OF = "DELETE FROM pending_decisions WHERE registration_id = ANY($1::text[]) RETURNING event_id"
# The letters: recipient, subject, bytes or facts and the SMTP server's last answer go; the
# template, the status and the days stay. A letter not sent yet is parked for good (nothing left
# to send; a resend refuses an email with neither bytes nor facts).
ERASE_LETTERS = """
UPDATE emails
SET recipient = NULL, subject = NULL, message = NULL, facts = NULL, last_error = NULL,
    status = CASE WHEN status = 'pending' THEN 'parked' ELSE status END,
    parked_at = CASE WHEN status = 'pending' THEN now() ELSE parked_at END
WHERE registration_id = ANY($1::text[])
  AND (recipient IS NOT NULL OR subject IS NOT NULL OR message IS NOT NULL OR facts IS NOT NULL
       OR last_error IS NOT NULL)
RETURNING status
"""
EMAIL_ERASED = """
SELECT EXISTS (
    SELECT 1 FROM emails m JOIN erased_registrations e USING (registration_id) WHERE m.id = $1
) OR EXISTS (SELECT 1 FROM emails WHERE id = $1 AND message IS NULL AND facts IS NULL)
"""
# The retention schedule: registrations whose seminar ended `days` ago and that changed last `days`
# ago (Europe/Berlin; those without seminar dates, known only from a withdrawal, by their last
# change), and never while one of their letters waits to be sent: the Kommune is told first.
REGISTRATIONS_DUE = """
SELECT r.registration_id FROM registrations r
WHERE coalesce(r.seminar_ends_on + $1::integer < (now() AT TIME ZONE 'Europe/Berlin')::date, true)
  AND (r.updated_at AT TIME ZONE 'Europe/Berlin')::date + $1::integer
      <= (now() AT TIME ZONE 'Europe/Berlin')::date
  AND NOT EXISTS (SELECT 1 FROM erased_registrations e WHERE e.registration_id = r.registration_id)
  AND NOT EXISTS (
      SELECT 1 FROM emails m WHERE m.registration_id = r.registration_id AND m.status = 'pending'
  )
ORDER BY r.registration_id
LIMIT $2
"""
# A letter's bytes or facts `days` after its delivery.
DROP_LETTER_BYTES = """
UPDATE emails SET message = NULL, facts = NULL
WHERE id IN (
    SELECT id FROM emails
    WHERE status = 'sent' AND (message IS NOT NULL OR facts IS NOT NULL)
      AND sent_at + make_interval(days => $1) <= now()
    ORDER BY sent_at
    LIMIT $2
)
RETURNING id
"""


async def erase_registrations(
    conn: Connection, registration_ids: Sequence[str], request: ErasureRequest
) -> dict[str, int | str]:
    """In the caller's transaction, under the registration locks every applier takes."""
    ids = sorted(set(registration_ids))
    await lock_registrations(conn, ids)
    registrations = await conn.fetch(ERASE_REGISTRATIONS, ids)
    pending = await conn.fetch(DELETE_PENDING_OF, ids)
    letters = await conn.fetch(ERASE_LETTERS, ids)
    outbox = await strip_outbox(conn, ids)
    newly_erased = await mark_erased(conn, ids, request)
    erased_at = await record_erasure(conn, request, newly_erased)
    return {
        "registrations": len(registrations),
        "pending_decisions": len(pending),
        "letters": len(letters),
        "outbox": outbox,
        "marked": newly_erased,
        "erased_at": erased_at.isoformat(timespec="seconds"),
    }


async def email_erased(conn: Connection, email_id: uuid.UUID) -> bool:
    """Whether the email belongs to an erased registration or its bytes and facts are gone."""
    return bool(await conn.fetchval(EMAIL_ERASED, email_id))


# Letters of recently erased registrations that still hold data: an instance of the version
# before ADR 0024 erases `message` only, so a letter a new consumer recorded during a rolling
# deploy could keep its facts. The retention round erases them as the erasure would have.
ERASED_WITH_LETTER_DATA = """
SELECT DISTINCT e.registration_id FROM erased_registrations e JOIN emails m USING (registration_id)
WHERE e.erased_at > now() - make_interval(days => 30)
  AND (m.recipient IS NOT NULL OR m.subject IS NOT NULL OR m.message IS NOT NULL OR m.facts IS NOT NULL
       OR m.last_error IS NOT NULL)
ORDER BY e.registration_id
LIMIT $1
"""


async def erase_letters_left(conn: Connection, limit: int) -> int:
    """Erase what letters of erased registrations still hold (ERASED_WITH_LETTER_DATA)."""
    ids = [row["registration_id"] for row in await conn.fetch(ERASED_WITH_LETTER_DATA, limit)]
    if not ids:
        return 0
    await lock_registrations(conn, ids)
    return len(await conn.fetch(ERASE_LETTERS, ids))


async def registrations_due(conn: Connection, days: int, limit: int) -> list[str]:
    return [row["registration_id"] for row in await conn.fetch(REGISTRATIONS_DUE, days, limit)]


async def drop_letter_bytes(conn: Connection, days: int, limit: int) -> int:
    return len(await conn.fetch(DROP_LETTER_BYTES, days, limit))
