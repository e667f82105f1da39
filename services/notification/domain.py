"""What to send for which event, given what is known about the registration. Pure.

Funding decisions carry no address, participant or seminar: those come from the registration
events, which travel on another topic and may arrive later. A decision about a registration not
yet known is kept pending until the registration's data arrives (`FundingDecisionsRun`), and is
released by the first registration event that makes it known (`RegistrationEventsRun`).

A run decides one consumed batch against the state loaded for it and returns its effects; the
appliers (handlers.py) load that state, run, and record the effects in one unit of work.

Erased registrations (ADR 0018): an event of a registration whose personal data were erased
writes no letter, remembers nothing and waits for nothing (`erased_events`), whether it is
redelivered, replayed from a dead letter or new.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

from pydantic import TypeAdapter

from services.notification.templates import (
    Template,
    format_euros,
    format_period,
    template_for,
)
from shared.directory import KIND_LABELS_DE, Directory
from shared.events import (
    Envelope,
    FundingApproved,
    FundingReleased,
    FundingWaitlisted,
    RegistrationAccepted,
    RegistrationRejected,
    RegistrationWaitlisted,
    RegistrationWithdrawn,
)

# The UID of a registration's calendar entry: the same for its invitation and its cancellation.
_CALENDAR_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:digitallotsen:seminar-calendar")


@dataclass(frozen=True)
class RegistrationData:
    """What the registration events told us about one registration; None where not (yet) known."""

    registration_id: str
    kommune_key: str
    contact_email: str
    given_name: str | None = None
    family_name: str | None = None
    seminar_id: str | None = None
    seminar_title: str | None = None
    seminar_starts_on: date | None = None
    seminar_ends_on: date | None = None
    fee_cents: int | None = None
    course: str | None = None  # the contract's `course`: "basic", "follow_up"
    seminar_location: str | None = None
    seat_confirmed: bool | None = None  # True once accepted: its letter carried a calendar entry

    def over(self, known: RegistrationData | None) -> RegistrationData:
        """This newer data, completed by what was known before where it says nothing."""
        if known is None:
            return self
        kept = {f.name: getattr(known, f.name) for f in fields(self) if getattr(self, f.name) is None}
        return replace(self, **kept)

    @property
    def participant_name(self) -> str | None:
        if self.given_name is None or self.family_name is None:
            return None
        return f"{self.given_name} {self.family_name}"


@dataclass(frozen=True)
class NamedKommune:
    """A Kommune as a letter names it."""

    key: str  # canonical where the directory knows the key, else as given
    name: str  # from the directory; the key itself when the directory does not know it
    kind: str | None = None  # "Landkreis", "Samtgemeinde", ... when the directory knows it

    @property
    def label(self) -> str:
        """How a letter names it: "Göttingen (Landkreis, 03159)"; the bare key when unknown."""
        details = [part for part in (self.kind, self.key) if part and part != self.name]
        return f"{self.name} ({', '.join(details)})" if details else self.name


class KommuneNames:
    """Names the Kommune of a key from the directory."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def __call__(self, key: str) -> NamedKommune:
        # A rejected registration may carry a key of any shape: it is named as it was given.
        canonical = self._directory.canonical_or_none(key) or key
        known = self._directory.get(canonical)
        if known is None:
            return NamedKommune(canonical, canonical)
        return NamedKommune(canonical, known.name, KIND_LABELS_DE[known.kind])


@dataclass(frozen=True)
class SeminarCalendar:
    """The seminar as a calendar entry of a letter: an invitation, or its cancellation."""

    uid: str  # from registration and seminar: a cancellation names the entry it cancels
    cancelled: bool
    sequence: int  # a cancellation's is higher, so calendars take it as the newer version
    starts_on: date
    ends_on: date  # the last day, inclusive
    title: str
    location: str | None
    stamp: datetime  # the event's occurred_at: the same letter is the same bytes


def calendar_uid(registration_id: str, seminar_id: str) -> str:
    return f"{uuid.uuid5(_CALENDAR_UID_NAMESPACE, f'{registration_id}/{seminar_id}')}@digitallotsen"


def seminar_calendar(event: Envelope[Any], known: RegistrationData) -> SeminarCalendar | None:
    """An acceptance invites to the seminar; a withdrawal of a confirmed seat cancels that entry."""
    data = event.data
    if isinstance(data, RegistrationWaitlisted) or not isinstance(
        data, RegistrationAccepted | RegistrationWithdrawn
    ):
        return None
    cancelled = isinstance(data, RegistrationWithdrawn)
    if cancelled and not known.seat_confirmed:
        return None  # no seat, no entry to cancel (a waitlisted one, or one stored before entries)
    if known.seminar_title is None or known.seminar_starts_on is None or known.seminar_ends_on is None:
        return None
    return SeminarCalendar(
        uid=calendar_uid(data.registration_id, data.seminar_id),
        cancelled=cancelled,
        sequence=1 if cancelled else 0,
        starts_on=known.seminar_starts_on,
        ends_on=known.seminar_ends_on,
        title=known.seminar_title,
        location=known.seminar_location,
        stamp=event.occurred_at,
    )


