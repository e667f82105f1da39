"""The public contract: what is accepted, what is a contract violation, and why."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.events import (
    FUNDING_DECISION_EVENTS,
    PORTAL_REGISTRATION_EVENTS,
    PORTAL_SEMINAR_EVENTS,
    REGISTRATION_OUTCOME_EVENTS,
    ContractError,
    EventDecoder,
    RegistrationAccepted,
    RegistrationSubmitted,
    RegistrationWaitlisted,
    SeminarPublished,
    derived_event_id,
    new_envelope,
)
from tests.support.kafka import envelope

SEMINARS = EventDecoder("portal.seminars", PORTAL_SEMINAR_EVENTS)
REGISTRATIONS = EventDecoder("portal.registrations", PORTAL_REGISTRATION_EVENTS)
OUTCOMES = EventDecoder("registration.events", REGISTRATION_OUTCOME_EVENTS)


def seminar(**changes: Any) -> dict[str, Any]:
    data = {
        "seminar_id": "NSI-2023-01",
        "title": "Kommunale Digitallotsen",
        "starts_on": "2023-02-01",
        "ends_on": "2023-02-03",
        "location": "Hannover",
        "fee_cents": 100000,
        "capacity": 20,
    }
    data.update(changes)
    return data


def submission(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "registration_id": "R-1",
        "kommune_key": "03241",
        "seminar_id": "NSI-2023-01",
        "participant": {"given_name": "Jörg", "family_name": "Müller", "email": "j.mueller@example.de"},
        "contact_email": "digitallotsen@region-hannover.de",
    }
    data.update(changes)
    return data


def raw(event_type: str, data: dict[str, Any], **envelope_changes: Any) -> bytes:
    message = envelope(event_type, data)
    message.update(envelope_changes)
    return json.dumps(message).encode()


def test_valid_seminar_decodes_to_its_model_and_ignores_unknown_fields() -> None:
    event = SEMINARS.decode(raw("seminar.published", seminar(extra="x"), unknown_field=1))
    assert isinstance(event.data, SeminarPublished)
    assert event.data.capacity == 20
    assert event.event_type == "seminar.published"


def test_correlation_id_defaults_to_event_id_for_outputs() -> None:
    event = REGISTRATIONS.decode(raw("registration.submitted", submission()))
    assert event.correlation_id is None
    assert event.effective_correlation_id == event.event_id
    correlated = uuid.uuid4()
    event = REGISTRATIONS.decode(raw("registration.submitted", submission(), correlation_id=str(correlated)))
    assert event.effective_correlation_id == correlated


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not a valid envelope"),
        (b"[]", "not a valid envelope"),
        (raw("seminar.cancelled", {"seminar_id": "S"}), "not allowed on portal.registrations"),
        (raw("registration.submitted", submission(kommune_key=3241)), "data.kommune_key"),
        (raw("registration.submitted", submission(participant={"given_name": "A"})), "data.participant"),
        (
            raw("registration.submitted", submission(contact_email="a@b.de\r\nBcc: evil@x.de")),
            "data.contact_email",
        ),
        # A final line feed slips past `^…$` with Python's re.match.
        (raw("registration.submitted", submission(contact_email="a@b.de\n")), "data.contact_email"),
        (
            raw(
                "registration.submitted",
                submission(participant={"given_name": "A", "family_name": "C", "email": "a@b.de\n"}),
            ),
            "data.participant.email",
        ),
        (raw("registration.submitted", submission(contact_email="a@bеispiel.de")), "data.contact_email"),
        (
            raw(
                "registration.submitted",
                submission(participant={"given_name": "A\nB", "family_name": "C", "email": "a@b.de"}),
            ),
            "control characters",
        ),
        (raw("registration.submitted", submission(registration_id="x" * 101)), "data.registration_id"),
        (raw("registration.submitted", submission(), schema_version=2), "schema_version"),
        (raw("registration.submitted", submission(), occurred_at="2023-01-01T10:00:00"), "occurred_at"),
        (raw("registration.submitted", submission(), event_id="not-a-uuid"), "event_id"),
    ],
)
def test_registration_contract_violations_have_readable_reasons(value: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        REGISTRATIONS.decode(value)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"fee_cents": -1}, "fee_cents"),
        ({"fee_cents": "100"}, "fee_cents"),
        ({"capacity": 0}, "capacity"),
        ({"starts_on": "1900-01-01", "ends_on": "1900-01-02"}, "starts_on"),
        ({"starts_on": "2023-02-03", "ends_on": "2023-02-01"}, "ends_on lies before starts_on"),
        ({"starts_on": "2023-02-30"}, "starts_on"),
        ({"title": ""}, "title"),
    ],
)
def test_seminar_contract_violations(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        SEMINARS.decode(raw("seminar.published", seminar(**changes)))


def test_a_seminar_is_a_basic_course_unless_it_says_follow_up() -> None:
    event = SEMINARS.decode(raw("seminar.published", seminar()))
    assert event.data.course == "basic"
    event = SEMINARS.decode(raw("seminar.published", seminar(course="follow_up")))
    assert event.data.course == "follow_up"


@pytest.mark.parametrize("course", ["advanced", "", "Basic", 1, None])
def test_a_seminar_of_another_course_is_a_contract_violation(course: Any) -> None:
    with pytest.raises(ContractError, match=r"data\.course"):
        SEMINARS.decode(raw("seminar.published", seminar(course=course)))


def accepted(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "registration_id": "R-1",
        "kommune_key": "032410001001",
        "seminar_id": "NSI-2023-01",
        "seminar_title": "Kommunale Digitallotsen",
        "seminar_starts_on": "2023-02-01",
        "seminar_ends_on": "2023-02-03",
        "fee_cents": 100000,
        "participant": {"given_name": "Jörg", "family_name": "Müller", "email": "j.mueller@example.de"},
        "contact_email": "digitallotsen@region-hannover.de",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("event_type", "extra"),
    [("registration.accepted", {}), ("registration.waitlisted", {"position": 2})],
)
def test_placements_without_the_new_fields_still_decode_with_their_defaults(
    event_type: str, extra: dict[str, Any]
) -> None:
    data = OUTCOMES.decode(raw(event_type, accepted(**extra))).data
    assert isinstance(data, RegistrationAccepted)
    assert (data.course, data.seminar_location, data.submitted_at) == ("basic", None, None)


@pytest.mark.parametrize(
    ("event_type", "extra"),
    [("registration.accepted", {}), ("registration.waitlisted", {"position": 2})],
)
def test_placements_carry_course_location_and_submission_time(event_type: str, extra: dict[str, Any]) -> None:
    fields = {
        "course": "follow_up",
        "seminar_location": "Hannover",
        "submitted_at": "2023-01-10T09:30:00+01:00",
    }
    data = OUTCOMES.decode(raw(event_type, accepted(**extra, **fields))).data
    assert data.course == "follow_up"
    assert data.seminar_location == "Hannover"
    assert data.submitted_at is not None
    assert data.submitted_at.isoformat() == "2023-01-10T09:30:00+01:00"
    assert isinstance(data, RegistrationWaitlisted) == (event_type == "registration.waitlisted")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"course": "advanced"}, "course"),
        ({"seminar_location": ""}, "seminar_location"),
        ({"seminar_location": "Hannover\nBcc: x"}, "seminar_location"),
        ({"submitted_at": "2023-01-10T09:30:00"}, "submitted_at"),  # no offset
        ({"submitted_at": "yesterday"}, "submitted_at"),
    ],
)
def test_placements_with_a_wrong_new_field_are_contract_violations(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ContractError, match=rf"data\.{field}"):
        OUTCOMES.decode(raw("registration.accepted", accepted(**changes)))


@pytest.mark.parametrize("reason", ["prerequisite_missing", "registered_after_start", "course_not_funded"])
def test_funding_declines_for_the_programme_rules_of_other_laender(reason: str) -> None:
    decisions = EventDecoder("funding.decisions", FUNDING_DECISION_EVENTS)
    data = {"registration_id": "R1", "kommune_key": "03241", "reason": reason}
    assert decisions.decode(raw("funding.declined", data)).data.reason == reason


def test_none_value_is_a_contract_violation() -> None:
    with pytest.raises(ContractError, match="no value"):
        SEMINARS.decode(None)


def test_sql_metacharacters_are_just_text() -> None:
    event = REGISTRATIONS.decode(
        raw(
            "registration.submitted",
            submission(
                participant={"given_name": "Robert'); DROP TABLE x;--", "family_name": "T", "email": "a@b.de"}
            ),
        )
    )
    assert isinstance(event.data, RegistrationSubmitted)
    assert event.data.participant.given_name.startswith("Robert'")


def test_new_envelope_round_trips_through_the_decoder() -> None:
    cause = uuid.uuid4()
    data = RegistrationSubmitted.model_validate(submission())
    out = new_envelope(
        "registration.submitted",
        data,
        source="registration",
        correlation_id=cause,
        event_id=derived_event_id(cause, "x"),
    )
    decoded = REGISTRATIONS.decode(out.model_dump_json().encode())
    assert decoded.data == data
    assert decoded.correlation_id == cause
    assert decoded.event_id == derived_event_id(cause, "x")
    assert derived_event_id(cause, "x") != derived_event_id(cause, "y")


@pytest.mark.parametrize("key", ["０３２４１", "٠٣٢٤١", "03241\n", "0324", "032410000"[:8] + "x"])
def test_decided_events_take_ascii_digit_keys_only(key: str) -> None:
    decisions = EventDecoder("funding.decisions", FUNDING_DECISION_EVENTS)
    data = {"registration_id": "R1", "kommune_key": key, "reason": "unknown_kommune"}
    with pytest.raises(ContractError, match=r"data\.kommune_key"):
        decisions.decode(raw("funding.declined", data))
    decoded = decisions.decode(raw("funding.declined", data | {"kommune_key": "03241"}))
    assert decoded.data.kommune_key == "03241"
