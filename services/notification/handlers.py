"""The consumers: record what the events ask to be emailed. Sending is the sender loop's job.

Both appliers run in the BatchConsumer's transaction and publish nothing themselves: the
`notification.sent` / `notification.failed` events come from the sender once the SMTP server
answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.notification import store
from services.notification.compose import Office, letter, notification_id
from services.notification.domain import Kommune, PlannedEmail, plan_email, registration_update
from shared.directory import KIND_LABELS_DE, Directory, is_well_shaped
from shared.events import FUNDING_DECISION_EVENTS, Envelope, EventDecoder
from shared.logging import get_logger
from shared.outbox import OutboxMessage

log = get_logger(__name__)


class Letters:
    """Turns planned emails into recorded ones: the Kommune's name, the letter, the row."""

    def __init__(self, directory: Directory, office: Office) -> None:
        self._directory = directory
        self._office = office

    def kommune(self, key: str) -> Kommune:
        # A rejected registration may carry a key of any shape: it is named as it was given.
        canonical = self._directory.canonical_key(key) if is_well_shaped(key) else key
        known = self._directory.get(canonical)
        if known is None:
            return Kommune(canonical, canonical)
        return Kommune(canonical, known.name, KIND_LABELS_DE[known.kind])

    async def record(self, conn: asyncpg.Connection, planned: PlannedEmail) -> None:
        message = letter(planned, self._office)
        recorded = await store.record_email(
            conn,
            store.NewEmail(
                id=notification_id(planned.trigger_event_id, planned.template),
                event_id=planned.trigger_event_id,
                template=planned.template,
                registration_id=planned.registration_id,
                kommune_key=planned.kommune_key,
                recipient=planned.to,
                subject=str(message["Subject"]),
                message=message.as_bytes(),
                correlation_id=planned.correlation_id,
            ),
        )
        log.info(
            "email recorded" if recorded else "email was recorded before",
            registration_id=planned.registration_id,
            template=str(planned.template),
        )


class RegistrationEventsApplier:
    """registration.events: write the letter, remember the registration, release waiting decisions.

    A rejection is written from its event alone and remembers nothing (`registration_update`).
    """

    def __init__(self, letters: Letters) -> None:
        self._letters = letters
        self._decisions = EventDecoder("pending funding decision", FUNDING_DECISION_EVENTS)

    async def lock(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await store.lock_registrations(conn, [event.data.registration_id for event in events])

    async def apply(self, conn: asyncpg.Connection, event: Envelope[Any]) -> Sequence[OutboxMessage]:
        registration_id = event.data.registration_id
        update = registration_update(event, await store.get_registration(conn, registration_id))
        kommune = self._letters.kommune(event.data.kommune_key)
        planned = plan_email(event, update.letter, kommune)
        assert planned is not None, "a registration event always names its contact"
        await self._letters.record(conn, planned)
        known = update.keep
        if known is None:
            # A rejection: the stored registration, if any, and its waiting decisions stay as they are.
            return []
        await store.save_registration(conn, known)
        for raw in await store.take_pending(conn, registration_id):
            decision = self._decisions.decode(raw)
            waiting = plan_email(decision, known, self._letters.kommune(decision.data.kommune_key))
            assert waiting is not None
            log.info("pending funding decision released", registration_id=registration_id)
            await self._letters.record(conn, waiting)
        return []


class FundingDecisionsApplier:
    """funding.decisions: write the letter, or keep the decision until its registration is known."""

    def __init__(self, letters: Letters) -> None:
        self._letters = letters

    async def lock(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await store.lock_registrations(conn, [event.data.registration_id for event in events])

    async def apply(self, conn: asyncpg.Connection, event: Envelope[Any]) -> Sequence[OutboxMessage]:
        registration_id = event.data.registration_id
        known = await store.get_registration(conn, registration_id)
        planned = plan_email(event, known, self._letters.kommune(event.data.kommune_key))
        if planned is None:
            log.info("funding decision waits for its registration", registration_id=registration_id)
            await store.keep_pending(conn, event.event_id, registration_id, event.model_dump_json())
            return []
        await self._letters.record(conn, planned)
        return []
