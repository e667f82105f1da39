"""What to send for which event, given what is known about the registration. Pure.

Funding decisions carry no address, participant or seminar: those come from the registration
events, which travel on another topic and may arrive later. A decision about a registration not
yet known is kept pending (`plan_email` returns None) until the registration's data arrives.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

from services.notification.templates import (
    Template,
    format_euros,
    format_period,
    reason_text,
    template_for,
)
from shared.events import (
    Envelope,
    FundingApproved,
    FundingReleased,
    FundingWaitlisted,
    RegistrationAccepted,
    RegistrationRejected,
    RegistrationWaitlisted,
)


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
class Kommune:
    key: str  # canonical where the directory knows the key, else as given
    name: str  # from the directory; the key itself when the directory does not know it
    kind: str | None = None  # "Landkreis", "Samtgemeinde", ... when the directory knows it

    @property
    def label(self) -> str:
        """How a letter names it: "Göttingen (Landkreis, 03159)"; the bare key when unknown."""
        details = [part for part in (self.kind, self.key) if part and part != self.name]
        return f"{self.name} ({', '.join(details)})" if details else self.name


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


def plan_email(event: Envelope[Any], known: RegistrationData | None, kommune: Kommune) -> PlannedEmail | None:
    """The email an event asks for, or None while the registration it refers to is unknown."""
    if known is None:
        return None
    data = event.data
    template = template_for(event.event_type, promoted=getattr(data, "promoted", False))
    facts: dict[str, Any] = {
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
        "reason_text": reason_text(event.event_type, data.reason) if hasattr(data, "reason") else None,
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
    )
