"""The consumers: record what the events ask to be emailed. Sending is the sender loop's job.

Both appliers run in the BatchConsumer's transaction and publish nothing themselves: the
`notification.sent` / `notification.failed` events come from the sender once the SMTP server
answered.

`apply_batch` is what the consumer runs: the same decisions as `apply` event by event, in order,
but with one bulk read of the registrations the batch names, the decisions in memory, and one
bulk write per table. `apply` stays the plain reading of the rules, one event at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.notification import store
from services.notification.compose import Office, letter, notification_id
from services.notification.domain import (
    Kommune,
    PlannedEmail,
    RegistrationData,
    plan_email,
    registration_update,
)
from shared.directory import KIND_LABELS_DE, Directory
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
        canonical = self._directory.canonical_or_none(key) or key
        known = self._directory.get(canonical)
        if known is None:
            return Kommune(canonical, canonical)
        return Kommune(canonical, known.name, KIND_LABELS_DE[known.kind])

    def email(self, planned: PlannedEmail) -> store.NewEmail:
        composed = letter(planned, self._office)
        return store.NewEmail(
            id=notification_id(planned.trigger_event_id, planned.template),
            event_id=planned.trigger_event_id,
            template=planned.template,
            registration_id=planned.registration_id,
            kommune_key=planned.kommune_key,
            recipient=planned.to,
            subject=composed.subject,
            message=composed.message,
            correlation_id=planned.correlation_id,
        )

    async def record_all(self, conn: asyncpg.Connection, planned: Sequence[PlannedEmail]) -> None:
        """Record these emails in one statement; the first of two with the same id wins, as the
        first INSERT would, event by event."""
        emails: dict[uuid.UUID, store.NewEmail] = {}
        for each in planned:
            email_id = notification_id(each.trigger_event_id, each.template)
            if email_id not in emails:
                emails[email_id] = self.email(each)
        recorded = await store.record_emails(conn, list(emails.values()))
        for email in emails.values():
            log.debug(
                "email recorded" if email.id in recorded else "email was recorded before",
                registration_id=email.registration_id,
                template=email.template,
            )
        if emails:
            log.info("emails recorded", recorded=len(recorded), recorded_before=len(emails) - len(recorded))


def _registration_ids(events: Sequence[Envelope[Any]]) -> list[str]:
    return list(dict.fromkeys(event.data.registration_id for event in events))


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
        return await self.apply_batch(conn, [event])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        """The events in order: a registration named twice is seen by its second event as the
        first one left it, and its waiting decisions are released, once, with what its first kept
        event made known (later events find them taken, as they would one by one)."""
        known = await store.get_registrations(conn, _registration_ids(events))
        planned: list[PlannedEmail] = []
        saved: dict[str, RegistrationData] = {}
        releases_with: dict[str, RegistrationData] = {}
        for event in events:
            registration_id = event.data.registration_id
            update = registration_update(event, known.get(registration_id))
            email = plan_email(event, update.letter, self._letters.kommune(event.data.kommune_key))
            assert email is not None, "a registration event always names its contact"
            planned.append(email)
            if update.keep is not None:
                known[registration_id] = saved[registration_id] = update.keep
                releases_with.setdefault(registration_id, update.keep)
        await store.save_registrations(conn, list(saved.values()))
        for registration_id, raw in await store.take_pending_of(conn, list(releases_with)):
            decision = self._decisions.decode(raw)
            waiting = plan_email(
                decision, releases_with[registration_id], self._letters.kommune(decision.data.kommune_key)
            )
            assert waiting is not None
            log.info(
                "pending funding decision released",
                registration_id=registration_id,
                decision_event_id=str(decision.event_id),
            )
            planned.append(waiting)
        await self._letters.record_all(conn, planned)
        return []


class FundingDecisionsApplier:
    """funding.decisions: write the letter, or keep the decision until its registration is known."""

    def __init__(self, letters: Letters) -> None:
        self._letters = letters

    async def lock(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await store.lock_registrations(conn, [event.data.registration_id for event in events])

    async def apply(self, conn: asyncpg.Connection, event: Envelope[Any]) -> Sequence[OutboxMessage]:
        return await self.apply_batch(conn, [event])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        """Decisions change no registration, so one read serves every event of the batch."""
        known = await store.get_registrations(conn, _registration_ids(events))
        planned: list[PlannedEmail] = []
        waiting: list[store.PendingDecision] = []
        for event in events:
            registration_id = event.data.registration_id
            email = plan_email(
                event, known.get(registration_id), self._letters.kommune(event.data.kommune_key)
            )
            if email is not None:
                planned.append(email)
                continue
            log.info(
                "funding decision waits for its registration",
                registration_id=registration_id,
                event_id=str(event.event_id),
            )
            waiting.append(store.PendingDecision(event.event_id, registration_id, event.model_dump_json()))
        await store.keep_all_pending(conn, waiting)
        await self._letters.record_all(conn, planned)
        return []
