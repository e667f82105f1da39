"""Read helpers over registrations, for the `lotse` command line (no personal data leaves here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from services.registration import store
from shared.db import Pool


@dataclass(frozen=True)
class KommuneRegistration:
    registration_id: str
    seminar_id: str
    seminar_starts_on: date | None  # None: the seminar is unknown (rejected, or waiting for its offer)
    status: str  # accepted, waitlisted, withdrawn, rejected, waiting_for_seminar
    reason: str | None  # rejection or withdrawal reason
    position: int | None  # on the seminar's waitlist
    created_at: datetime


async def registrations_of_kommune(pool: Pool, kommune_key: str) -> list[KommuneRegistration]:
    """Every registration of a Kommune (by its canonical key), oldest first."""
    async with pool.acquire() as conn:
        rows = await store.kommune_registration_rows(conn, kommune_key)
    return [KommuneRegistration(**dict(row)) for row in rows]
