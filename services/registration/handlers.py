"""The appliers: decode, decide with the domain, write with the store, return outbox messages.

Withdrawal before submission. Order holds only per Kommune key, so a portal withdrawal may
arrive before its submission (e.g. when the two carry the key in different forms). It is then
remembered in `pending_withdrawals`. When the submission arrives it is decided as usual, and if
it was placed, it is withdrawn at once: the service publishes `registration.accepted` (or
`registration.waitlisted`) followed by `registration.withdrawn` with reason
`withdrawn_by_portal`, and the freed seat promotes from the waitlist. Downstream services thus
see a consistent history (funding releases what it approved) instead of a withdrawal of a
registration they never heard of. A submission that is rejected drops the pending withdrawal:
there is nothing to withdraw.

A seminar cancelled once stays cancelled: a later `seminar.published` updates its details but
does not reopen it (its registrations were already withdrawn).

Logs carry registration and seminar ids, never names or email addresses.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.registration import store
from services.registration.domain import (
    Placed,
    Redelivered,
    RegistrationContent,
    Rejected,
    Status,
    WithdrawalDecision,
    canonical_kommune_key,
    decide_submission,
    decide_withdrawal,
)
from shared.directory import Directory
from shared.events import (
    Envelope,
    Participant,
    RegistrationAccepted,
    RegistrationRejected,
    RegistrationSubmitted,
    RegistrationWaitlisted,
    RegistrationWithdrawalRequested,
    RegistrationWithdrawn,
    RejectionReason,
    SeminarCancelled,
    SeminarPublished,
    WithdrawalReason,
    derived_event_id,
    new_envelope,
)
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.topics import Topics

log = get_logger(__name__)

# Every output carries the registration and, as its Kafka key, the (canonical) kommune_key.
OutcomeData = RegistrationAccepted | RegistrationRejected | RegistrationWithdrawn

SOURCE = "registration"


class Outputs:
    """The messages one input event publishes, with ids derived from the input's event_id."""

    def __init__(self, topic: str, cause: Envelope[Any]) -> None:
        self._topic = topic
        self._cause = cause
        self.messages: list[OutboxMessage] = []

    def _add(self, event_type: str, data: OutcomeData) -> None:
        # The purpose names the event type and the registration: one input may publish several
        # outputs (accepted then withdrawn; withdrawn then a promotion), each with its own id.
        purpose = f"{event_type.removeprefix('registration.')}:{data.registration_id}"
        envelope = new_envelope(
            event_type,
            data,
            source=SOURCE,
            correlation_id=self._cause.effective_correlation_id,
            event_id=derived_event_id(self._cause.event_id, purpose),
        )
        self.messages.append(OutboxMessage(self._topic, data.kommune_key, envelope))

    def accepted(self, registration: store.Registration, seminar: store.Seminar) -> None:
        data = RegistrationAccepted(**_placement_fields(registration, seminar))
        self._add("registration.accepted", data)

    def waitlisted(self, registration: store.Registration, seminar: store.Seminar, position: int) -> None:
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

    def withdrawn(self, registration: store.Registration, reason: WithdrawalReason) -> None:
        data = RegistrationWithdrawn(
            registration_id=registration.registration_id,
            kommune_key=registration.content.kommune_key,
            seminar_id=registration.content.seminar_id,
            contact_email=registration.content.contact_email,
            reason=reason,
        )
        self._add("registration.withdrawn", data)


def _placement_fields(registration: store.Registration, seminar: store.Seminar) -> dict[str, Any]:
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
    }


async def _withdraw(
    conn: asyncpg.Connection, registration: store.Registration, reason: WithdrawalReason, out: Outputs
) -> None:
    """Withdraw an active registration; a freed seat goes to the head of the waitlist."""
    await store.withdraw(conn, registration, reason)
    out.withdrawn(registration, reason)
    log.info("registration withdrawn", registration_id=registration.registration_id, reason=reason)
    if registration.status is Status.ACCEPTED:
        await store.free_seat(conn, registration.content.seminar_id)
        await _promote_from_waitlist(conn, registration.content.seminar_id, out)


async def _promote_from_waitlist(conn: asyncpg.Connection, seminar_id: str, out: Outputs) -> None:
    seminar = await store.get_seminar(conn, seminar_id)
    if seminar is None or seminar.cancelled:
        return
    for registration in await store.waitlist_head(conn, seminar_id, seminar.seats.promotable()):
        await store.promote(conn, registration)
        out.accepted(registration, seminar)
        log.info("promoted from the waitlist", registration_id=registration.registration_id)


