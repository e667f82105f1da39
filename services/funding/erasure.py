"""Erasure of personal data in funding (ADR 0018): the retention schedule of the participant
identities, and what `lotse person export` reads of a participant's registrations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from services.funding import store
from shared.db import Connection
from shared.erasure import retention_request

SERVICE = "funding"
RETENTION_BATCH = 500


async def retention_round(conn: Connection, days: int, limit: int = RETENTION_BATCH) -> dict[str, int]:
    """Take out the identities of registrations whose seminar and period ended `days` ago."""
    due = await store.due_for_retention(conn, days, limit)
    if not due:
        return {"participant_hashes": 0}
    detail = await store.erase_identities(conn, due, retention_request(SERVICE, days, datetime.now(UTC)))
    return {key: value for key, value in detail.items() if isinstance(value, int)}


EXPORT_FUNDINGS = """
SELECT registration_id, kommune_key, seminar_id, seminar_starts_on, course, status, period_id,
       reason, amount_cents, promoted, participant_hash, decided_at, updated_at
FROM fundings WHERE registration_id = ANY($1::text[])
ORDER BY registration_id
"""
EXPORT_OUTBOX = """
SELECT event_id, event_type, topic, created_at, published_at,
       convert_from(payload, 'UTF8')::jsonb -> 'data' AS data
FROM outbox
WHERE convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' = ANY($1::text[])
ORDER BY id
"""


async def person_export(conn: Connection, registration_ids: Sequence[str]) -> dict[str, Any]:
    """The funding records (decisions, and the pseudonymised identity where one is kept) and the
    stored decision events of these registrations (read-only)."""
    ids = list(registration_ids)
    return {
        "fundings": [dict(row) for row in await conn.fetch(EXPORT_FUNDINGS, ids)],
        "outbox": [dict(row) for row in await conn.fetch(EXPORT_OUTBOX, ids)],
    }