@dataclass(frozen=True)
class PlannedEmail:
    trigger_event_id: uuid.UUID
    correlation_id: uuid.UUID
    occurred_at: datetime
    template: Template
    registration_id: str
    kommune_key: str
    to: str
    facts: dict[str, Any]
    calendar: SeminarCalendar | None = None


def _contract_value(value: Any) -> str | None:
    """A contract value as its wire string, whether the model holds a str or an enum member."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def registration_data(event: Envelope[Any]) -> RegistrationData:
    """What a registration.events event says about its registration."""
    data = event.data
    known = RegistrationData(
        registration_id=data.registration_id,
        kommune_key=data.kommune_key,
        contact_email=data.contact_email,
        seminar_id=getattr(data, "seminar_id", None),
    )
    if isinstance(data, RegistrationAccepted | RegistrationWaitlisted):
        known = replace(
            known,
            given_name=data.participant.given_name,
            family_name=data.participant.family_name,
            seminar_title=data.seminar_title,
            seminar_starts_on=data.seminar_starts_on,
            seminar_ends_on=data.seminar_ends_on,
            fee_cents=data.fee_cents,
            # Read by name: older events (and portals) carry neither field.
            course=_contract_value(getattr(data, "course", None)),
            seminar_location=getattr(data, "seminar_location", None),
            seat_confirmed=not isinstance(data, RegistrationWaitlisted),
        )
    return known


@dataclass(frozen=True)
class RegistrationUpdate:
    """What a registration event's letter is built from, and what is kept for later letters."""

    letter: RegistrationData
    keep: RegistrationData | None  # None: the stored registration stays as it is


def registration_update(event: Envelope[Any], stored: RegistrationData | None) -> RegistrationUpdate:
    """How a registration.events event changes what is known about its registration.

    A rejection is built from the event alone and never stored: it may answer a resubmission that
    reused an accepted registration's id with other content (`registration_id_conflict`, another
    Kommune and contact). Merged with the stored registration it would tell that other contact
    the participant and seminar of the first, and send the first one's later funding letters to
    the other contact. A rejected registration gets no funding decisions, so nothing needs it kept.
    """
    new = registration_data(event)
    if isinstance(event.data, RegistrationRejected):
        return RegistrationUpdate(letter=new, keep=None)
    known = new.over(stored)
    return RegistrationUpdate(letter=known, keep=known)


def plan_email(event: Envelope[Any], known: RegistrationData, kommune: NamedKommune) -> PlannedEmail:
    """The email an event asks for, given what is known about its registration."""
    data = event.data
    template = template_for(event.event_type, promoted=getattr(data, "promoted", False))
    facts: dict[str, Any] = {
        "event_type": event.event_type,
        "registration_id": data.registration_id,
        "kommune_key": kommune.key,
        "kommune_name": kommune.name,
        "kommune": kommune.label,
        "participant": known.participant_name,
        "seminar_id": known.seminar_id,
        "seminar_title": known.seminar_title,
        "seminar_dates": (
            format_period(known.seminar_starts_on, known.seminar_ends_on)
            if known.seminar_starts_on is not None and known.seminar_ends_on is not None
            else None
        ),
        "fee": format_euros(known.fee_cents) if known.fee_cents is not None else None,
        "position": getattr(data, "position", None),
        "reason": getattr(data, "reason", None),
        "course": known.course,
        "amount": (
            format_euros(data.amount_cents) if isinstance(data, FundingApproved | FundingReleased) else None
        ),
        "period_id": data.period_id if isinstance(data, FundingApproved | FundingWaitlisted) else None,
    }
    return PlannedEmail(
        trigger_event_id=event.event_id,
        correlation_id=event.effective_correlation_id,
        occurred_at=event.occurred_at,
        template=template,
        registration_id=data.registration_id,
        kommune_key=kommune.key,
        to=known.contact_email,
        facts=facts,
        calendar=seminar_calendar(event, known),
    )


# A planned letter as it is stored (emails.facts, ADR 0024) and read back by the sender, which
# composes the message from it. Later versions may add fields, with defaults: a letter recorded
# before a deploy is still sent after it.
_PLANNED_EMAIL = TypeAdapter(PlannedEmail)


def planned_email_json(planned: PlannedEmail) -> str:
    return _PLANNED_EMAIL.dump_json(planned).decode()


def planned_email_from_json(stored: str | bytes) -> PlannedEmail:
    return _PLANNED_EMAIL.validate_json(stored)


