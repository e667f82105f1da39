"""Header injection: names, subjects and addresses cannot add headers or recipients."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notification.compose import (
    UnsafeAddressError,
    compose,
    safe_address,
    sender_address,
    single_line,
)
from services.notification.settings import NotificationSettings
from services.notification.templates import RenderedEmail
from tests.unit.notification.letters import parse

SENDER = safe_address("digitallotsen@nsi-hannover.de", "Programmbüro Digitallotsen")
EXPECTED_HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "X-Registration-ID",
    "Auto-Submitted",
    "Content-Language",
    "Content-Type",
    "MIME-Version",
}
TRICKS = [
    "Weiß\r\nBcc: attacker@evil.example",
    "Weiß\nBcc: attacker@evil.example",
    "Weiß\rBcc: attacker@evil.example",
    "Weiß\r\n\r\n<html>body injected</html>",
    "Weiß\u2028Bcc: attacker@evil.example",
    "Weiß\x85Bcc: attacker@evil.example",
    "Weiß\x00\x0bBcc: attacker@evil.example",
    "=?utf-8?q?Wei=C3=9F=0D=0ABcc=3A_attacker=40evil=2Eexample?=",
]


def build(
    subject: str = "Betreff", recipient: str = "kommune@example.org", registration_id: str = "R-1"
) -> bytes:
    message = compose(
        sender=SENDER,
        recipient=recipient,
        rendered=RenderedEmail(subject=subject, text="Text", html="<p>Text</p>"),
        message_id=f"<{uuid.uuid4()}@nsi-hannover.de>",
        registration_id=registration_id,
        date=datetime(2023, 1, 15, tzinfo=UTC),
    )
    return message.as_bytes()


def assert_no_injected_headers(raw: bytes) -> None:
    message = parse(raw)
    assert set(message.keys()) == EXPECTED_HEADERS
    assert [a.addr_spec for a in message["To"].addresses] == ["kommune@example.org"]
    assert "Bcc" not in message
    header_block = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for line in header_block.split("\r\n"):
        assert not line.lower().startswith("bcc:")


@pytest.mark.parametrize("trick", TRICKS)
def test_a_subject_cannot_add_headers(trick: str) -> None:
    raw = build(subject=trick)
    assert_no_injected_headers(raw)
    assert "\n" not in parse(raw)["Subject"]


@pytest.mark.parametrize("trick", TRICKS)
def test_a_registration_id_cannot_add_headers(trick: str) -> None:
    assert_no_injected_headers(build(registration_id=trick))


@pytest.mark.parametrize("trick", TRICKS)
def test_a_display_name_cannot_add_headers(trick: str) -> None:
    address = safe_address("kommune@example.org", trick)
    assert "\n" not in address.display_name and "\r" not in address.display_name
    message = compose(
        sender=safe_address("digitallotsen@nsi-hannover.de", trick),
        recipient="kommune@example.org",
        rendered=RenderedEmail(subject="Betreff", text="Text", html="<p>Text</p>"),
        message_id="<x@nsi-hannover.de>",
        registration_id="R-1",
        date=datetime(2023, 1, 15, tzinfo=UTC),
    )
    parsed = parse(message.as_bytes())
    assert set(parsed.keys()) == EXPECTED_HEADERS
    assert [a.addr_spec for a in parsed["From"].addresses] == ["digitallotsen@nsi-hannover.de"]


@pytest.mark.parametrize(
    "address",
    [
        "kommune@example.org\r\nBcc: attacker@evil.example",
        "kommune@example.org\nBcc: attacker@evil.example",
        "kommune@example.org, attacker@evil.example",
        "Kommune <kommune@example.org>",
        "kommune@example.org>\r\nBcc:<attacker@evil.example",
        "kommune",
        "",
        "a@b",
        "kömmune@example.org",
    ],
)
def test_a_recipient_must_be_one_plain_address(address: str) -> None:
    with pytest.raises(UnsafeAddressError):
        build(recipient=address)


@pytest.mark.parametrize(
    "mail_from",
    [
        "Programmbüro\r\nBcc: attacker@evil.example <digitallotsen@nsi-hannover.de>",
        "Programmbüro <digitallotsen@nsi-hannover.de>\nBcc: attacker@evil.example",
        "Programmbüro Digitallotsen",
    ],
)
def test_mail_from_with_header_tricks_is_refused_at_startup(mail_from: str) -> None:
    with pytest.raises(ValueError):
        sender_address(mail_from)
    with pytest.raises(ValueError):
        NotificationSettings(mail_from=mail_from)


def test_mail_from_keeps_its_display_name_with_umlauts() -> None:
    sender = NotificationSettings(
        mail_from="Programmbüro Digitallotsen <digitallotsen@nsi-hannover.de>"
    ).sender
    assert sender.display_name == "Programmbüro Digitallotsen"
    assert sender.addr_spec == "digitallotsen@nsi-hannover.de"


@given(st.text())
def test_single_line_never_leaves_a_line_break(value: str) -> None:
    cleaned = single_line(value)
    assert not any(ch in cleaned for ch in "\r\n\x00\x0b\x0c\x85\u2028\u2029")


@given(st.text(max_size=300))
def test_no_subject_whatsoever_adds_a_header(subject: str) -> None:
    parsed = parse(build(subject=subject))
    assert set(parsed.keys()) == EXPECTED_HEADERS
