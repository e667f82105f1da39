"""Building the email itself: headers and a plain-text + HTML body, safe against header injection.

Every value that ends up in a header passes through here: display names and subjects lose line
breaks and control characters (`single_line`), addresses must be plain addr-specs
(`safe_address`). The message is written out directly rather than through
`email.message.EmailMessage`, whose header policy machinery cost milliseconds per letter: header
lines are folded at spaces to at most 76 characters, text that is not plain ASCII goes into
RFC 2047 encoded words, and both bodies are UTF-8 in quoted-printable, so the message is 7-bit
clean. Nothing in a header value can end its line: the only line breaks are the folds written
here, each followed by a space.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime, parseaddr
from typing import Any

from services.notification.domain import NewEmail, PlannedEmail, planned_email_from_json
from services.notification.ical import calendar_bytes, method
from services.notification.templates import (
    ProgrammeWording,
    RenderedEmail,
    reason_text,
    render,
    subject_for,
)
from shared.directory import ATTRIBUTION

_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ADDR_SPEC = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# RFC 5322 atext: a display name made of such words needs no quoting.
_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")

# Header lines are folded before 76 characters (RFC 2047 2; RFC 5322 2.1.1 allows 78), never
# right after the colon (a reader would keep the fold's space in a text). Encoded words are
# short enough to fit on the first line of the longest field name. An ASCII word of a text stays
# as it is, however long: an id is meant to be read by programs as written; a line must only stay
# within 998 characters.
_MAX_LINE = 76  # RFC 2047 2: a line with encoded words holds at most 76 characters
_MAX_WORD = _MAX_LINE - len("X-Registration-ID: ")
_MAX_ASCII_WORD = 900
# RFC 2047 Q encoding with only the characters allowed in a phrase (5.3): the same words then
# serve display names and unstructured text.
_Q_SAFE = frozenset(string.ascii_letters + string.digits + "!*+-/")
_Q_BYTE = tuple(chr(b) if chr(b) in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256))
_Q_PREFIX, _Q_SUFFIX = "=?utf-8?q?", "?="
_MAX_Q_PAYLOAD = _MAX_WORD - len(_Q_PREFIX) - len(_Q_SUFFIX)
_CRLF = "\r\n"


class UnsafeAddressError(ValueError):
    """An address that is not a plain addr-spec: it could smuggle headers or recipients."""


@dataclass(frozen=True)
class Office:
    """Who signs the letters: the programme office."""

    sender: Address
    name: str
    organisation: str
    signature_lines: tuple[str, ...] = ()
    address_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attachment:
    """A calendar entry carried by a letter."""

    method: str  # iTIP: REQUEST or CANCEL
    content: bytes  # the iCalendar object, UTF-8, CRLF line ends
    filename: str = "seminar.ics"


@dataclass(frozen=True)
class Letter:
    """A composed email: the subject as readers see it, and the message as sent over SMTP."""

    subject: str
    message: bytes  # RFC 5322, CRLF line ends, 7-bit


def single_line(value: str) -> str:
    """A header text without line breaks or control characters: they become single spaces.

    "=?" is broken up too: readers would decode a literal RFC 2047 encoded word, which can hold
    any text, line breaks included.
    """
    return " ".join(_UNSAFE_IN_HEADER.sub(" ", value).replace("=?", "= ?").split())


def plain_address(addr_spec: str) -> str:
    """The address itself if it is a plain addr-spec (safe in a header and an SMTP command)."""
    if len(addr_spec) > 254 or not _ADDR_SPEC.fullmatch(addr_spec):
        raise UnsafeAddressError(f"not a plain email address: {addr_spec!r}")
    return addr_spec


def safe_address(addr_spec: str, display_name: str = "") -> Address:
    username, _, domain = plain_address(addr_spec).rpartition("@")
    return Address(display_name=single_line(display_name), username=username, domain=domain)


def sender_address(mail_from: str) -> Address:
    """MAIL_FROM ("Name <addr>") as a header-safe Address; line breaks or no address are refused."""
    if _UNSAFE_IN_HEADER.search(mail_from):
        raise UnsafeAddressError("MAIL_FROM must not contain control characters or line breaks")
    name, addr_spec = parseaddr(mail_from)
    return safe_address(addr_spec, name)


def notification_id(event_id: uuid.UUID, template: str) -> uuid.UUID:
    """One id per (triggering event, template): the email's key, and the root of its Message-ID."""
    return uuid.uuid5(event_id, template)


def message_id(event_id: uuid.UUID, template: str, domain: str) -> str:
    return f"<{notification_id(event_id, template)}@{single_line(domain)}>"


