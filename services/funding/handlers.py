"""The applier of registration.events: lock and load, decide with the domain, record, publish.

Only `registration.accepted` (a first decision) and `registration.withdrawn` (release and
promotions, or leaving a waitlist) change anything. `registration.waitlisted` (no seat yet) and
`registration.rejected` need no funding decision: a seat promotion arrives later as
`registration.accepted`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from services.funding.domain import (
    MONEY_HEAD_GROWTH,
    AcceptanceOutcome,
    Application,
    FundingRun,
    LockPlan,
    Outcome,
    RegistrationEvent,
    WaitlistHeadTooShortError,
    Withdrawal,
    plan_locks,
    without_erased_identities,
)
from services.funding.messages import decision_messages, log_effects
from services.funding.participants import checked_key, participant_hash
from services.funding.unit_of_work import FundingUnitOfWork
from shared.directory import Directory
from shared.events import Envelope, RegistrationAccepted, RegistrationWithdrawn
from shared.logging import bound_event, get_logger
from shared.outbox import OutboxMessage
from shared.program import Course, Program
from shared.topics import Topics

log = get_logger(__name__)


def registration_event(
    event: Envelope[Any], participant_key: bytes | None = None
) -> RegistrationEvent | None:
    """What funding acts on in an event of registration.events; None for the rest.

    By event type, not by data class: `registration.waitlisted` (no seat yet) carries the
    acceptance's fields and its model derives from the acceptance's. With a `participant_key`
    (a programme that checks the prerequisite), the participant's keyed hash; the email address
    itself goes no further than this function.
    """
    if event.event_type == "registration.accepted":
        data: RegistrationAccepted = event.data
        return Application(
            registration_id=data.registration_id,
            kommune_key=data.kommune_key,
            seminar_id=data.seminar_id,
            seminar_starts_on=data.seminar_starts_on,
            seminar_ends_on=data.seminar_ends_on,
            fee_cents=data.fee_cents,
            course=Course(data.course),
            submitted_at=data.submitted_at,
            participant_hash=(
                None if participant_key is None else participant_hash(participant_key, data.participant.email)
            ),
        )
    if isinstance(event.data, RegistrationWithdrawn):
        return Withdrawal(event.data.registration_id, event.data.kommune_key)
    return None


class RegistrationEventsApplier:
    """registration.events: first decisions for acceptances; releases and promotions for withdrawals."""

    def __init__(
        self, topics: Topics, program: Program, directory: Directory, participant_key: bytes | None = None
    ) -> None:
        """`participant_key`: see `participants.checked_key` (refused here if the programme needs
        one and it is missing)."""
        self._topic = topics.funding_decisions
        self._program = program
        self._directory = directory
        self._participant_key = checked_key(program, participant_key)

    async def apply_batch(
        self, uow: FundingUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        causes = [
            (event, found)
            for event in events
            if (found := registration_event(event, self._participant_key)) is not None
        ]
        if not causes:
            return []
        registration_ids = [found.registration_id for _, found in causes]
        existing = await uow.lock_registrations(registration_ids)
        inputs = without_erased_identities(
            [found for _, found in causes], await uow.erased_among(registration_ids)
        )
        outcomes = await self._decide(uow, inputs, plan_locks(self._program, inputs, existing))
        await uow.record([change for outcome in outcomes for change in outcome.changes])
        return [
            message
            for (event, _), outcome in zip(causes, outcomes, strict=True)
            for message in self._published(event, outcome)
        ]

    async def _decide(
        self, uow: FundingUnitOfWork, inputs: Sequence[RegistrationEvent], plan: LockPlan
    ) -> list[Outcome]:
        """Lock, load and decide; again on a longer head of the money waitlists while a round of
        promotions needs more of one than was read (ADR 0025)."""
        while True:
            state = await uow.lock_and_load(plan)
            try:
                return FundingRun(self._program, self._directory, state).decide(inputs)
            except WaitlistHeadTooShortError as short:
                assert plan.money_head is not None
                log.info(
                    "a money waitlist is needed beyond the head read, reading more",
                    period_id=short.period_id,
                    head=plan.money_head,
                )
                plan = replace(plan, money_head=plan.money_head * MONEY_HEAD_GROWTH)

    def _published(self, event: Envelope[Any], outcome: Outcome) -> list[OutboxMessage]:
        with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
            if isinstance(outcome, AcceptanceOutcome) and outcome.decided_before is not None:
                log.info(
                    "registration decided before, no second decision",
                    registration_id=outcome.decided_before.registration_id,
                    status=outcome.decided_before.status.value,
                )
            elif not outcome.effects:
                log.info("withdrawal changes no funding", registration_id=event.data.registration_id)
            log_effects(outcome.effects)
        return decision_messages(self._topic, event.event_id, event.effective_correlation_id, outcome.effects)