@dataclass(frozen=True)
class NewEmail:
    """An email as it is recorded to be sent: one per (triggering event, template). The message
    itself is composed from `planned` when it is sent (ADR 0024)."""

    id: uuid.UUID
    event_id: uuid.UUID
    template: str
    registration_id: str
    kommune_key: str
    recipient: str
    subject: str
    planned: PlannedEmail
    correlation_id: uuid.UUID


# The Kommune's name for a key, and the email recorded for a planned one: both pure, given by the
# service (the directory and the programme office) so that the runs decide without knowing them.
NameKommune = Callable[[str], NamedKommune]
WriteEmail = Callable[[PlannedEmail], NewEmail]


@dataclass(frozen=True)
class BatchState:
    """What a batch is decided against, read while its registrations are locked."""

    registrations: Mapping[str, RegistrationData]  # the stored ones among the batch's, by id
    # Funding decisions waiting for the batch's registrations, in arrival order (read for
    # registration events only: decisions release nothing).
    pending_decisions: Sequence[Envelope[Any]] = ()
    # The batch's registration ids that carry an erasure marker (never in `registrations`).
    erased: frozenset[str] = frozenset()


def erased_events(events: Sequence[Envelope[Any]], erased: frozenset[str]) -> list[Envelope[Any]]:
    """The events that belong to an erased registration: applied as nothing at all."""
    return [event for event in events if event.data.registration_id in erased]


def _live(events: Sequence[Envelope[Any]], erased: frozenset[str]) -> list[Envelope[Any]]:
    return [event for event in events if event.data.registration_id not in erased]


@dataclass(frozen=True)
class Effects:
    """What a batch changes, recorded in its unit of work."""

    emails: tuple[NewEmail, ...] = ()  # to record, in the order of their events; each id once
    registrations: tuple[RegistrationData, ...] = ()  # to remember (insert or replace); each id once
    keep_pending: tuple[Envelope[Any], ...] = ()  # funding decisions that wait for their registration
    released: tuple[Envelope[Any], ...] = ()  # pending decisions emailed now: no longer waiting


def _each_once(emails: Sequence[NewEmail]) -> tuple[NewEmail, ...]:
    """The first of two emails with the same id wins, as the first INSERT would, event by event."""
    first: dict[uuid.UUID, NewEmail] = {}
    for email in emails:
        first.setdefault(email.id, email)
    return tuple(first.values())


@dataclass(frozen=True)
class RegistrationEventsRun:
    """registration.events: write each outcome's letter, remember the registration, release the
    decisions that waited for it.

    The events are decided in order, so that a batch gives what its events would give one batch
    each: a registration named twice is seen by its second event as the first one left it, and
    its waiting decisions are released, once, with what its first remembered event made known.
    A rejection is written from its event alone and remembers nothing (`registration_update`).
    """

    state: BatchState
    name_kommune: NameKommune
    write_email: WriteEmail

    def run(self, events: Sequence[Envelope[Any]]) -> Effects:
        known = dict(self.state.registrations)
        planned: list[PlannedEmail] = []
        remembered: dict[str, RegistrationData] = {}
        releases_with: dict[str, RegistrationData] = {}
        for event in _live(events, self.state.erased):
            registration_id = event.data.registration_id
            update = registration_update(event, known.get(registration_id))
            planned.append(plan_email(event, update.letter, self.name_kommune(event.data.kommune_key)))
            if update.keep is not None:
                known[registration_id] = remembered[registration_id] = update.keep
                releases_with.setdefault(registration_id, update.keep)
        released = tuple(
            decision
            for decision in _live(self.state.pending_decisions, self.state.erased)
            if decision.data.registration_id in releases_with
        )
        for decision in released:
            with_data = releases_with[decision.data.registration_id]
            planned.append(plan_email(decision, with_data, self.name_kommune(decision.data.kommune_key)))
        return Effects(
            emails=_each_once([self.write_email(each) for each in planned]),
            registrations=tuple(remembered.values()),
            released=released,
        )


@dataclass(frozen=True)
class FundingDecisionsRun:
    """funding.decisions: write each decision's letter, or keep the decision pending while its
    registration is not known. Decisions change no registration: the loaded state serves every
    event of the batch."""

    state: BatchState
    name_kommune: NameKommune
    write_email: WriteEmail

    def run(self, events: Sequence[Envelope[Any]]) -> Effects:
        planned: list[PlannedEmail] = []
        keep_pending: list[Envelope[Any]] = []
        for event in _live(events, self.state.erased):
            known = self.state.registrations.get(event.data.registration_id)
            if known is None:
                # A funding decision waits until its registration is known: only the registration
                # events tell where to send it and what to say about the participant and seminar.
                keep_pending.append(event)
                continue
            planned.append(plan_email(event, known, self.name_kommune(event.data.kommune_key)))
        return Effects(
            emails=_each_once([self.write_email(each) for each in planned]),
            keep_pending=tuple(keep_pending),
        )
