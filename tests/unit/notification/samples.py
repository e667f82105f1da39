"""Sample events of every kind the notification service reads, as the wire carries them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import FUNDING_DECISION_EVENTS, REGISTRATION_OUTCOME_EVENTS, Envelope, EventDecoder

KOMMUNE_KEY = "03159"  # Landkreis Göttingen: a name with an umlaut
KOMMUNE_NAME = "Göttingen"
CONTACT = "digitalisierung@landkreisgoettingen.de"


def registered(registration_id: str = "R-1", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "registration_id": registration_id,
        "kommune_key": KOMMUNE_KEY,
        "seminar_id": "S-2023-02",
        "seminar_title": "Kommunale Digitallotsen – Grundlagen",
        "seminar_starts_on": "2023-02-01",
        "seminar_ends_on": "2023-02-03",
        "fee_cents": 100_000,
        "participant": {"given_name": "Jürgen", "family_name": "Weiß", "email": "jw@example.org"},
        "contact_email": CONTACT,
    }
    return {**data, **overrides}


def event_data(event_type: str, registration_id: str = "R-1", **overrides: Any) -> dict[str, Any]:
    """Valid data for every event type; `overrides` replace fields."""
    base = {"registration_id": registration_id, "kommune_key": KOMMUNE_KEY}
    data: dict[str, Any] = {
        "registration.accepted": registered(registration_id),
        "registration.waitlisted": {**registered(registration_id), "position": 3},
        "registration.rejected": {**base, "contact_email": CONTACT, "reason": "duplicate_participant"},
        "registration.withdrawn": {
            **base,
            "seminar_id": "S-2023-02",
            "contact_email": CONTACT,
            "reason": "withdrawn_by_portal",
        },
        "funding.approved": {**base, "period_id": "2023", "amount_cents": 50_000, "promoted": False},
        "funding.waitlisted": {**base, "period_id": "2023", "reason": "quota_exhausted", "position": 2},
        "funding.declined": {**base, "reason": "kommune_not_eligible"},
        "funding.released": {**base, "period_id": "2023", "amount_cents": 50_000},
    }[event_type]
    return {**data, **overrides}


def wire(event_type: str, data: dict[str, Any], event_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "event_id": str(event_id or uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime(2023, 1, 15, 9, 30, tzinfo=UTC).isoformat(),
        "source": "registration" if event_type.startswith("registration") else "funding",
        "correlation_id": None,
        "data": data,
    }


_DECODERS = {
    **dict.fromkeys(
        REGISTRATION_OUTCOME_EVENTS, EventDecoder("registration.events", REGISTRATION_OUTCOME_EVENTS)
    ),
    **dict.fromkeys(FUNDING_DECISION_EVENTS, EventDecoder("funding.decisions", FUNDING_DECISION_EVENTS)),
}


def envelope(
    event_type: str, data: dict[str, Any] | None = None, event_id: uuid.UUID | None = None
) -> Envelope[Any]:
    """A decoded envelope, validated by the contract exactly as the consumer would."""
    raw = wire(event_type, data if data is not None else event_data(event_type), event_id)
    return _DECODERS[event_type].decode(json.dumps(raw).encode())
