"""The seminar as an iCalendar entry (RFC 5545, with the iTIP methods of RFC 5546). Pure.

A letter that confirms a seat invites to the seminar (`METHOD:REQUEST`); the withdrawal of that
seat cancels the same entry (`METHOD:CANCEL`, same UID, higher SEQUENCE, STATUS:CANCELLED), so
a calendar that took the invitation removes it. Nothing comes from the clock: DTSTAMP is the
event's time, so the same event gives the same bytes.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from email.headerregistry import Address

from icalendar import Calendar, Event, vCalAddress, vText

from services.notification.domain import SeminarCalendar

PRODUCT_ID = "-//Digitallotsen//Benachrichtigungen//DE"


def method(entry: SeminarCalendar) -> str:
    return "CANCEL" if entry.cancelled else "REQUEST"


def _mailto(address: str, name: str = "") -> vCalAddress:
    mailbox = vCalAddress(f"mailto:{address}")
    if name:
        mailbox.params["CN"] = vText(name)
    return mailbox


def calendar_bytes(entry: SeminarCalendar, organizer: Address, attendee: str) -> bytes:
    """The entry as an iCalendar object: one all-day VEVENT from the first to the last day."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", method(entry))
    event = Event()
    event.add("uid", entry.uid)
    event.add("dtstamp", entry.stamp.astimezone(UTC))
    event.add("dtstart", entry.starts_on)
    event.add("dtend", entry.ends_on + timedelta(days=1))  # DTEND of a date is exclusive
    event.add("summary", entry.title)
    if entry.location:
        event.add("location", entry.location)
    event.add("sequence", entry.sequence)
    event.add("status", "CANCELLED" if entry.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _mailto(organizer.addr_spec, organizer.display_name))
    # The letter's recipient, who puts the seat into a calendar; no reply is asked for.
    attendee_address = _mailto(attendee)
    attendee_address.params["ROLE"] = "REQ-PARTICIPANT"
    attendee_address.params["PARTSTAT"] = "ACCEPTED"
    attendee_address.params["RSVP"] = "FALSE"
    event.add("attendee", attendee_address)
    calendar.add_component(event)
    content: bytes = calendar.to_ical()
    return content
