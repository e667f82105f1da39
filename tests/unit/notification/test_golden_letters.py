"""The letters byte for byte, for each programme: a change of wording or MIME structure shows here
as a diff. Niedersachsen's letters are the bytes they were before the wording came from its file."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage
from typing import Any

import pytest

from services.notification.compose import LetterComposer
from services.notification.domain import (
    plan_email,
    planned_email_from_json,
    planned_email_json,
    registration_data,
)
from tests.unit.notification.golden_cases import (
    BADEN_WUERTTEMBERG,
    BAYERN,
    CASES,
    NIEDERSACHSEN,
    PROGRAMMES,
    WITH_CALENDAR,
    Programme,
    golden_path,
    planned,
    programme_cases,
    render,
    without_calendar,
)
from tests.unit.notification.samples import envelope, event_data, registered

EVERY_CASE = [
    pytest.param(programme, name, event_type, overrides, id=f"{programme.name}-{name}")
    for programme in PROGRAMMES
    for name, event_type, overrides in programme_cases(programme)
]


def bodies(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    texts = [message["Subject"], message["From"]]
    for part in message.walk():
        if part.get_content_maintype() != "multipart":
            texts.append(part.get_content())
    return "\n".join(str(text) if isinstance(text, str) else text.decode() for text in texts)


@pytest.mark.parametrize(("programme", "name", "event_type", "overrides"), EVERY_CASE)
def test_every_letter_is_its_golden_file(
    programme: Programme, name: str, event_type: str, overrides: dict[str, Any]
) -> None:
    built = render(programme, planned(programme, name, event_type, overrides))
    assert built == golden_path(programme, name).read_bytes()


@pytest.mark.parametrize(("programme", "name", "event_type", "overrides"), EVERY_CASE)
def test_every_letter_composed_from_its_stored_facts_is_its_golden_file(
    programme: Programme, name: str, event_type: str, overrides: dict[str, Any]
) -> None:
    """ADR 0024: what the consumer records is what the sender composes, byte for byte."""
    planned_email = planned(programme, name, event_type, overrides)
    stored = planned_email_json(planned_email)
    assert planned_email_from_json(stored) == planned_email
    composed = LetterComposer(programme.office, programme.wording)(stored)
    assert composed == golden_path(programme, name).read_bytes()


@pytest.mark.parametrize(("name", "event_type", "overrides"), CASES, ids=[case[0] for case in CASES])
def test_niedersachsen_letters_without_their_calendar_entry_are_todays_bytes(
    name: str, event_type: str, overrides: dict[str, Any]
) -> None:
    planned_email = planned(NIEDERSACHSEN, name, event_type, overrides)
    assert (planned_email.calendar is not None) == (name in WITH_CALENDAR)
    suffix = ".no_calendar" if name in WITH_CALENDAR else ""
    expected = golden_path(NIEDERSACHSEN, name + suffix).read_bytes()
    assert render(NIEDERSACHSEN, without_calendar(planned_email)) == expected


def test_a_withdrawal_from_the_waitlist_carries_no_calendar_and_reads_as_today() -> None:
    known = registration_data(envelope("registration.waitlisted", {**registered(), "position": 1}))
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, "golden/registration_withdrawn")
    event = envelope("registration.withdrawn", event_data("registration.withdrawn"), event_id)
    from_waitlist = plan_email(event, known, NIEDERSACHSEN.kommune)
    assert from_waitlist.calendar is None
    expected = golden_path(NIEDERSACHSEN, "registration_withdrawn.no_calendar").read_bytes()
    assert render(NIEDERSACHSEN, from_waitlist) == expected


@pytest.mark.parametrize("programme", [BAYERN, BADEN_WUERTTEMBERG], ids=lambda p: p.name)
def test_no_letter_of_another_programme_mentions_niedersachsen(programme: Programme) -> None:
    for name, event_type, overrides in programme_cases(programme):
        text = bodies(render(programme, planned(programme, name, event_type, overrides)))
        assert "Niedersachsen" not in text, name
        assert "Niedersächsisch" not in text, name
        assert "nsi-hannover" not in text, name


def test_a_bayern_approval_says_what_the_freistaat_pays() -> None:
    text = bodies(render(BAYERN, planned(BAYERN, "funding_approved", "funding.approved", {})))
    assert "dass der Freistaat Bayern die Teilnahme fördert" in text
    assert "(80 % der Seminargebühr)" in text
    accepted = bodies(render(BAYERN, planned(BAYERN, "registration_accepted", "registration.accepted", {})))
    assert (
        "durch den Freistaat Bayern, der 80 % der Seminargebühr für die erste teilnehmende Person "
        "je Kommune übernimmt" in accepted
    )
    assert "Bayerische Verwaltungsschule" in accepted


def test_a_baden_wuerttemberg_approval_names_the_amount_per_day_and_the_land() -> None:
    text = bodies(
        render(BADEN_WUERTTEMBERG, planned(BADEN_WUERTTEMBERG, "funding_approved", "funding.approved", {}))
    )
    assert "dass das Land Baden-Württemberg die Teilnahme fördert" in text
    assert "100 Euro je Seminartag" in text


def test_a_follow_up_course_is_worded_with_its_own_amount_and_takes_no_place() -> None:
    programme = BADEN_WUERTTEMBERG
    approval = planned(programme, "follow_up_approved", "funding.approved", {}, course="follow_up")
    assert "bis zu 50 Euro je Seminartag" in bodies(render(programme, approval))
    accepted = planned(programme, "follow_up_accepted", "registration.accepted", {}, course="follow_up")
    text = bodies(render(programme, accepted))
    assert "das bis zu 50 Euro je Seminartag, höchstens die Seminargebühr übernimmt" in text
    assert "Einwohnerzahl" not in text


def test_a_course_the_programme_does_not_fund_is_accepted_without_a_promise_of_funding() -> None:
    accepted = planned(BAYERN, "follow_up_accepted", "registration.accepted", {}, course="follow_up")
    text = bodies(render(BAYERN, accepted))
    assert "Über die Förderung erhalten Sie eine gesonderte Nachricht." in text
    assert "80 %" not in text


@pytest.mark.parametrize(
    ("programme", "reason", "says"),
    [
        (BAYERN, "course_not_funded", "Aufbaukurse werden nicht gefördert"),
        (BAYERN, "quota_exhausted", "der Freistaat fördert je Kommune nur die erste"),
        (BADEN_WUERTTEMBERG, "prerequisite_missing", "bereits einen geförderten Grundkurs"),
        (BADEN_WUERTTEMBERG, "registered_after_start", "erst nach Seminarbeginn"),
        # Reasons a programme never gives are worded by the service.
        (BAYERN, "registered_after_start", "Die Anmeldung ging erst nach Beginn des Seminars ein."),
        (BADEN_WUERTTEMBERG, "course_not_funded", "Das Programm fördert diese Art von Kurs nicht."),
        (NIEDERSACHSEN, "prerequisite_missing", "den dieser Kurs voraussetzt"),
    ],
)
def test_reasons_that_state_a_rule_are_worded_by_the_programme(
    programme: Programme, reason: str, says: str
) -> None:
    event_type = "funding.waitlisted" if reason == "quota_exhausted" else "funding.declined"
    letter_planned = planned(programme, f"reason_{reason}", event_type, {"reason": reason})
    assert says in bodies(render(programme, letter_planned))
