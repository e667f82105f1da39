"""Operator actions and read helpers over the emails, for the command line."""

from __future__ import annotations

import uuid
from typing import Any

from services.notification import store
from shared.db import Pool


async def resend(pool: Pool, email_id: uuid.UUID | str) -> bool:
    """Make a parked email pending again, with fresh attempts; False if it is not parked."""
    async with pool.acquire() as conn:
        return await store.resend_parked(conn, uuid.UUID(str(email_id)))


async def _count_by_status(pool: Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        return await store.count_emails_by_status(conn)


async def count_sent(pool: Pool) -> int:
    return (await _count_by_status(pool))["sent"]


async def count_parked(pool: Pool) -> int:
    return (await _count_by_status(pool))["parked"]


async def get_email(pool: Pool, email_id: uuid.UUID | str) -> dict[str, Any] | None:
    """One email's delivery state (without the message itself)."""
    async with pool.acquire() as conn:
        return await store.email_delivery_state(conn, uuid.UUID(str(email_id)))


async def parked(pool: Pool, limit: int = 100) -> list[dict[str, Any]]:
    """The parked emails, oldest first, for an operator to inspect and resend."""
    async with pool.acquire() as conn:
        return await store.parked_emails(conn, limit)


async def waiting_decisions(pool: Pool, limit: int = 100) -> list[dict[str, Any]]:
    """Funding decisions kept until their registration arrives (not lost, not yet emailed)."""
    async with pool.acquire() as conn:
        return await store.oldest_pending_decisions(conn, limit)
