"""Erasure of personal data in notification (ADR 0018): the retention schedule of registrations
and of letters' bytes, and what `lotse person export` reads of a participant's registrations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.notification import store
from shared.db import Connection
from shared.erasure import retention_request

SERVICE = "notification"
RETENTION_BATCH = 500


async def retention_round(
    conn: Connection, personal_data_days: int, letter_days: int, limit: int = RETENTION_BATCH
) -> dict[str, int]:
    """Erase the registrations whose seminar ended `personal_data_days` ago, and drop the bytes of
    letters delivered `letter_days` ago (at most `limit` of each per round)."""
    counts: dict[str, int] = {"registrations": 0}
    due = await store.registrations_due(conn, personal_data_days, limit)
    if due:
        request = retention_request(SERVICE, personal_data_days, datetime.now(UTC))
        detail = await store.erase_registrations(conn, due, request)
        counts = {key: value for key, value in detail.items() if isinstance(value, int)}
    counts["letter_bytes"] = await store.drop_letter_bytes(conn, letter_days, limit)
    counts["erased_letters_left"] = await store.erase_letters_left(conn, limit)
    return counts


EXPORT_REGISTRATIONS = """
SELECT registration_id, kommune_key, contact_email, given_name, family_name, seminar_id,
       seminar_title, seminar_starts_on, seminar_ends_on, fee_cents, course, seminar_location,
       seat_confirmed, updated_at
FROM registrations WHERE registration_id = ANY($1::text[])
ORDER BY registration_id
"""
# The letters as they are held, where they are still held: the facts a letter is composed from
# (ADR 0024), or the bytes as text (a MIME message) of a letter recorded before those.
EXPORT_EMAILS = """
SELECT id, registration_id, template, status, recipient, subject, created_at, sent_at, parked_at,
       last_error, facts, convert_from(message, 'UTF8') AS message
FROM emails WHERE registration_id = ANY($1::text[])
ORDER BY created_at, id
"""
EXPORT_PENDING = """
SELECT event_id, registration_id, envelope -> 'data' AS data, received_at
FROM pending_decisions WHERE registration_id = ANY($1::text[])
ORDER BY received_at
"""
EXPORT_OUTBOX = """
SELECT event_id, event_type, topic, created_at, published_at,
       convert_from(payload, 'UTF8')::jsonb -> 'data' AS data
FROM outbox
WHERE convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' = ANY($1::text[])
ORDER BY id
"""


async def person_export(conn: Connection, registration_ids: Sequence[str]) -> dict[str, Any]:
    """Everything notification holds on these registrations (read-only)."""
    ids = list(registration_ids)
    return {
        "registrations": [dict(row) for row in await conn.fetch(EXPORT_REGISTRATIONS, ids)],
        "letters": [dict(row) for row in await conn.fetch(EXPORT_EMAILS, ids)],
        "pending_decisions": [dict(row) for row in await conn.fetch(EXPORT_PENDING, ids)],
        "outbox": [dict(row) for row in await conn.fetch(EXPORT_OUTBOX, ids)],
    }
