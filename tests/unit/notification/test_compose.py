"""Header injection: names, subjects and addresses cannot add headers or recipients; and every
header and both bodies read back, through the standard library's parser, as they were given."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notification.compose import (
    Letter,
    UnsafeAddressError,
    compose,
    safe_address,
    sender_address,
    single_line,
)
from services.notification.settings import NotificationSettings
from services.notification.templates import RenderedEmail
from tests.unit.notification.letters import parse, parts

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
    *,
    subject: str = "Betreff",
    recipient: str = "kommune@example.org",
    registration_id: str = "R-1",
    sender: Address = SENDER,
    text: str = "Text",
    html: str = "<p>Text</p>",
) -> bytes:
    message = compose(
        sender=sender,
        recipient=recipient,
        rendered=RenderedEmail(subject=subject, text=text, html=html),
        message_id=f"<{uuid.uuid4()}@nsi-hannover.de>",
        registration_id=registration_id,
        date=datetime(2023, 1, 15, tzinfo=UTC),
    )
    return message.message


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
    parsed = parse(message.message)
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
        "kommune@example.org\n",  # `$` of a Python pattern matches before a final line feed
        "kommune@exаmple.org",  # a Cyrillic а that looks like a Latin a
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


def read_back(raw: bytes) -> EmailMessage:
    """How a receiving system reads the message: the standard library's current policy."""
    return email.message_from_bytes(raw, policy=email.policy.default)


def as_sent(body: str) -> str:
    """A body as it travels: every line break CRLF, no white space at a line's end (it carries
    nothing, and quoted-printable would have to encode it), and a line break at its end."""
    lines = [line.rstrip(b" \t\x0b\x0c") for line in body.encode().splitlines()]
    return b"".join(line + b"\r\n" for line in lines or [b""]).decode()


