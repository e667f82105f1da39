"""What is sent for which event, given what is known about the registration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from services.notification.compose import EmailWriter, letter, notification_id
from services.notification.domain import (
    BatchState,
    Effects,
    FundingDecisionsRun,
    KommuneNames,
    NamedKommune,
    RegistrationData,
    RegistrationEventsRun,
    plan_email,
    registration_data,
    registration_update,
)
from services.notification.templates import Template
from shared.directory import load_directory
from shared.events import Envelope
from shared.settings import DEFAULT_DIRECTORY_FILE
from tests.unit.notification.letters import OFFICE, WORDING, letter_bytes, parse, parts
from tests.unit.notification.samples import CONTACT, KOMMUNE_KEY, envelope, event_data

GOETTINGEN = NamedKommune(KOMMUNE_KEY, "Göttingen")
DECISIONS = ["funding.approved", "funding.waitlisted", "funding.declined", "funding.released"]
OUTCOMES = [
    "registration.accepted",
    "registration.waitlisted",
    "registration.rejected",
    "registration.withdrawn",
]


@pytest.mark.parametrize("event_type", DECISIONS)
def test_a_decision_goes_to_the_contact_of_the_known_registration(event_type: str) -> None:
    known = registration_data(envelope("registration.accepted", event_data("registration.accepted")))
    known = RegistrationData(**{**known.__dict__, "contact_email": "neu@kommune.example"})
    event = envelope(event_type)
    planned = plan_email(event, known, GOETTINGEN)
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
    planned = plan_email(conflict, update.letter, NamedKommune("03241", "Region Hannover"))
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


# --- the runs: one batch against the state loaded for it ------------------------------------


def contact(registration_id: str) -> str:
    return f"kontakt-{registration_id.lower()}@kommune.example"


def outcome(event_type: str, registration_id: str, **overrides: Any) -> Envelope[Any]:
    data = event_data(event_type, registration_id, contact_email=contact(registration_id))
    return envelope(event_type, {**data, **overrides})


def decision(event_type: str, registration_id: str, **overrides: Any) -> Envelope[Any]:
    return envelope(event_type, event_data(event_type, registration_id, **overrides))


# Every event the tables name, by label.
EVENTS: dict[str, Envelope[Any]] = {
    "R-1 accepted": outcome("registration.accepted", "R-1"),
    "R-1 accepted, other seminar": outcome("registration.accepted", "R-1", seminar_title="Aufbau"),
    "R-1 waitlisted": outcome("registration.waitlisted", "R-1", seminar_title="Gruppe A"),
    "R-1 withdrawn": outcome("registration.withdrawn", "R-1", reason="seminar_cancelled"),
    "R-1 rejected": outcome("registration.rejected", "R-1"),
    "R-1 conflict": outcome(
        "registration.rejected",
        "R-1",
        kommune_key="03241",
        contact_email="b@andere.example",
        reason="registration_id_conflict",
    ),
    "R-2 accepted": outcome("registration.accepted", "R-2"),
    "R-1 approved": decision("funding.approved", "R-1"),
    "R-1 released": decision("funding.released", "R-1"),
    "R-2 waitlisted": decision("funding.waitlisted", "R-2"),
    "R-3 declined": decision("funding.declined", "R-3"),
}
STORED = {"R-1": registration_data(EVENTS["R-1 accepted"])}
NAME_KOMMUNE = KommuneNames(load_directory(str(DEFAULT_DIRECTORY_FILE)))
WRITE_EMAIL = EmailWriter(OFFICE, WORDING)


def labels(events: Sequence[Envelope[Any]]) -> list[str]:
    by_id = {event.event_id: label for label, event in EVENTS.items()}
    return [by_id[event.event_id] for event in events]


def emailed(effects: Effects) -> list[tuple[str, str]]:
    """(event label, recipient) of every email, in order."""
    by_id = {event.event_id: label for label, event in EVENTS.items()}
    return [(by_id[email.event_id], email.recipient) for email in effects.emails]


# stored, pending, batch -> emails (event, to), remembered registrations, released decisions
REGISTRATION_RUNS = [
    pytest.param([], [], ["R-1 accepted"], [("R-1 accepted", contact("R-1"))], ["R-1"], [], id="first"),
    pytest.param(
        [],
        ["R-1 approved", "R-2 waitlisted", "R-1 released"],
        ["R-1 accepted"],
        [
            ("R-1 accepted", contact("R-1")),
            ("R-1 approved", contact("R-1")),
            ("R-1 released", contact("R-1")),
        ],
        ["R-1"],
        ["R-1 approved", "R-1 released"],
        id="releases-only-its-own-decisions-in-arrival-order",
    ),
    pytest.param(
        [],
        ["R-1 approved"],
        ["R-1 rejected"],
        [("R-1 rejected", contact("R-1"))],
        [],
        [],
        id="a-rejection-releases-nothing",
    ),
    pytest.param(
        [],
        ["R-1 approved"],
        ["R-1 rejected", "R-1 accepted"],
        [
            ("R-1 rejected", contact("R-1")),
            ("R-1 accepted", contact("R-1")),
            ("R-1 approved", contact("R-1")),
        ],
        ["R-1"],
        ["R-1 approved"],
        id="released-by-the-acceptance-after-a-rejection",
    ),
    pytest.param(
        ["R-1"],
        [],
        ["R-1 conflict", "R-1 withdrawn"],
        [("R-1 conflict", "b@andere.example"), ("R-1 withdrawn", contact("R-1"))],
        ["R-1"],
        [],
        id="a-conflicting-rejection-neither-changes-nor-learns",
    ),
    pytest.param(
        [],
        [],
        ["R-1 accepted", "R-2 accepted", "R-1 withdrawn"],
        [
            ("R-1 accepted", contact("R-1")),
            ("R-2 accepted", contact("R-2")),
            ("R-1 withdrawn", contact("R-1")),
        ],
        ["R-1", "R-2"],
        [],
        id="each-registration-remembered-once",
    ),
]


@pytest.mark.parametrize(
    ("stored", "pending", "batch", "emails", "remembered", "released"), REGISTRATION_RUNS
)
def test_a_run_of_registration_events(
    *,
    stored: list[str],
    pending: list[str],
    batch: list[str],
    emails: list[tuple[str, str]],
    remembered: list[str],
    released: list[str],
) -> None:
    state = BatchState({rid: STORED[rid] for rid in stored}, [EVENTS[label] for label in pending])
    effects = RegistrationEventsRun(state, NAME_KOMMUNE, WRITE_EMAIL).run([EVENTS[label] for label in batch])
    assert emailed(effects) == emails
    assert [r.registration_id for r in effects.registrations] == remembered
    assert labels(effects.released) == released
    assert effects.keep_pending == ()


def test_a_registration_named_twice_is_remembered_as_its_last_event_left_it() -> None:
    batch = [EVENTS["R-1 waitlisted"], EVENTS["R-1 accepted, other seminar"], EVENTS["R-1 withdrawn"]]
    effects = RegistrationEventsRun(BatchState({}), NAME_KOMMUNE, WRITE_EMAIL).run(batch)
    (remembered,) = effects.registrations
    assert remembered.seminar_title == "Aufbau"
    assert remembered == registration_data(batch[2]).over(registration_data(batch[1]))


def test_a_released_decision_is_written_with_what_the_first_remembered_event_told() -> None:
    """As one event per batch: the first event releases it, before the second is known."""
    state = BatchState({}, [EVENTS["R-1 approved"]])
    batch = [EVENTS["R-1 waitlisted"], EVENTS["R-1 accepted, other seminar"]]
    effects = RegistrationEventsRun(state, NAME_KOMMUNE, WRITE_EMAIL).run(batch)
    (released,) = [email for email in effects.emails if email.event_id == EVENTS["R-1 approved"].event_id]
    text, _ = parts(parse(letter_bytes(released.planned)))
    assert "Gruppe A" in text and "Aufbau" not in text


def test_the_email_of_a_run_is_the_letter_of_its_event() -> None:
    event = EVENTS["R-1 accepted"]
    (email,) = RegistrationEventsRun(BatchState({}), NAME_KOMMUNE, WRITE_EMAIL).run([event]).emails
    planned = plan_email(event, registration_data(event), NAME_KOMMUNE(KOMMUNE_KEY))
    assert email.planned == planned
    assert email.subject == letter(planned, OFFICE, WORDING).subject
    assert email.id == notification_id(event.event_id, "registration_accepted")
    assert (email.event_id, email.template, email.registration_id) == (
        event.event_id,
        planned.template,
        "R-1",
    )
    assert (email.kommune_key, email.correlation_id) == (KOMMUNE_KEY, event.event_id)


# stored, batch -> emails (event, to), kept pending
FUNDING_RUNS = [
    pytest.param(["R-1"], ["R-1 approved"], [("R-1 approved", contact("R-1"))], [], id="known"),
    pytest.param([], ["R-1 approved"], [], ["R-1 approved"], id="unknown-waits"),
    pytest.param(
        ["R-1"],
        ["R-3 declined", "R-1 approved", "R-2 waitlisted", "R-1 released"],
        [("R-1 approved", contact("R-1")), ("R-1 released", contact("R-1"))],
        ["R-3 declined", "R-2 waitlisted"],
        id="mixed",
    ),
]


@pytest.mark.parametrize(("stored", "batch", "emails", "kept"), FUNDING_RUNS)
def test_a_run_of_funding_decisions(
    stored: list[str], batch: list[str], emails: list[tuple[str, str]], kept: list[str]
) -> None:
    state = BatchState({rid: STORED[rid] for rid in stored})
    effects = FundingDecisionsRun(state, NAME_KOMMUNE, WRITE_EMAIL).run([EVENTS[label] for label in batch])
    assert emailed(effects) == emails
    assert labels(effects.keep_pending) == kept
    assert effects.registrations == () and effects.released == ()


@pytest.mark.parametrize("event_type", DECISIONS)
def test_a_decision_about_an_unknown_registration_waits(event_type: str) -> None:
    event = envelope(event_type)
    effects = FundingDecisionsRun(BatchState({}), NAME_KOMMUNE, WRITE_EMAIL).run([event])
    assert effects == Effects(keep_pending=(event,))


@pytest.mark.parametrize(
    ("key", "named"),
    [
        ("03159", NamedKommune("03159", "Göttingen", "Landkreis")),
        ("03159016", NamedKommune("031590016016", "Göttingen, Stadt", "Einheitsgemeinde")),  # its AGS
        ("0324", NamedKommune("0324", "0324")),  # wrong shape: named as given
        ("09999", NamedKommune("09999", "09999")),  # well shaped, not in the directory
    ],
)
def test_a_kommune_is_named_from_the_directory(key: str, named: NamedKommune) -> None:
    assert NAME_KOMMUNE(key) == named
