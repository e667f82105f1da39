"""What is sent for which event, given what is known about the registration."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.notification.domain import (
    Kommune,
    RegistrationData,
    plan_email,
    registration_data,
    registration_update,
)
from services.notification.templates import Template
from tests.unit.notification.samples import CONTACT, KOMMUNE_KEY, envelope, event_data

GOETTINGEN = Kommune(KOMMUNE_KEY, "Göttingen")
DECISIONS = ["funding.approved", "funding.waitlisted", "funding.declined", "funding.released"]
OUTCOMES = [
    "registration.accepted",
    "registration.waitlisted",
    "registration.rejected",
    "registration.withdrawn",
]


@pytest.mark.parametrize("event_type", DECISIONS)
def test_a_decision_about_an_unknown_registration_waits(event_type: str) -> None:
    assert plan_email(envelope(event_type), None, GOETTINGEN) is None


@pytest.mark.parametrize("event_type", DECISIONS)
def test_a_decision_goes_to_the_contact_of_the_known_registration(event_type: str) -> None:
    known = registration_data(envelope("registration.accepted", event_data("registration.accepted")))
    known = RegistrationData(**{**known.__dict__, "contact_email": "neu@kommune.example"})
    event = envelope(event_type)
    planned = plan_email(event, known, GOETTINGEN)
    assert planned is not None
    assert planned.to == "neu@kommune.example"
    assert planned.trigger_event_id == event.event_id
    assert planned.correlation_id == event.event_id
    assert planned.facts["participant"] == "Jürgen Weiß"
    assert planned.facts["seminar_dates"] == "01.02.2023 bis 03.02.2023"


@pytest.mark.parametrize("event_type", OUTCOMES)
def test_every_registration_outcome_is_emailed_to_its_contact(event_type: str) -> None:
    event = envelope(event_type)
    known = registration_data(event)
    planned = plan_email(event, known, GOETTINGEN)
    assert planned is not None
    assert planned.to == CONTACT
    assert planned.kommune_key == KOMMUNE_KEY
    assert planned.registration_id == "R-1"


def test_a_later_partial_event_keeps_what_earlier_events_told() -> None:
    accepted = registration_data(envelope("registration.accepted"))
    withdrawn = registration_data(
        envelope(
            "registration.withdrawn", event_data("registration.withdrawn", contact_email="neu@x.example")
        )
    )
    merged = withdrawn.over(accepted)
    assert merged.contact_email == "neu@x.example"
    assert merged.participant_name == "Jürgen Weiß"
    assert merged.seminar_starts_on == date(2023, 2, 1)
    assert merged.fee_cents == 100_000
    assert withdrawn.over(None) == withdrawn


@pytest.mark.parametrize(
    ("event_type", "overrides", "template", "fact", "value"),
    [
        ("funding.approved", {}, Template.FUNDING_APPROVED, "amount", "500,00 €"),
        ("funding.approved", {"promoted": True}, Template.FUNDING_PROMOTED, "amount", "500,00 €"),
        ("funding.released", {"amount_cents": 123_456}, Template.FUNDING_RELEASED, "amount", "1.234,56 €"),
        ("funding.waitlisted", {}, Template.FUNDING_WAITLISTED, "position", 2),
        ("registration.waitlisted", {}, Template.REGISTRATION_WAITLISTED, "position", 3),
        ("registration.accepted", {}, Template.REGISTRATION_ACCEPTED, "fee", "1.000,00 €"),
        (
            "funding.declined",
            {"reason": "unknown_kommune"},
            Template.FUNDING_DECLINED,
            "reason",
            "unknown_kommune",
        ),
    ],
)
def test_the_letter_gets_the_facts_of_its_event(
    event_type: str, overrides: dict[str, Any], template: Template, fact: str, value: object
) -> None:
    known = registration_data(envelope("registration.accepted"))
    planned = plan_email(envelope(event_type, event_data(event_type, **overrides)), known, GOETTINGEN)
    assert planned is not None
    assert planned.template is template
    assert planned.facts[fact] == value


def test_a_rejection_neither_changes_nor_learns_from_the_stored_registration() -> None:
    """A conflicting resubmission of R-1 for another Kommune is rejected with the new content."""
    stored = registration_data(envelope("registration.accepted"))
    conflict = envelope(
        "registration.rejected",
        event_data(
            "registration.rejected",
            kommune_key="03241",
            contact_email="b@andere.example",
            reason="registration_id_conflict",
        ),
    )
    update = registration_update(conflict, stored)
    assert update.keep is None
    assert update.letter == RegistrationData("R-1", "03241", "b@andere.example")
    planned = plan_email(conflict, update.letter, Kommune("03241", "Region Hannover"))
    assert planned is not None
    assert planned.to == "b@andere.example"
    assert planned.facts["participant"] is None
    assert planned.facts["seminar_title"] is None and planned.facts["seminar_dates"] is None
    assert planned.facts["fee"] is None


def test_a_rejection_of_an_unknown_registration_is_not_remembered() -> None:
    rejected = envelope("registration.rejected")
    update = registration_update(rejected, None)
    assert update.keep is None
    assert update.letter == registration_data(rejected)


@pytest.mark.parametrize(
    "event_type", ["registration.accepted", "registration.waitlisted", "registration.withdrawn"]
)
def test_other_registration_events_are_remembered_over_what_was_known(event_type: str) -> None:
    stored = registration_data(envelope("registration.accepted"))
    event = envelope(event_type)
    update = registration_update(event, stored)
    assert update.keep == update.letter == registration_data(event).over(stored)
