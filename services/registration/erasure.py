"""Erasure of personal data in registration (ADR 0018): on command.erase, and by the retention
schedule; and what `lotse person export` reads of a participant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.registration import store
from shared.db import Connection
from shared.erasure import retention_request

SERVICE = "registration"
RETENTION_BATCH = 500


async def retention_round(conn: Connection, days: int, limit: int = RETENTION_BATCH) -> dict[str, int]:
    """Erase the registrations whose seminar ended `days` ago (at most `limit` per round)."""
    due = await store.due_for_retention(conn, days, limit)
    if not due:
        return {"registrations": 0}
    detail = await store.erase_registrations(conn, due, retention_request(SERVICE, days, datetime.now(UTC)))
    return {key: value for key, value in detail.items() if isinstance(value, int)}


EXPORT_REGISTRATIONS = """
SELECT r.registration_id, r.seminar_id, s.title AS seminar_title, s.starts_on AS seminar_starts_on,
       s.ends_on AS seminar_ends_on, r.kommune_key, r.given_kommune_key, r.given_name, r.family_name,
       r.participant_email, r.contact_email, r.status, r.rejection_reason, r.withdrawal_reason,
       r.submitted_at, r.created_at, r.updated_at
FROM registrations r LEFT JOIN seminars s USING (seminar_id)
WHERE r.registration_id = ANY($1::text[])
ORDER BY r.registration_id
"""
EXPORT_PARKED = """
SELECT registration_id, seminar_id, kommune_key, given_kommune_key, given_name, family_name,
       participant_email, contact_email, submitted_at, arrived_at
FROM parked_submissions WHERE registration_id = ANY($1::text[])
ORDER BY registration_id
"""
# The stored copies of the events published about these registrations (they carry the data too).
EXPORT_OUTBOX = """
SELECT event_id, event_type, topic, created_at, published_at,
       convert_from(payload, 'UTF8')::jsonb -> 'data' AS data
FROM outbox
WHERE convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' = ANY($1::text[])
ORDER BY id
"""


async def person_export(conn: Connection, email: str) -> dict[str, Any]:
    """Everything registration holds on the participant with this address (read-only)."""
    ids = await store.registrations_of_participant(conn, email)
    return {
        "registration_ids": ids,
        "registrations": [dict(row) for row in await conn.fetch(EXPORT_REGISTRATIONS, ids)],
        "parked_submissions": [dict(row) for row in await conn.fetch(EXPORT_PARKED, ids)],
        "outbox": [dict(row) for row in await conn.fetch(EXPORT_OUTBOX, ids)],
    }
