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

Batches. A submission is always decided as part of a run (`apply` makes a run of one): one read
of the state the run needs (`SubmissionRun`), one statement per table to write it. Withdrawals
are applied one by one after the run before them is written, and so is the withdrawal a placed
submission finds pending (it may promote from the waitlist). Outputs and state do not depend on
how events are batched; each event still logs its own lines, with its ids bound.

Logs carry registration and seminar ids, never names or email addresses.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
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
    SubmissionDecision,
    SubmissionRun,
    WithdrawalDecision,
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
from shared.legacy_applier import apply_each
from shared.logging import bound_event, get_logger
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


def _new_registration(
    data: RegistrationSubmitted, content: RegistrationContent, decision: Rejected | Placed
) -> store.NewRegistration | None:
    """The row a decided submission stores; None for a conflict (the id keeps its first content)."""
    if isinstance(decision, Rejected) and not decision.stored:
        return None
    return store.NewRegistration(
        registration_id=data.registration_id,
        given_kommune_key=data.kommune_key,
        content=content,
        status=decision.status,
        rejection_reason=decision.reason if isinstance(decision, Rejected) else None,
    )


def _announce(
    out: Outputs,
    registration_id: str,
    content: RegistrationContent,
    decision: SubmissionDecision,
    seminar: store.Seminar | None,
    *,
    pending_withdrawal: bool,
) -> store.Registration | None:
    """Publish and log a decided submission; returns the registration if it was placed."""
    if isinstance(decision, Redelivered):
        log.info("submission redelivered, nothing new", registration_id=registration_id)
        return None
    if isinstance(decision, Rejected):
        out.rejected(registration_id, content, decision.reason)
        log.info(
            "registration rejected",
            registration_id=registration_id,
            reason=decision.reason,
            pending_withdrawal_dropped=pending_withdrawal,
        )
        return None
    assert seminar is not None
    placement = decision.placement
    registration = store.Registration(registration_id, placement.status, content)
    if placement.status is Status.ACCEPTED:
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
    return registration


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
        if isinstance(event.data, RegistrationSubmitted):
            outgoing: list[OutboxMessage] = []
            await self._submit_run(conn, [event], outgoing)
            return outgoing
        out = Outputs(self._topic, event)
        if isinstance(event.data, RegistrationWithdrawalRequested):
            await self._withdraw(conn, event.data, event.event_id, out)
        return out.messages

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        """What `apply` gives event by event, with bulk reads and writes for runs of submissions.

        A withdrawal ends the run before it: what the run decided is written, and the withdrawal
        takes the per-event path.
        """
        outgoing: list[OutboxMessage] = []
        start = 0
        while start < len(events):
            end = start
            while end < len(events) and isinstance(events[end].data, RegistrationSubmitted):
                end += 1
            if end > start:
                start += await self._submit_run(conn, events[start:end], outgoing)
            else:
                outgoing += await apply_each(self, conn, [events[start]])
                start += 1
        return outgoing

    async def _submit_run(
        self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]], outgoing: list[OutboxMessage]
    ) -> int:
        """Decide submissions in order from one read of their state, write them together.

        Returns how many of the events it applied: it stops after a placed submission with a
        pending withdrawal, which it withdraws once the run is written (withdrawing may promote
        from the waitlist, which the run's copy of the state does not follow).
        """
        submissions = [(event, *self._content(event.data)) for event in events]
        registration_ids = [event.data.registration_id for event in events]
        stored = await store.get_registrations(conn, registration_ids)
        seminars = await store.get_seminars(conn, {content.seminar_id for _, content, _ in submissions})
        participant_keys, active = await store.participants(
            conn, {(content.seminar_id, content.participant_email) for _, content, _ in submissions}
        )
        pending = await store.pending_withdrawals(conn, registration_ids)
        run = SubmissionRun(
            registrations={rid: registration.content for rid, registration in stored.items()},
            seminars={sid: seminar.view for sid, seminar in seminars.items()},
            participants=active,
        )
        new: list[store.NewRegistration] = []
        seats: dict[str, int] = defaultdict(int)
        withdrawals_dropped: list[str] = []
        applied = 0
        to_withdraw: tuple[Envelope[Any], store.Registration] | None = None
        for event, content, key_well_shaped in submissions:
            registration_id = event.data.registration_id
            with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
                decision = run.decide(
                    registration_id,
                    content,
                    key_well_shaped=key_well_shaped,
                    participant=participant_keys[(content.seminar_id, content.participant_email)],
                )
                applied += 1
                pending_withdrawal = False
                if not isinstance(decision, Redelivered):
                    registration = _new_registration(event.data, content, decision)
                    if registration is not None:
                        new.append(registration)
                    if isinstance(decision, Placed) and decision.status is Status.ACCEPTED:
                        seats[content.seminar_id] += 1
                    if registration_id in pending:
                        pending.discard(registration_id)
                        withdrawals_dropped.append(registration_id)
                        pending_withdrawal = True
                out = Outputs(self._topic, event)
                seminar = seminars.get(content.seminar_id)
                placed = _announce(
                    out, registration_id, content, decision, seminar, pending_withdrawal=pending_withdrawal
                )
                outgoing += out.messages
                if placed is not None and pending_withdrawal:  # a rejection has nothing to withdraw
                    to_withdraw = (event, placed)
                    break
        await store.insert_registrations(conn, new)
        await store.take_seats(conn, seats)
        await store.delete_pending_withdrawals(conn, withdrawals_dropped)
        if to_withdraw is not None:
            event, placed = to_withdraw
            with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
                out = Outputs(self._topic, event)
                await _withdraw(conn, placed, "withdrawn_by_portal", out)
                outgoing += out.messages
        return applied

    def _content(self, data: RegistrationSubmitted) -> tuple[RegistrationContent, bool]:
        """The submission's content, and whether its Kommune key is well shaped."""
        canonical = self._directory.canonical_or_none(data.kommune_key)
        content = RegistrationContent(
            kommune_key=canonical if canonical is not None else data.kommune_key,
            seminar_id=data.seminar_id,
            given_name=data.participant.given_name,
            family_name=data.participant.family_name,
            participant_email=data.participant.email,
            contact_email=data.contact_email,
        )
        return content, canonical is not None

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
