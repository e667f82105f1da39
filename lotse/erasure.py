"""`lotse erase` and `lotse person export` (ADR 0018): personal data on request.

lotse erases nothing itself: it resolves a participant's address to their registrations in
registration's database (as the read-only `operator` role), then publishes `command.erase` with
the registration ids, which registration, funding and notification each carry out in one
transaction of their own. The address never travels on a topic and is kept nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from lotse.db import with_pool
from lotse.settings import OperatorSettings
from services.funding import erasure as funding
from services.notification import erasure as notification
from services.registration import erasure as registration
from services.registration import store as registration_store
from shared.commands import CommandResult
from shared.db import Connection, Pool


async def registrations_of(config: OperatorSettings, email: str) -> list[str]:
    """The registrations (and submissions waiting for their seminar) of a participant's address."""

    async def resolve(pool: Pool) -> list[str]:
        async with pool.acquire() as conn:
            return await registration_store.registrations_of_participant(conn, email)

    return await with_pool(config.registration.database_url, resolve)


async def person_export(config: OperatorSettings, email: str) -> dict[str, Any]:
    """All personal data the three services hold on the participant with this address, with the
    registrations and decisions it belongs to (as the read-only operator role)."""

    async def on_registration(pool: Pool) -> dict[str, Any]:
        async def on_funding(funding_pool: Pool) -> dict[str, Any]:
            async def on_notification(notification_pool: Pool) -> dict[str, Any]:
                async with (
                    pool.acquire() as registration_conn,
                    funding_pool.acquire() as funding_conn,
                    notification_pool.acquire() as notification_conn,
                ):
                    return await export_of(registration_conn, funding_conn, notification_conn, email)

            return await with_pool(config.notification.database_url, on_notification)

        return await with_pool(config.funding.database_url, on_funding)

    return await with_pool(config.registration.database_url, on_registration)


async def export_of(
    registration_conn: Connection, funding_conn: Connection, notification_conn: Connection, email: str
) -> dict[str, Any]:
    """The export from one connection to each service's database: registration resolves the
    address to the registrations, the others are read by those ids."""
    held = await registration.person_export(registration_conn, email)
    ids: Sequence[str] = held["registration_ids"]
    return {
        "email": email,
        "registration_ids": list(ids),
        "registration": {key: value for key, value in held.items() if key != "registration_ids"},
        "funding": await funding.person_export(funding_conn, ids),
        "notification": await notification.person_export(notification_conn, ids),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:  # jsonb arrives as its text
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def export_json(export: dict[str, Any]) -> str:
    return json.dumps(_plain(export), indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class ReceiptLine:
    service: str
    outcome: str
    erased_at: str
    counts: dict[str, int]


def receipt(results: Sequence[CommandResult]) -> list[ReceiptLine]:
    """Per service: what it erased (counts per table or kind), and when."""
    return [
        ReceiptLine(
            service=result.service,
            outcome=result.outcome,
            erased_at=str(result.detail.get("erased_at", "")),
            counts={key: value for key, value in result.detail.items() if isinstance(value, int)},
        )
        for result in results
    ]
