"""The appliers of both portal topics: load → run → record → return the outbox messages.

Each applier loads what its batch needs through the unit of work, decides every event in order
with a run of the domain, records what the run changed and returns what the events publish.
Outputs and state do not depend on how events are batched; each event still logs its own lines,
with its ids bound. Logs carry registration and seminar ids, never names or email addresses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from services.registration.domain import (
    CancellationApplied,
    CancellationIgnored,
    ErasedIgnored,
    Outcome,
    Parked,
    ParkedDecided,
    ParkingSweep,
    Placed,
    PortalRegistrationsRun,
    PortalSeminarsRun,
    Promoted,
    Redelivered,
    Registration,
    RegistrationContent,
    Rejected,
    Seminar,
    SeminarSaved,
    Status,
    SubmissionDecided,
    WithdrawalIgnored,
    WithdrawalRemembered,
    Withdrawn,
    publishes,
)
from services.registration.unit_of_work import RegistrationUnitOfWork
from shared.directory import Directory
from shared.events import (
    Envelope,
    Participant,
    RegistrationAccepted,
    RegistrationRejected,
    RegistrationWaitlisted,
    RegistrationWithdrawn,
    RejectionReason,
    WithdrawalReason,
    derived_event_id,
    new_envelope,
)
from shared.logging import bound_event, get_logger
from shared.outbox import OutboxMessage
from shared.topics import Topics

log = get_logger(__name__)

# Every output carries the registration and, as its Kafka key, the (canonical) kommune_key.
OutputData = RegistrationAccepted | RegistrationRejected | RegistrationWithdrawn

SOURCE = "registration"


class Outputs:
    """The messages one cause publishes, with ids derived from the cause's event_id: an input
    event, or the submission a parked decision decides."""

    def __init__(
        self, topic: str, event_id: uuid.UUID, correlation_id: uuid.UUID, messages: list[OutboxMessage]
    ) -> None:
        self.topic = topic
        self._event_id = event_id
        self._correlation_id = correlation_id
        self.messages = messages  # shared by the causes of one batch: the outbox keeps their order

    def _add(self, event_type: str, data: OutputData) -> None:
        # The purpose names the event type and the registration: one input may publish several
        # outputs (accepted then withdrawn; withdrawn then a promotion), each with its own id.
        purpose = f"{event_type.removeprefix('registration.')}:{data.registration_id}"
        envelope = new_envelope(
            event_type,
            data,
            source=SOURCE,
            correlation_id=self._correlation_id,
            event_id=derived_event_id(self._event_id, purpose),
        )
        self.messages.append(OutboxMessage(self.topic, data.kommune_key, envelope))

    def accepted(self, registration: Registration, seminar: Seminar) -> None:
        data = RegistrationAccepted(**_placement_fields(registration, seminar))
        self._add("registration.accepted", data)

    def waitlisted(self, registration: Registration, seminar: Seminar, position: int) -> None:
        data = RegistrationWaitlisted(**_placement_fields(registration, seminar), position=position)
        self._add("registration.waitlisted", data)

    def rejected(self, registration_id: str, content: RegistrationContent, reason: RejectionReason) -> None:
        data = RegistrationRejected(
            registration_id=registration_id,
            kommune_key=content.kommune_key,
            contact_email=content.contact_email,
            reason=reason,
        )
        self._add("registration.rejected", data)

    def withdrawn(self, registration: Registration, reason: WithdrawalReason) -> None:
        data = RegistrationWithdrawn(
            registration_id=registration.registration_id,
            kommune_key=registration.content.kommune_key,
            seminar_id=registration.content.seminar_id,
            contact_email=registration.content.contact_email,
            reason=reason,
        )
        self._add("registration.withdrawn", data)


def _placement_fields(registration: Registration, seminar: Seminar) -> dict[str, Any]:
    content = registration.content
    return {
        "registration_id": registration.registration_id,
        "kommune_key": content.kommune_key,
        "seminar_id": seminar.seminar_id,
        "seminar_title": seminar.title,
        "seminar_starts_on": seminar.starts_on,
        "seminar_ends_on": seminar.ends_on,
        "fee_cents": seminar.fee_cents,
        "participant": Participant(
            given_name=content.given_name,
            family_name=content.family_name,
            email=content.participant_email,
        ),
        "contact_email": content.contact_email,
        "course": seminar.course,
        "seminar_location": seminar.location,
        "submitted_at": registration.submitted_at,
    }


def _announce_submission(out: Outputs, decided: SubmissionDecided) -> None:
    registration_id, decision = decided.registration_id, decided.decision
    if isinstance(decision, Redelivered):
        log.info("submission redelivered, nothing new", registration_id=registration_id)
    elif isinstance(decision, Parked):
        log.info(
            "seminar not known yet, the submission waits for its offer",
            registration_id=registration_id,
            seminar_id=decided.content.seminar_id,
        )
    elif isinstance(decision, Rejected):
        out.rejected(registration_id, decided.content, decision.reason)
        log.info(
            "registration rejected",
            registration_id=registration_id,
            reason=decision.reason,
            pending_withdrawal_dropped=decided.pending_withdrawal,
        )
    else:
        _announce_placement(out, decided, decision)


def _announce_placement(out: Outputs, decided: SubmissionDecided, decision: Placed) -> None:
    assert decided.seminar is not None
    placement = decision.placement
    registration = Registration(
        decided.registration_id, placement.status, decided.content, decided.submitted_at
    )
    if placement.status is Status.ACCEPTED:
        out.accepted(registration, decided.seminar)
    else:
        assert placement.position is not None
        out.waitlisted(registration, decided.seminar, placement.position)
    log.info(
        "registration placed",
        registration_id=decided.registration_id,
        status=placement.status.value,
        position=placement.position,
    )


def _announce(out: Outputs, outcome: Outcome) -> None:
    """Publish what the outcome publishes, and log it."""
    if not publishes(outcome):
        registration_id = (
            outcome.registration_id
            if isinstance(outcome, ErasedIgnored)
            else getattr(getattr(outcome, "registration", None), "registration_id", None)
        )
        log.info("outcome of an erased registration: nothing published", registration_id=registration_id)
        return
    if isinstance(outcome, SubmissionDecided):
        _announce_submission(out, outcome)
    elif isinstance(outcome, ParkedDecided):
        parked = outcome.parked
        with bound_event(parked.event_id, parked.correlation_id, event_type="registration.submitted"):
            log.info("parked submission decided", registration_id=parked.registration_id)
            waited = Outputs(out.topic, parked.event_id, parked.correlation_id, out.messages)
            _announce_submission(waited, outcome.decided)
    elif isinstance(outcome, Withdrawn):
        out.withdrawn(outcome.registration, outcome.reason)
        registration_id = outcome.registration.registration_id
        log.info("registration withdrawn", registration_id=registration_id, reason=outcome.reason)
    elif isinstance(outcome, Promoted):
        out.accepted(outcome.registration, outcome.seminar)
        log.info("promoted from the waitlist", registration_id=outcome.registration.registration_id)
    elif isinstance(outcome, WithdrawalRemembered):
        log.warning(
            "withdrawal of an unknown registration, remembered until its submission arrives",
            registration_id=outcome.registration_id,
        )
    elif isinstance(outcome, WithdrawalIgnored):
        log.warning(
            "withdrawal ignored", registration_id=outcome.registration_id, status=outcome.status.value
        )
    elif isinstance(outcome, SeminarSaved):
        if outcome.stays_cancelled:
            log.warning("cancelled seminar republished, it stays cancelled", seminar_id=outcome.seminar_id)
        else:
            log.info("seminar saved", seminar_id=outcome.seminar_id, capacity=outcome.capacity)
    elif isinstance(outcome, CancellationIgnored):
        if outcome.cancelled_before:
            log.info("seminar was cancelled before", seminar_id=outcome.seminar_id)
        else:
            log.warning("cancellation of an unknown seminar ignored", seminar_id=outcome.seminar_id)
    elif isinstance(outcome, CancellationApplied):
        log.info("seminar cancelled", seminar_id=outcome.seminar_id, withdrawn=outcome.withdrawn)


def _decide_each(
    topic: str, events: Sequence[Envelope[Any]], decide: Callable[[Envelope[Any]], list[Outcome]]
) -> list[OutboxMessage]:
    """Decide the events in order, each with its ids bound to its log lines; what they publish."""
    outgoing: list[OutboxMessage] = []
    for event in events:
        with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
            out = Outputs(topic, event.event_id, event.effective_correlation_id, outgoing)
            for outcome in decide(event):
                _announce(out, outcome)
    return outgoing


class PortalRegistrationsApplier:
    """portal.registrations: submissions and withdrawals."""

    def __init__(
        self, topics: Topics, directory: Directory, *, seminar_grace: timedelta = timedelta(0)
    ) -> None:
        self._topic = topics.registration_events
        self._directory = directory
        # With a grace, a submission for a seminar not known yet waits for its offer.
        self._may_park = seminar_grace > timedelta(0)

    async def apply_batch(
        self, uow: RegistrationUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        state = await uow.load_for_registrations([event.data for event in events])
        run = PortalRegistrationsRun(state, self._directory, may_park=self._may_park)
        outgoing = _decide_each(self._topic, events, run.decide)
        await uow.record(run.changes())
        return outgoing


class PortalSeminarsApplier:
    """portal.seminars: seminar offers, capacity changes, cancellations."""

    def __init__(self, topics: Topics) -> None:
        self._topic = topics.registration_events

    async def apply_batch(
        self, uow: RegistrationUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        state = await uow.load_for_seminars([event.data for event in events])
        run = PortalSeminarsRun(state)
        outgoing = _decide_each(self._topic, events, run.decide)
        await uow.record(run.changes())
        return outgoing


class ParkingSweeper:
    """Rejects, as `unknown_seminar`, the parked submissions whose seminar has not come within
    the grace: at most `limit` of the oldest per unit of work. Run periodically (app.py)."""

    def __init__(self, topics: Topics, seminar_grace: timedelta, *, limit: int = 500) -> None:
        self._topic = topics.registration_events
        self._grace = seminar_grace
        self.limit = limit

    async def sweep(self, uow: RegistrationUnitOfWork) -> int:
        """Reject what has expired, through the outbox; how many were rejected."""
        state = await uow.load_expired_parking(self._grace, self.limit)
        if not state.parked:
            return 0
        run = ParkingSweep(state, self._grace)
        outgoing: list[OutboxMessage] = []
        expired = run.sweep()
        for outcome in expired:
            assert isinstance(outcome, ParkedDecided)
            parked = outcome.parked
            _announce(Outputs(self._topic, parked.event_id, parked.correlation_id, outgoing), outcome)
        await uow.record(run.changes())
        await uow.enqueue(outgoing)
        if expired:
            log.info("parked submissions rejected after the grace", count=len(expired))
        return len(expired)
