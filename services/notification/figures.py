"""The undelivered emails by state for /metrics (ADR 0015), read every 15 s (`runtime.every`)."""

from __future__ import annotations

from collections import Counter

from shared.db import Pool
from shared.metrics import email_state, record_emails

UNDELIVERED = """
SELECT status, attempts, count(*)::bigint AS emails
FROM emails
WHERE status <> 'sent'
GROUP BY status, attempts
"""


async def sample_emails(pool: Pool) -> None:
    counts: Counter[str] = Counter()
    async with pool.acquire() as conn:
        for row in await conn.fetch(UNDELIVERED):
            state = email_state(row["status"], row["attempts"])
            if state is not None:
                counts[state] += int(row["emails"])
    record_emails(counts)
