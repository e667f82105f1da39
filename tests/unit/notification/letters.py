"""Building and parsing letters in unit tests."""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import strict
from typing import Any, cast

from services.notification.compose import EmailWriter, Office, letter, safe_address
from services.notification.domain import NamedKommune, NewEmail, PlannedEmail, plan_email, registration_data
from services.notification.templates import ProgrammeWording
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from tests.unit.notification.samples import KOMMUNE_KEY, KOMMUNE_NAME, envelope, event_data

OFFICE = Office(
    sender=safe_address("digitallotsen@nsi-hannover.de", "Programmbüro Digitallotsen"),
    name="Programmbüro Digitallotsen",
    organisation="Niedersächsisches Studieninstitut für kommunale Verwaltung e. V.",
    signature_lines=("Telefon 0511 000000",),
)
# Niedersachsen's programme, whose file holds the wording the letters had before it was data.
WORDING = ProgrammeWording.of(load_program(DEFAULT_PROGRAM_FILE))
GOETTINGEN = NamedKommune(KOMMUNE_KEY, KOMMUNE_NAME, "Landkreis")


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=strict).parsebytes(raw)


def planned_for(event_type: str, **overrides: Any) -> PlannedEmail:
    known = registration_data(envelope("registration.accepted"))
    planned = plan_email(envelope(event_type, event_data(event_type, **overrides)), known, GOETTINGEN)
    return planned


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return cast(EmailMessage, text).get_content(), cast(EmailMessage, html).get_content()


def letter_bytes(planned: PlannedEmail) -> bytes:
    return letter(planned, OFFICE, WORDING).message


def recorded_email(registration_id: str = "R-1") -> NewEmail:
    """An acceptance letter as the consumer records it, for an event of its own."""
    return EmailWriter(OFFICE, WORDING)(planned_for("registration.accepted", registration_id=registration_id))