class PortalRegistrationsApplier:
    """portal.registrations: submissions and withdrawals."""

    def __init__(self, topics: Topics, directory: Directory) -> None:
        self._topic = topics.registration_events
        self._directory = directory

    async def lock(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        registration_ids = [event.data.registration_id for event in events]
        await store.lock_registration_ids(conn, registration_ids)
        seminar_ids = {
            event.data.seminar_id for event in events if isinstance(event.data, RegistrationSubmitted)
        }
        seminar_ids |= await store.seminars_of_registrations(conn, registration_ids)
        await store.lock_seminars(conn, seminar_ids)

    async def apply(self, conn: asyncpg.Connection, event: Envelope[Any]) -> Sequence[OutboxMessage]:
        out = Outputs(self._topic, event)
        if isinstance(event.data, RegistrationSubmitted):
            await self._submit(conn, event.data, out)
        elif isinstance(event.data, RegistrationWithdrawalRequested):
            await self._withdraw(conn, event.data, event.event_id, out)
        return out.messages

    async def _submit(self, conn: asyncpg.Connection, data: RegistrationSubmitted, out: Outputs) -> None:
        canonical = canonical_kommune_key(self._directory, data.kommune_key)
        content = RegistrationContent(
            kommune_key=canonical if canonical is not None else data.kommune_key,
            seminar_id=data.seminar_id,
            given_name=data.participant.given_name,
            family_name=data.participant.family_name,
            participant_email=data.participant.email,
            contact_email=data.contact_email,
        )
        existing = await store.get_registration(conn, data.registration_id)
        seminar = await store.get_seminar(conn, data.seminar_id)
        decision = decide_submission(
            content=content,
            key_well_shaped=canonical is not None,
            existing=existing.content if existing is not None else None,
            seminar=seminar.view if seminar is not None else None,
            participant_already_registered=(
                seminar is not None
                and await store.participant_registered(conn, data.seminar_id, data.participant.email)
            ),
        )
        registration_id = data.registration_id
        if isinstance(decision, Redelivered):
            log.info("submission redelivered, nothing new", registration_id=registration_id)
            return
        rejection = decision.reason if isinstance(decision, Rejected) else None
        if not isinstance(decision, Rejected) or decision.stored:
            await store.insert_registration(
                conn,
                registration_id=registration_id,
                given_kommune_key=data.kommune_key,
                content=content,
                status=decision.status,
                rejection_reason=rejection,
            )
        pending_withdrawal = await store.take_pending_withdrawal(conn, registration_id)
        if rejection is not None:
            out.rejected(registration_id, content, rejection)
            log.info(
                "registration rejected",
                registration_id=registration_id,
                reason=rejection,
                pending_withdrawal_dropped=pending_withdrawal,
            )
            return
        assert isinstance(decision, Placed) and seminar is not None
        placement = decision.placement
        registration = store.Registration(registration_id, placement.status, content)
        if placement.status is Status.ACCEPTED:
            await store.take_seat(conn, data.seminar_id)
            out.accepted(registration, seminar)
        else:
            assert placement.position is not None
            out.waitlisted(registration, seminar, placement.position)
        log.info(
            "registration placed",
            registration_id=registration_id,
            status=placement.status.value,
            position=placement.position,
        )
        if pending_withdrawal:
            await _withdraw(conn, registration, "withdrawn_by_portal", out)

    async def _withdraw(
        self,
        conn: asyncpg.Connection,
        data: RegistrationWithdrawalRequested,
        event_id: uuid.UUID,
        out: Outputs,
    ) -> None:
        registration = await store.get_registration(conn, data.registration_id)
        decision = decide_withdrawal(registration.status if registration is not None else None)
        if decision is WithdrawalDecision.REMEMBER:
            await store.remember_withdrawal(conn, data.registration_id, data.kommune_key, event_id)
            log.warning(
                "withdrawal of an unknown registration, remembered until its submission arrives",
                registration_id=data.registration_id,
            )
        elif decision is WithdrawalDecision.IGNORE:
            assert registration is not None
            log.warning(
                "withdrawal ignored",
                registration_id=data.registration_id,
                status=registration.status.value,
            )
        else:
            assert registration is not None
            await _withdraw(conn, registration, "withdrawn_by_portal", out)


class PortalSeminarsApplier:
    """portal.seminars: seminar offers, capacity changes, cancellations."""

    def __init__(self, topics: Topics) -> None:
        self._topic = topics.registration_events

    async def lock(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        await store.lock_seminars(conn, {event.data.seminar_id for event in events})

    async def apply(self, conn: asyncpg.Connection, event: Envelope[Any]) -> Sequence[OutboxMessage]:
        out = Outputs(self._topic, event)
        if isinstance(event.data, SeminarPublished):
            await self._publish(conn, event.data, out)
        elif isinstance(event.data, SeminarCancelled):
            await self._cancel(conn, event.data.seminar_id, out)
        return out.messages

    async def _publish(self, conn: asyncpg.Connection, data: SeminarPublished, out: Outputs) -> None:
        before = await store.get_seminar(conn, data.seminar_id)
        await store.save_seminar(conn, data)
        if before is not None and before.cancelled:
            log.warning("cancelled seminar republished, it stays cancelled", seminar_id=data.seminar_id)
            return
        log.info("seminar saved", seminar_id=data.seminar_id, capacity=data.capacity)
        # A larger capacity frees seats for the waitlist.
        await _promote_from_waitlist(conn, data.seminar_id, out)

    async def _cancel(self, conn: asyncpg.Connection, seminar_id: str, out: Outputs) -> None:
        seminar = await store.get_seminar(conn, seminar_id)
        if seminar is None:
            log.warning("cancellation of an unknown seminar ignored", seminar_id=seminar_id)
            return
        if seminar.cancelled:
            log.info("seminar was cancelled before", seminar_id=seminar_id)
            return
        registrations = await store.active_registrations(conn, seminar_id)
        for registration in registrations:
            await store.withdraw(conn, registration, "seminar_cancelled")
            out.withdrawn(registration, "seminar_cancelled")
        await store.cancel_seminar(conn, seminar_id)
        log.info("seminar cancelled", seminar_id=seminar_id, withdrawn=len(registrations))
