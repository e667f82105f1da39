"""The programme's figures for /metrics: budget per period, waitlists, funded Kommunen (ADR 0015).

Read from the funding database every 15 s (`runtime.every`); every instance reports the same
figures, and the rules and panels take `max` over instances.
"""

from __future__ import annotations

from shared.db import Pool
from shared.metrics import WAITLIST_KIND_OF_REASON, PeriodFigures, WaitlistKind, record_programme

PERIODS = "SELECT period_id, budget_cents, approved_cents, released_cents FROM periods ORDER BY period_id"
WAITLISTS = """
SELECT period_id, reason, count(*)::bigint AS registrations
FROM fundings
WHERE status = 'waitlisted'
GROUP BY period_id, reason
"""
FUNDED_KOMMUNEN = "SELECT count(DISTINCT kommune_key)::bigint FROM fundings WHERE status = 'approved'"


async def sample_programme(pool: Pool) -> None:
    async with pool.acquire() as conn:
        periods = [
            PeriodFigures(
                period_id=row["period_id"],
                budget_cents=row["budget_cents"],
                approved_cents=row["approved_cents"],
                released_cents=row["released_cents"],
            )
            for row in await conn.fetch(PERIODS)
        ]
        waitlists: dict[tuple[str, WaitlistKind], int] = {}
        for row in await conn.fetch(WAITLISTS):
            kind = WAITLIST_KIND_OF_REASON.get(row["reason"])
            if kind is not None:
                waitlists[(row["period_id"], kind)] = int(row["registrations"])
        funded = int(await conn.fetchval(FUNDED_KOMMUNEN) or 0)
    record_programme(periods, waitlists, funded)
