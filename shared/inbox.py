"""The inbox: ids of processed events, written in the handler's own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared.db import Connection

CLAIM_EVENTS = """
INSERT INTO inbox (event_id, topic)
SELECT unnest($1::uuid[]), $2
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


async def claim_new_events(conn: Connection, topic: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Record the events as processed; returns those seen for the first time (the rest are redeliveries).

    Must run inside the transaction that applies the events, so a rollback forgets the claim too.
    """
    if not event_ids:
        return set()
    rows = await conn.fetch(CLAIM_EVENTS, list(event_ids), topic)
    return {row["event_id"] for row in rows}
