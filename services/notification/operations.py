"""Operator actions and read helpers over the emails, for the command line."""

from __future__ import annotations

import uuid
from typing import Any

from services.notification import store
from shared.db import Connection, Pool
from shared.events import NotificationFailed, derived_event_id, new_envelope
from shared.outbox import OutboxMessage
from shared.topics import Topics

# What notification.failed says of an email parked by an operator (`lotse mail park`).
PARKED_BY_OPERATOR = "parked by an operator"


async def resend(pool: Pool, email_id: uuid.UUID | str) -> bool:
    """Make a parked email pending again, with fresh attempts; False if it is not parked."""
    async with pool.acquire() as conn:
        return await resend_in(conn, uuid.UUID(str(email_id)))


async def resend_in(conn: Connection, email_id: uuid.UUID) -> bool:
    """`resend` in the caller's transaction (the command applier's unit of work)."""
    return await store.resend_parked(conn, email_id)


async def park_in(conn: Connection, email_id: uuid.UUID, topics: Topics) -> OutboxMessage | None:
    """Park a pending email by hand, in the caller's transaction: the sender leaves it alone until
    it is resent. Returns its `notification.failed` for the outbox (as for every parked email),
    or None if the email is not pending."""
    parked = await store.park_pending(conn, email_id, PARKED_BY_OPERATOR)
    if parked is None:
        return None
    data = NotificationFailed(
        notification_id=str(parked.id),
        registration_id=parked.registration_id,
        template=parked.template,
        to=parked.recipient,
        error=PARKED_BY_OPERATOR,
    )
    envelope = new_envelope(
        "notification.failed",
        data,
        source="notification",
        correlation_id=parked.correlation_id,
        # As the sender derives it: one outcome per resend of the email.
        event_id=derived_event_id(parked.id, f"notification.failed:{parked.resends}"),
    )
    return OutboxMessage(topics.notification_events, parked.kommune_key, envelope)


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
