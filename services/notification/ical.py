"""The seminar as an iCalendar entry (RFC 5545, with the iTIP methods of RFC 5546). Pure.

A letter that confirms a seat invites to the seminar (`METHOD:REQUEST`); the withdrawal of that
seat cancels the same entry (`METHOD:CANCEL`, same UID, higher SEQUENCE, STATUS:CANCELLED), so
a calendar that took the invitation removes it. Nothing comes from the clock: DTSTAMP is the
event's time, so the same event gives the same bytes.

The entry is written here rather than with the icalendar library, which took 225 µs of the
370 µs a letter with an entry costs to compose (docs/adr/0026). It writes the lines icalendar
wrote, in its order; the tests read every entry back with icalendar.
"""

from __future__ import annotations

import re
from datetime import UTC, date, timedelta
from email.headerregistry import Address

from services.notification.domain import SeminarCalendar

PRODUCT_ID = "-//Digitallotsen//Benachrichtigungen//DE"
# A content line's octets before the line break (RFC 5545, 3.1); longer lines are folded.
LINE_OCTETS = 75
FOLD = "\r\n "

LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Control characters other than HTAB may not appear in a TEXT value or a quoted parameter.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
# Where icalendar quoted, and at a tab too: a reader strips unquoted whitespace at the ends.
_QUOTED = re.compile("[ \t,;:\u2019]")


def method(entry: SeminarCalendar) -> str:
    return "CANCEL" if entry.cancelled else "REQUEST"


def text_value(value: str) -> str:
    """A TEXT value (RFC 5545, 3.3.11): backslash, semicolon and comma escaped, line breaks as \\n."""
    escaped = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return CONTROL.sub("", LINE_BREAK.sub("\\\\n", escaped))


def parameter_value(value: str) -> str:
    """A parameter value with RFC 6868's escapes for ^, line breaks and ", quoted where it holds a
    space, tab, comma, semicolon, colon or typographic apostrophe (icalendar quoted all but the tab,
    and read an unquoted tab at either end as nothing), or where it ends with a backslash (which a
    reader takes for an escape of the colon after it)."""
    escaped = LINE_BREAK.sub("^n", value.replace("^", "^^").replace('"', "^'"))
    return f'"{escaped}"' if _QUOTED.search(escaped) or escaped.endswith("\\") else escaped


def fold(line: str) -> str:
    """A content line folded before 75 octets, never inside a UTF-8 character, and never right
    after a backslash or caret (some clients would read the escape wrongly)."""
    if len(line) < LINE_OCTETS and (line.isascii() or len(line.encode()) < LINE_OCTETS):
        return line
    pieces: list[str] = []
    current: list[str] = []
    octets = 0
    for char in line:
        size = 1 if char < "\x80" else len(char.encode())
        if current and octets + size >= LINE_OCTETS:
            carried = current.pop() if len(current) > 1 and current[-1] in "\\^" else None
            pieces.append("".join(current))
            current = [] if carried is None else [carried]
            octets = 0 if carried is None else 1
        current.append(char)
        octets += size
    pieces.append("".join(current))
    return FOLD.join(pieces)


def _date(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def calendar_bytes(entry: SeminarCalendar, organizer: Address, attendee: str) -> bytes:
    """The entry as an iCalendar object: one all-day VEVENT from the first to the last day.

    `organizer` and `attendee` are plain addr-specs (compose.plain_address checks them)."""
    stamp = entry.stamp.astimezone(UTC)
    name = CONTROL.sub("", organizer.display_name)
    organizer_name = f";CN={parameter_value(name)}" if name else ""
    lines = (
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{text_value(PRODUCT_ID)}",
        f"METHOD:{method(entry)}",
        "BEGIN:VEVENT",
        f"SUMMARY:{text_value(entry.title)}",
        f"DTSTART;VALUE=DATE:{_date(entry.starts_on)}",
        # DTEND of a date is exclusive.
        f"DTEND;VALUE=DATE:{_date(entry.ends_on + timedelta(days=1))}",
        f"DTSTAMP:{_date(stamp)}T{stamp.hour:02d}{stamp.minute:02d}{stamp.second:02d}Z",
        f"UID:{text_value(entry.uid)}",
        f"SEQUENCE:{entry.sequence}",
        # The letter's recipient, who puts the seat into a calendar; no reply is asked for.
        f"ATTENDEE;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=FALSE:mailto:{attendee}",
        *((f"LOCATION:{text_value(entry.location)}",) if entry.location else ()),
        f"ORGANIZER{organizer_name}:mailto:{organizer.addr_spec}",
        f"STATUS:{'CANCELLED' if entry.cancelled else 'CONFIRMED'}",
        "TRANSP:OPAQUE",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    return "".join(fold(line) + "\r\n" for line in lines).encode()
