"""Every letter, rendered and parsed back strictly: German text, facts, both parts, headers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.notification.compose import letter, notification_id
from services.notification.domain import NamedKommune, plan_email, registration_data
from shared.directory import ATTRIBUTION
from tests.unit.notification.letters import (
    GOETTINGEN,
    OFFICE,
    WORDING,
    letter_bytes,
    parse,
    parts,
    planned_for,
)
from tests.unit.notification.samples import CONTACT, KOMMUNE_NAME, envelope, registered

# event type, overrides, what the subject says, what the body says
CASES = [
    ("registration.accepted", {}, "Anmeldebestätigung", ["fest reserviert", "1.000,00 €"]),
    ("registration.waitlisted", {}, "Warteliste", ["Warteliste auf Platz 3", "ausgebucht"]),
    (
        "registration.rejected",
        {},
        "nicht angenommen",
        ["Die teilnehmende Person ist für dieses Seminar bereits angemeldet."],
    ),
    (
        "registration.withdrawn",
        {},
        "Abmeldung",
        ["zurückgezogen", "Die Anmeldung wurde über das Anmeldeportal zurückgezogen."],
    ),
    (
        "registration.withdrawn",
        {"reason": "seminar_cancelled"},
        "Absage",
        ["Das Seminar wurde abgesagt.", "keine Kosten"],
    ),
    ("funding.approved", {}, "Förderung bewilligt", ["500,00 €", "Förderzeitraum 2023"]),
    ("funding.approved", {"promoted": True}, "Nachrücken", ["nachgerückt", "500,00 €"]),
    (
        "funding.approved",
        {"amount_cents": 123_456},
        "1.234,56 €",
        ["1.234,56 €"],
    ),
    (
        "funding.waitlisted",
        {},
        "Warteliste, Platz 2",
        ["auf Platz 2", "bereits zwei Teilnehmende gefördert"],
    ),
    (
        "funding.waitlisted",
        {"reason": "budget_exhausted"},
        "Warteliste",
        ["Fördermittel des laufenden Förderzeitraums sind derzeit ausgeschöpft"],
    ),
    ("funding.declined", {}, "Förderung abgelehnt", ["nicht förderberechtigt", "Mitgliedsgemeinden"]),
    (
        "funding.declined",
        {"reason": "period_closed"},
        "abgelehnt",
        ["Der Förderzeitraum ist bereits abgeschlossen."],
    ),
    ("funding.released", {}, "Förderung freigegeben", ["500,00 €", "freigegeben"]),
]


@pytest.mark.parametrize(("event_type", "overrides", "subject_says", "body_says"), CASES)
def test_every_letter_reads_like_a_letter_from_the_programme_office(
    event_type: str, overrides: dict[str, Any], subject_says: str, body_says: list[str]
) -> None:
    planned = planned_for(event_type, **overrides)
    message = parse(letter_bytes(planned))

    # A letter that confirms a seat, or withdraws it, carries the calendar entry beside its text.
    expected_type = "multipart/alternative" if planned.calendar is None else "multipart/mixed"
    assert message.get_content_type() == expected_type
    assert subject_says in message["Subject"]
    assert "R-1" in message["Subject"]
    assert message["To"].addresses[0].addr_spec == CONTACT
    assert message["From"].addresses[0].display_name == "Programmbüro Digitallotsen"
    assert message["X-Registration-ID"] == "R-1"
    text, html = parts(message)
    for body in (text, html):
        for phrase in [
            *body_says,
            "Sehr geehrte Damen und Herren",
            "R-1",
            f"{KOMMUNE_NAME} (Landkreis, 03159)",
            "Jürgen Weiß",
            "Kommunale Digitallotsen – Grundlagen",
            "01.02.2023 bis 03.02.2023",
            "Mit freundlichen Grüßen",
            "Niedersächsisches Studieninstitut",
            "Telefon 0511 000000",
            ATTRIBUTION,
        ]:
            assert phrase in body, (phrase, event_type)
        # Real umlauts, never the ASCII stand-ins.
        assert "Gruesse" not in body and "Goettingen" not in body
        assert "None" not in body
    assert "<p>" in html and "<p>" not in text


def test_the_message_id_is_derived_from_the_event_and_the_template() -> None:
    planned = planned_for("funding.approved")
    first = parse(letter_bytes(planned))
    again = parse(letter_bytes(planned))
    expected = notification_id(planned.trigger_event_id, planned.template)
    assert first["Message-ID"] == again["Message-ID"] == f"<{expected}@nsi-hannover.de>"
    assert expected == uuid.uuid5(planned.trigger_event_id, "funding_approved")
    other = parse(letter_bytes(planned_for("funding.approved")))
    assert other["Message-ID"] != first["Message-ID"]


def test_a_letter_is_the_same_bytes_however_often_it_is_built() -> None:
    planned = planned_for("registration.accepted")
    assert letter_bytes(planned) == letter_bytes(planned)


def test_html_escapes_what_the_events_say() -> None:
    data = registered(seminar_title="<script>alert(1)</script> & Co")
    event = envelope("registration.accepted", data)
    planned = plan_email(event, registration_data(event), GOETTINGEN)
    text, html = parts(parse(letter(planned, OFFICE, WORDING).message))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "<script>alert(1)</script> & Co" in text


def test_a_letter_without_known_participant_or_seminar_leaves_those_lines_out() -> None:
    event = envelope("registration.rejected")
    planned = plan_email(event, registration_data(event), GOETTINGEN)
    text, html = parts(parse(letter(planned, OFFICE, WORDING).message))
    for body in (text, html):
        assert "Teilnehmende Person" not in body
        assert "Termin" not in body
        assert "None" not in body
        assert "Die Anmeldung R-1 konnte leider nicht angenommen werden." in body


def test_a_withdrawal_of_a_registration_never_seen_names_the_seminar_by_its_id() -> None:
    event = envelope("registration.withdrawn")
    planned = plan_email(event, registration_data(event), GOETTINGEN)
    text, html = parts(parse(letter(planned, OFFICE, WORDING).message))
    for body in (text, html):
        assert "die Anmeldung R-1 zum Seminar S-2023-02" in body


@pytest.mark.parametrize(
    ("kommune", "label"),
    [
        (NamedKommune("03159", "Göttingen", "Landkreis"), "Göttingen (Landkreis, 03159)"),
        (
            NamedKommune("031590011011", "Göttingen, Stadt", "Einheitsgemeinde"),
            "Göttingen, Stadt (Einheitsgemeinde, 031590011011)",
        ),
        (NamedKommune("09999", "09999"), "09999"),
        (NamedKommune("0315x", "0315x"), "0315x"),
    ],
)
def test_the_kommune_is_named_with_its_kind_and_key(kommune: NamedKommune, label: str) -> None:
    event = envelope("registration.accepted")
    planned = plan_email(event, registration_data(event), kommune)
    text, html = parts(parse(letter(planned, OFFICE, WORDING).message))
    assert f"Kommune:             {label}\r\n" in text
    assert f"<td>{label}</td>" in html