def header_lines(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")


def folded(raw: bytes) -> bool:
    """Header lines within 76 characters, but for a single long word (an address, an id), which
    keeps a line of its own, within 998."""
    return all(len(line) <= 76 or (len(line) <= 998 and len(line.split()) <= 2) for line in header_lines(raw))


GERMAN_TEXT = (
    "Sehr geehrte Damen und Herren,\n\nwir freuen uns, Ihnen mitzuteilen, dass das Land Niedersachsen "
    "die Teilnahme fördert: 1.234,56 € für Jürgen Weiß zum Seminar „Kommunale Digitallotsen – "
    "Grundlagen“ (01.02.2023 bis 03.02.2023).\n\n  Kommune:             Göttingen (Landkreis, 03159)\n"
    "Zeile mit = Zeichen und Leerzeichen am Ende   \n.\nFrom here\n-- \nMit freundlichen Grüßen\n"
)
GERMAN_HTML = (
    '<!DOCTYPE html>\n<html lang="de">\n<p>Mit freundlichen Grüßen</p>\n<td>Göttingen</td>\n</html>\n'
)


def test_every_header_and_both_bodies_read_back_as_given() -> None:
    subject = "Förderung bewilligt: 1.234,56 € Landesförderung (Anmeldung R-1)"
    message_id = "<6b9c1a8e-5d0b-5f65-9b43-0c6a4a3b3b61@nsi-hannover.de>"
    sent_on = datetime(2023, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    composed = compose(
        sender=SENDER,
        recipient="digitalisierung@landkreisgoettingen.de",
        rendered=RenderedEmail(subject=subject, text=GERMAN_TEXT, html=GERMAN_HTML),
        message_id=message_id,
        registration_id="R-1",
        date=sent_on,
    )
    assert composed.subject == subject
    raw = composed.message
    assert raw.isascii()
    assert all(len(line) <= 76 for line in header_lines(raw))
    message = read_back(raw)
    assert set(message.keys()) == EXPECTED_HEADERS
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (
        "Programmbüro Digitallotsen",
        "digitallotsen@nsi-hannover.de",
    )
    assert [a.addr_spec for a in message["To"].addresses] == ["digitalisierung@landkreisgoettingen.de"]
    assert message["To"].addresses[0].display_name == ""
    assert message["Subject"] == subject
    assert message["Date"].datetime == sent_on
    assert message["Message-ID"] == message_id
    assert message["X-Registration-ID"] == "R-1"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "de"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_boundary() == "==lotse-6b9c1a8e5d0b5f659b430c6a4a3b3b61nsihannoverde"
    assert [(part.get_content_type(), part.get_content_charset()) for part in message.iter_parts()] == [
        ("text/plain", "utf-8"),
        ("text/html", "utf-8"),
    ]
    assert all(part["Content-Transfer-Encoding"] == "quoted-printable" for part in message.iter_parts())
    assert parts(message) == (as_sent(GERMAN_TEXT), as_sent(GERMAN_HTML))
    # The strict parser, as the tests' SMTP sink reads it, finds no defect either.
    assert parts(parse(raw)) == (as_sent(GERMAN_TEXT), as_sent(GERMAN_HTML))


def test_the_same_letter_is_the_same_bytes() -> None:
    def once() -> Letter:
        return compose(
            sender=SENDER,
            recipient="kommune@example.org",
            rendered=RenderedEmail(subject="Förderung", text=GERMAN_TEXT, html=GERMAN_HTML),
            message_id="<x@nsi-hannover.de>",
            registration_id="R-1",
            date=datetime(2023, 1, 15, tzinfo=UTC),
        )

    assert once() == once()


def unfolded(raw: bytes, name: str) -> str:
    """A header's value as written, its folds undone."""
    block = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ")
    (line,) = [line for line in block.split("\r\n") if line.startswith(f"{name}:")]
    return line.removeprefix(f"{name}:").strip()


def display_name_per_rfc(raw: bytes) -> str:
    """The From display name as RFC 2047 has readers decode it: the white space between two
    encoded words is dropped (Python's address parser keeps it, in names longer than one word)."""
    value = unfolded(raw, "From")
    if not value.endswith(">"):
        return ""
    phrase = value.rsplit(" <", 1)[0]
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return str(make_header(decode_header(phrase)))


@pytest.mark.parametrize(
    ("display_name", "written_as"),
    [
        ("Programmbüro Digitallotsen", "=?utf-8?q?Programmb=C3=BCro?= Digitallotsen"),
        ("Förderstelle Süd", "=?utf-8?q?F=C3=B6rderstelle_S=C3=BCd?="),
        ("Digitallotsen", "Digitallotsen"),
        ("Studieninstitut e. V.", '"Studieninstitut e. V."'),
        ('Büro "Nord", Referat 3', "=?utf-8?q?B=C3=BCro_=22Nord=22=2C?= Referat 3"),
        ('Referat "3" \\ Nord', '"Referat \\"3\\" \\\\ Nord"'),
        ("", ""),
    ],
)
def test_a_display_name_is_atoms_a_quoted_string_or_encoded(display_name: str, written_as: str) -> None:
    raw = build(sender=safe_address("digitallotsen@nsi-hannover.de", display_name))
    expected = (
        f"{written_as} <digitallotsen@nsi-hannover.de>" if written_as else "digitallotsen@nsi-hannover.de"
    )
    assert unfolded(raw, "From") == expected
    assert read_back(raw)["From"].addresses[0].display_name == display_name
    assert display_name_per_rfc(raw) == display_name


@pytest.mark.parametrize(
    "message_id",
    [
        "<6b9c1a8e-5d0b-5f65-9b43-0c6a4a3b3b61@nsi-hannover.de>",
        "<6b9c1a8e-5d0b-5f65-9b43-0c6a4a3b3b61@digitallotsen.studieninstitut-niedersachsen.example>",
    ],
)
def test_ids_are_written_as_they_are(message_id: str) -> None:
    registration_id = "R-" + "0123456789" * 9
    composed = compose(
        sender=SENDER,
        recipient="kommune@example.org",
        rendered=RenderedEmail(subject="Betreff", text="Text", html="<p>Text</p>"),
        message_id=message_id,
        registration_id=registration_id,
        date=datetime(2023, 1, 15, tzinfo=UTC),
    )
    assert f"\r\nMessage-ID: {message_id}\r\n".encode() in composed.message
    assert f"\r\nX-Registration-ID: {registration_id}\r\n".encode() in composed.message
    message = read_back(composed.message)
    assert (message["Message-ID"], message["X-Registration-ID"]) == (message_id, registration_id)


@given(st.text(max_size=300), st.text(max_size=100), st.text(max_size=100))
def test_any_subject_registration_id_and_display_name_read_back_as_one_line(
    subject: str, registration_id: str, display_name: str
) -> None:
    raw = build(
        subject=subject,
        registration_id=registration_id,
        sender=safe_address("digitallotsen@nsi-hannover.de", display_name),
    )
    assert raw.isascii()
    assert folded(raw)
    message = read_back(raw)
    assert set(message.keys()) == EXPECTED_HEADERS
    assert message["Subject"] == single_line(subject)
    assert message["X-Registration-ID"] == single_line(registration_id)
    assert [a.addr_spec for a in message["From"].addresses] == ["digitallotsen@nsi-hannover.de"]
    assert [a.addr_spec for a in message["To"].addresses] == ["kommune@example.org"]
    assert display_name_per_rfc(raw) == single_line(display_name)


@given(st.text(), st.text())
def test_any_body_reads_back_with_its_line_breaks_made_crlf(text: str, html: str) -> None:
    raw = build(text=text, html=html)
    assert raw.isascii()
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert all(len(line) <= 76 for line in body_lines)  # quoted-printable's limit (RFC 2045 6.7)
    assert parts(read_back(raw)) == (as_sent(text), as_sent(html))
