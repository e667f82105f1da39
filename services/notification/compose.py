"""Building the email itself: headers and a plain-text + HTML body, safe against header injection.

Every value that ends up in a header passes through here: display names and subjects lose line
breaks and control characters, addresses must be plain addr-specs, and the message is built with
`email.message.EmailMessage` under the SMTP policy, which refuses CR/LF in header values anyway.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from services.notification.domain import PlannedEmail
from services.notification.templates import RenderedEmail, render
from shared.directory import ATTRIBUTION

_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ADDR_SPEC = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


class UnsafeAddressError(ValueError):
    """An address that is not a plain addr-spec: it could smuggle headers or recipients."""


@dataclass(frozen=True)
class Office:
    """Who signs the letters: the programme office."""

    sender: Address
    name: str
    organisation: str
    signature_lines: tuple[str, ...] = ()


def single_line(value: str) -> str:
    """A header text without line breaks or control characters: they become single spaces.

    "=?" is broken up too: readers would decode a literal RFC 2047 encoded word, which can hold
    any text, line breaks included.
    """
    return " ".join(_UNSAFE_IN_HEADER.sub(" ", value).replace("=?", "= ?").split())


def safe_address(addr_spec: str, display_name: str = "") -> Address:
    if len(addr_spec) > 254 or not _ADDR_SPEC.match(addr_spec):
        raise UnsafeAddressError(f"not a plain email address: {addr_spec!r}")
    username, _, domain = addr_spec.rpartition("@")
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


def compose(
    *,
    sender: Address,
    recipient: str,
    rendered: RenderedEmail,
    message_id: str,
    registration_id: str,
    date: datetime,
) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = safe_address(recipient)
    message["Subject"] = single_line(rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = single_line(message_id)
    message["X-Registration-ID"] = single_line(registration_id)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    # Set after the bodies: turning the message into multipart moves Content-* headers into a part.
    message["Content-Language"] = "de"
    # A fixed boundary makes the bytes reproducible; the id's characters never occur in the
    # quoted-printable or base64 encoded parts' lines on their own.
    message.set_boundary("==lotse-" + re.sub(r"[^A-Za-z0-9]", "", message_id)[:60])
    return message


def letter(planned: PlannedEmail, office: Office) -> EmailMessage:
    """The complete email for a planned notification, identical however often it is built."""
    context = {
        **planned.facts,
        "office_name": office.name,
        "office_organisation": office.organisation,
        "signature_lines": office.signature_lines,
        "attribution": ATTRIBUTION,
    }
    return compose(
        sender=office.sender,
        recipient=planned.to,
        rendered=render(planned.template, context),
        message_id=message_id(planned.trigger_event_id, planned.template, office.sender.domain),
        registration_id=planned.registration_id,
        date=planned.occurred_at,
    )