def _encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 Q-encoded UTF-8 words; a character never straddles two words.

    Readers drop the white space between adjacent encoded words, so the words stand for `text`
    exactly, its spaces included.
    """
    words: list[str] = []
    payload = ""
    for char in text:
        encoded = char if char in _Q_SAFE else "".join(_Q_BYTE[b] for b in char.encode())
        if len(payload) + len(encoded) > _MAX_Q_PAYLOAD:
            words.append(_Q_PREFIX + payload + _Q_SUFFIX)
            payload = ""
        payload += encoded
    if payload:
        words.append(_Q_PREFIX + payload + _Q_SUFFIX)
    return words


def _header(name: str, tokens: Sequence[str]) -> str:
    """One header field, its tokens separated by spaces and folded before the space that would
    make a line longer than 76 characters (a longer token, an address, keeps a line of its own)."""
    line = name + ":"
    lines: list[str] = []
    for index, token in enumerate(tokens):
        if index and len(line) + 1 + len(token) > _MAX_LINE:
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return _CRLF.join(lines) + _CRLF


def _words(text: str, plain: Callable[[str], bool]) -> list[str]:
    """The words of a single-line text, those that are not `plain` as RFC 2047 encoded words.

    Neighbouring words that need encoding are encoded together, with the space between them,
    because readers drop the white space between two encoded words.
    """
    tokens: list[str] = []
    encode: list[str] = []
    for word in text.split(" ") if text else ():
        if plain(word):
            if encode:
                tokens.extend(_encoded_words(" ".join(encode)))
                encode = []
            tokens.append(word)
        else:
            encode.append(word)
    if encode:
        tokens.extend(_encoded_words(" ".join(encode)))
    return tokens


def _plain_text(word: str) -> bool:
    return word.isascii() and len(word) <= _MAX_ASCII_WORD


def _atom(word: str) -> bool:
    return word.isascii() and len(word) <= _MAX_WORD and _ATOM.fullmatch(word) is not None


def _unstructured(name: str, value: str) -> str:
    """A text header (RFC 5322 unstructured): ASCII words as they are, the others encoded."""
    return _header(name, _words(single_line(value), _plain_text))


@functools.lru_cache(maxsize=1024)
def _mailbox(name: str, display_name: str, addr_spec: str) -> str:
    """An address header with one mailbox: `Display Name <addr-spec>`, or the bare addr-spec.

    The name is written as atoms where it can be, as one quoted string if it is ASCII with
    special characters, and encoded where it is not ASCII. Cached: the sender is the same in
    every letter, and a Kommune gets several letters.
    """
    plain_address(addr_spec)
    display_name = single_line(display_name)
    if not display_name:
        return _header(name, [addr_spec])
    quoted = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if (
        display_name.isascii()
        and _ATOM.fullmatch(display_name.replace(" ", "")) is None
        and len(quoted) <= _MAX_WORD
    ):
        phrase = [quoted]
    else:
        phrase = _words(display_name, _atom)
    return _header(name, [*phrase, f"<{addr_spec}>"])


def _text_part(subtype: str, text: str) -> bytes:
    """A UTF-8 text part in quoted-printable, its line breaks made CRLF, ending in a line break."""
    # Trailing white space carries nothing in a text or HTML line, and binascii would encode it
    # past the 76 characters a quoted-printable line may have.
    body = b"\r\n".join(line.rstrip() for line in text.encode().splitlines()) + b"\r\n"
    headers = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return headers.encode("ascii") + binascii.b2a_qp(body)


def _calendar_part(attachment: Attachment) -> bytes:
    """The calendar entry in base64, lines of 76 characters, ending in a line break."""
    encoded = base64.b64encode(attachment.content).decode("ascii")
    lines = [encoded[start : start + 76] for start in range(0, len(encoded), 76)]
    headers = (
        f'Content-Type: text/calendar; charset="utf-8"; method={attachment.method};\r\n'
        f' name="{attachment.filename}"\r\n'
        f'Content-Disposition: attachment; filename="{attachment.filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return (headers + "\r\n".join(lines) + "\r\n").encode("ascii")


def compose(
    *,
    sender: Address,
    recipient: str,
    rendered: RenderedEmail,
    message_id: str,
    registration_id: str,
    date: datetime,
    attachment: Attachment | None = None,
) -> Letter:
    # A fixed boundary makes the bytes reproducible. It starts with "==", which quoted-printable
    # and base64 lines never hold ("=" is always followed by two hex digits or the line's end;
    # base64 pads at the end only). The outer boundary of a letter with an attachment adds "m-",
    # so that neither boundary begins with the other.
    token = re.sub(r"[^A-Za-z0-9]", "", message_id)[:56]
    boundary = "==lotse-" + token
    subject = single_line(rendered.subject)
    headers = "".join(
        (
            _mailbox("From", sender.display_name, sender.addr_spec),
            _mailbox("To", "", recipient),
            _unstructured("Subject", subject),
            _header("Date", [format_datetime(date)]),
            _unstructured("Message-ID", message_id),
            _unstructured("X-Registration-ID", registration_id),
            "Auto-Submitted: auto-generated\r\n",
            "MIME-Version: 1.0\r\n",
        )
    )
    alternative_type = _header("Content-Type", ["multipart/alternative;", f'boundary="{boundary}"'])
    delimiter = f"--{boundary}\r\n".encode("ascii")
    alternative = b"".join(
        (
            delimiter,
            _text_part("plain", rendered.text),
            b"\r\n",
            delimiter,
            _text_part("html", rendered.html),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )
    if attachment is None:
        message = b"".join(
            (
                headers.encode("ascii"),
                alternative_type.encode("ascii"),
                b"Content-Language: de\r\n\r\n",
                alternative,
            )
        )
        return Letter(subject=subject, message=message)
    outer = "==lotse-m-" + token
    outer_delimiter = f"--{outer}\r\n".encode("ascii")
    message = b"".join(
        (
            headers.encode("ascii"),
            _header("Content-Type", ["multipart/mixed;", f'boundary="{outer}"']).encode("ascii"),
            b"Content-Language: de\r\n\r\n",
            outer_delimiter,
            alternative_type.encode("ascii"),
            b"\r\n",
            alternative,
            b"\r\n",
            outer_delimiter,
            _calendar_part(attachment),
            f"\r\n--{outer}--\r\n".encode("ascii"),
        )
    )
    return Letter(subject=subject, message=message)


def _context(planned: PlannedEmail, office: Office, wording: ProgrammeWording) -> dict[str, Any]:
    reason = planned.facts.get("reason")
    return {
        **planned.facts,
        **wording.course_context(planned.facts.get("course")),
        "reason_text": (
            reason_text(planned.facts["event_type"], reason, wording) if reason is not None else None
        ),
        "office_name": office.name,
        "office_organisation": office.organisation,
        "office_address_lines": office.address_lines,
        "signature_lines": office.signature_lines,
        "attribution": ATTRIBUTION,
    }


def letter(planned: PlannedEmail, office: Office, wording: ProgrammeWording) -> Letter:
    """The complete email for a planned notification, identical however often it is built."""
    attachment = None
    if planned.calendar is not None:
        attachment = Attachment(
            method=method(planned.calendar),
            content=calendar_bytes(planned.calendar, office.sender, planned.to),
        )
    return compose(
        sender=office.sender,
        recipient=planned.to,
        rendered=render(planned.template, _context(planned, office, wording)),
        message_id=message_id(planned.trigger_event_id, planned.template, office.sender.domain),
        registration_id=planned.registration_id,
        date=planned.occurred_at,
        attachment=attachment,
    )


def letter_subject(planned: PlannedEmail, office: Office, wording: ProgrammeWording) -> str:
    """The subject `letter` writes, without composing the rest."""
    return single_line(subject_for(planned.template, _context(planned, office, wording)))


class EmailWriter:
    """Records the email a planned notification asks for: its subject and recipient for operators,
    and the facts it is composed from when it is sent (ADR 0024). The address is checked here, so
    that a letter that could never be sent is refused with its event, not parked later."""

    def __init__(self, office: Office, wording: ProgrammeWording) -> None:
        self._office = office
        self._wording = wording

    def __call__(self, planned: PlannedEmail) -> NewEmail:
        return NewEmail(
            id=notification_id(planned.trigger_event_id, planned.template),
            event_id=planned.trigger_event_id,
            template=planned.template,
            registration_id=planned.registration_id,
            kommune_key=planned.kommune_key,
            recipient=plain_address(planned.to),
            subject=letter_subject(planned, self._office, self._wording),
            planned=planned,
            correlation_id=planned.correlation_id,
        )


class LetterComposer:
    """Composes a recorded email's message at send time from its stored facts (ADR 0024)."""

    def __init__(self, office: Office, wording: ProgrammeWording) -> None:
        self._office = office
        self._wording = wording

    def __call__(self, stored_facts: str) -> bytes:
        return letter(planned_email_from_json(stored_facts), self._office, self._wording).message
