"""Portal events for the unit tests, as the consumer hands them to the appliers."""

from __future__ import annotations

from datetime import date
from typing import Any

from shared.events import (
    Envelope,
    Participant,
    RegistrationSubmitted,
    RegistrationWithdrawalRequested,
    SeminarCancelled,
    SeminarPublished,
    new_envelope,
)

HANNOVER_AGS = "03241001"  # canonical: 032410001001
BRAUNSCHWEIG = "03101"  # canonical: 031010000000
REGION_HANNOVER = "03241"


def _portal(event_type: str, data: Any) -> Envelope[Any]:
    return new_envelope(event_type, data, source="test-portal", correlation_id=None)


def email_of(registration_id: str) -> str:
    return f"person.{registration_id.lower().replace('-', '')}@mail.example"


def submitted(
    registration_id: str,
    seminar_id: str = "S-1",
    *,
    kommune_key: str = HANNOVER_AGS,
    email: str | None = None,
    contact_email: str = "it@kommune.example",
) -> Envelope[Any]:
    data = RegistrationSubmitted(
        registration_id=registration_id,
        kommune_key=kommune_key,
        seminar_id=seminar_id,
        participant=Participant(
            given_name="Alex", family_name="Beispiel", email=email or email_of(registration_id)
        ),
        contact_email=contact_email,
    )
    return _portal("registration.submitted", data)


def withdrawal_requested(registration_id: str, *, kommune_key: str = HANNOVER_AGS) -> Envelope[Any]:
    data = RegistrationWithdrawalRequested(registration_id=registration_id, kommune_key=kommune_key)
    return _portal("registration.withdrawn", data)


def published(seminar_id: str, capacity: int, *, title: str = "Datenschutz im Rathaus") -> Envelope[Any]:
    data = SeminarPublished(
        seminar_id=seminar_id,
        title=title,
        starts_on=date(2030, 3, 4),
        ends_on=date(2030, 3, 5),
        location="Hannover",
        fee_cents=45_000,
        capacity=capacity,
    )
    return _portal("seminar.published", data)


def cancelled(seminar_id: str) -> Envelope[Any]:
    return _portal("seminar.cancelled", SeminarCancelled(seminar_id=seminar_id))
