"""The appliers: record the emails the consumed events ask for. Sending is the sender loop's job.

Each applier locks and loads what its batch needs, runs the domain (domain.py) and records the
effects, all in the BatchConsumer's unit of work. They publish nothing themselves: the
`notification.sent` / `notification.failed` events come from the sender once the SMTP server
answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from services.notification.domain import (
    BatchState,
    Effects,
    FundingDecisionsRun,
    NameKommune,
    RegistrationEventsRun,
    WriteEmail,
    erased_events,
)
from shared.events import Envelope
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)


class NotificationUnitOfWork(UnitOfWork, Protocol):
    """What the appliers read and write, in one transaction (store.PostgresNotificationUnitOfWork)."""

    async def lock_and_load(
        self, registration_ids: Sequence[str], *, with_pending_decisions: bool
    ) -> BatchState:
        """Lock these registrations until the end of the unit of work (the other consumer's
        transactions on them wait), then read what is known about them and, if asked, the funding
        decisions waiting for them."""

    async def record(self, effects: Effects) -> set[uuid.UUID]:
        """Write the effects; returns the ids of the emails new here (the others were recorded before)."""


def _registration_ids(events: Sequence[Envelope[Any]]) -> list[str]:
    return list(dict.fromkeys(event.data.registration_id for event in events))


class RegistrationEventsApplier:
    """registration.events: each outcome's letter, the registration remembered, waiting decisions
    released (`RegistrationEventsRun`)."""

    def __init__(self, name_kommune: NameKommune, write_email: WriteEmail) -> None:
        self._name_kommune = name_kommune
        self._write_email = write_email

    async def apply_batch(
        self, uow: NotificationUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        state = await uow.lock_and_load(_registration_ids(events), with_pending_decisions=True)
        effects = RegistrationEventsRun(state, self._name_kommune, self._write_email).run(events)
        _log_erased(events, state)
        recorded = await uow.record(effects)
        for decision in effects.released:
            log.info(
                "pending funding decision released",
                registration_id=decision.data.registration_id,
                decision_event_id=str(decision.event_id),
            )
        _log_recorded(effects, recorded)
        return []


class FundingDecisionsApplier:
    """funding.decisions: each decision's letter, or the decision kept until its registration is
    known (`FundingDecisionsRun`)."""

    def __init__(self, name_kommune: NameKommune, write_email: WriteEmail) -> None:
        self._name_kommune = name_kommune
        self._write_email = write_email

    async def apply_batch(
        self, uow: NotificationUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        state = await uow.lock_and_load(_registration_ids(events), with_pending_decisions=False)
        effects = FundingDecisionsRun(state, self._name_kommune, self._write_email).run(events)
        _log_erased(events, state)
        recorded = await uow.record(effects)
        for decision in effects.keep_pending:
            log.info(
                "funding decision waits for its registration",
                registration_id=decision.data.registration_id,
                event_id=str(decision.event_id),
            )
        _log_recorded(effects, recorded)
        return []


def _log_erased(events: Sequence[Envelope[Any]], state: BatchState) -> None:
    for event in erased_events(events, state.erased):
        log.info(
            "event of an erased registration: no letter",
            registration_id=event.data.registration_id,
            event_id=str(event.event_id),
        )


def _log_recorded(effects: Effects, recorded: set[uuid.UUID]) -> None:
    for email in effects.emails:
        log.debug(
            "email recorded" if email.id in recorded else "email was recorded before",
            registration_id=email.registration_id,
            template=email.template,
        )
    if effects.emails:
        log.info(
            "emails recorded", recorded=len(recorded), recorded_before=len(effects.emails) - len(recorded)
        )
