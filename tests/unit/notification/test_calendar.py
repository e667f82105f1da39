"""The calendar entry of a letter that confirms a seat, and its cancellation on withdrawal."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, cast

import icalendar
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.notification import ical
from services.notification.domain import SeminarCalendar, calendar_uid, plan_email, registration_data
from services.notification.ical import calendar_bytes
from tests.unit.notification.golden_cases import (
    BAYERN,
    LOCATION,
    NIEDERSACHSEN,
    Programme,
    planned,
    render,
)
from tests.unit.notification.samples import envelope, event_data


def message_of(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    return message


def calendar_of(raw: bytes) -> tuple[EmailMessage, icalendar.Calendar]:
    message = message_of(raw)
    parts = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    part = parts[0]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part, icalendar.Calendar.from_ical(payload)


def only_event(calendar: icalendar.Calendar) -> icalendar.Event:
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return cast(icalendar.Event, events[0])


def accepted(programme: Programme = NIEDERSACHSEN, **known: Any) -> bytes:
    return render(
        programme, planned(programme, "registration_accepted", "registration.accepted", {}, **known)
    )


def withdrawn(reason: str = "withdrawn_by_portal", **known: Any) -> bytes:
    name = "registration_withdrawn"
    return render(
        NIEDERSACHSEN, planned(NIEDERSACHSEN, name, "registration.withdrawn", {"reason": reason}, **known)
    )


def test_an_acceptance_carries_the_seminar_as_an_invitation() -> None:
    raw = accepted(seminar_location=LOCATION)
    message = message_of(raw)
    assert message.get_content_type() == "multipart/mixed"
    first, attachment = message.iter_parts()
    assert first.get_content_type() == "multipart/alternative"
    assert attachment.get_content_type() == "text/calendar"
    part, calendar = calendar_of(raw)
    assert part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_disposition() == "attachment"
    assert part.get_filename() == "seminar.ics"
    assert str(calendar["METHOD"]) == "REQUEST"
    event = only_event(calendar)
    assert str(event["UID"]) == calendar_uid("R-1", "S-2023-02")
    assert event.decoded("DTSTART") == date(2023, 2, 1)
    assert event.decoded("DTEND") == date(2023, 2, 4)  # exclusive: the day after the last
    assert str(event["SUMMARY"]) == "Kommunale Digitallotsen – Grundlagen"
    assert str(event["LOCATION"]) == LOCATION
    assert str(event["STATUS"]) == "CONFIRMED"
    assert int(event.decoded("SEQUENCE")) == 0
    assert event.decoded("DTSTAMP") == datetime(2023, 1, 15, 9, 30, tzinfo=UTC)
    assert str(event["ORGANIZER"]) == "mailto:digitallotsen@nsi-hannover.de"
    assert str(event["ATTENDEE"]) == "mailto:digitalisierung@landkreisgoettingen.de"


def test_without_a_location_the_entry_has_none() -> None:
    assert "LOCATION" not in only_event(calendar_of(accepted())[1])


@pytest.mark.parametrize("reason", ["withdrawn_by_portal", "seminar_cancelled"])
def test_a_withdrawal_cancels_the_same_entry(reason: str) -> None:
    invitation = only_event(calendar_of(accepted())[1])
    part, calendar = calendar_of(withdrawn(reason))
    assert part.get_param("method") == "CANCEL"
    assert str(calendar["METHOD"]) == "CANCEL"
    cancellation = only_event(calendar)
    assert str(cancellation["UID"]) == str(invitation["UID"])
    assert str(cancellation["STATUS"]) == "CANCELLED"
    assert int(cancellation.decoded("SEQUENCE")) > int(invitation.decoded("SEQUENCE"))
    assert cancellation.decoded("DTSTART") == invitation.decoded("DTSTART")


def test_the_uid_differs_by_registration_and_by_seminar() -> None:
    uids = {calendar_uid("R-1", "S-1"), calendar_uid("R-2", "S-1"), calendar_uid("R-1", "S-2")}
    assert len(uids) == 3
    assert calendar_uid("R-1", "S-1") == calendar_uid("R-1", "S-1")


def test_the_letter_with_its_entry_is_the_same_bytes_however_often_it_is_built() -> None:
    assert accepted(seminar_location=LOCATION) == accepted(seminar_location=LOCATION)
    assert withdrawn() == withdrawn()


def test_the_entry_is_signed_by_the_programmes_office() -> None:
    event = only_event(calendar_of(accepted(BAYERN))[1])
    assert str(event["ORGANIZER"]) == "mailto:digitallotsen@bvs.example"


def test_a_withdrawal_without_a_confirmed_seat_carries_no_entry() -> None:
    known = registration_data(envelope("registration.waitlisted"))
    planned_email = plan_email(envelope("registration.withdrawn"), known, NIEDERSACHSEN.kommune)
    assert planned_email.calendar is None
    assert message_of(render(NIEDERSACHSEN, planned_email)).get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    "event_type", ["registration.waitlisted", "registration.rejected", "funding.approved"]
)
def test_letters_that_confirm_no_seat_carry_no_entry(event_type: str) -> None:
    known = registration_data(envelope("registration.accepted"))
    planned_email = plan_email(envelope(event_type, event_data(event_type)), known, NIEDERSACHSEN.kommune)
    assert planned_email.calendar is None


def test_the_location_is_read_from_the_event_where_it_carries_one() -> None:
    event = envelope("registration.accepted")
    with_location = event.model_copy(
        update={"data": event.data.model_copy(update={"seminar_location": LOCATION})}
    )
    assert registration_data(with_location).seminar_location == LOCATION
    assert registration_data(event).seminar_location is None


# The contract's Text: no control characters.
CONTRACT_TEXT = st.characters(blacklist_categories=("Cc", "Cs"))


@settings(max_examples=60, deadline=None)
@given(
    title=st.text(CONTRACT_TEXT, min_size=1, max_size=200),
    location=st.none() | st.text(CONTRACT_TEXT, min_size=1, max_size=100),
    starts_on=st.dates(min_value=date(2000, 1, 1), max_value=date(2098, 12, 1)),
    days=st.integers(min_value=0, max_value=30),
    cancelled=st.booleans(),
)
def test_any_seminar_reads_back_from_its_entry(
    title: str, location: str | None, starts_on: date, days: int, cancelled: bool
) -> None:
    """Titles and locations come from the portals: whatever text the contract lets through, the
    entry stays one event with exactly these values (icalendar escapes commas, semicolons and
    backslashes)."""
    entry = SeminarCalendar(
        uid=calendar_uid("R-1", "S-1"),
        cancelled=cancelled,
        sequence=1 if cancelled else 0,
        starts_on=starts_on,
        ends_on=starts_on + timedelta(days=days),
        title=title,
        location=location,
        stamp=datetime(2023, 1, 15, 9, 30, tzinfo=UTC),
    )
    raw = calendar_bytes(entry, NIEDERSACHSEN.office.sender, "kommune@example.org")
    raw.decode("utf-8")  # valid UTF-8, as the part's charset says
    event = only_event(icalendar.Calendar.from_ical(raw))
    assert str(event["SUMMARY"]) == title
    assert (str(event["LOCATION"]) if "LOCATION" in event else None) == (location or None)
    assert event.decoded("DTSTART") == starts_on
    assert event.decoded("DTEND") == starts_on + timedelta(days=days + 1)
    assert str(event["UID"]) == entry.uid


# Names as an office's settings may hold them: any text an address's name may be (no line
# breaks), other control characters included.
OFFICE_NAME = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=120)


@settings(max_examples=80, deadline=None)
@given(name=OFFICE_NAME, title=st.text(CONTRACT_TEXT, min_size=1, max_size=200))
@example(name="\t", title="x")  # a reader strips an unquoted tab at either end
@example(name="Amt\t", title="x")
@example(name="\\", title="x")  # unquoted, "CN=\\:mailto:" reads as an escaped colon
@example(name="Amt\\", title="x")
def test_every_line_of_an_entry_fits_and_the_organizer_reads_back(name: str, title: str) -> None:
    """Lines are folded before 75 octets, never inside a UTF-8 character; the organizer's name is
    one parameter (RFC 6868 escapes its quotes and carets; control characters are left out)."""
    entry = SeminarCalendar(
        uid=calendar_uid("R-1", "S-1"),
        cancelled=False,
        sequence=0,
        starts_on=date(2023, 2, 1),
        ends_on=date(2023, 2, 3),
        title=title,
        location=None,
        stamp=datetime(2023, 1, 15, 9, 30, tzinfo=UTC),
    )
    organizer = Address(display_name=name, addr_spec="lotsen@example.org")
    raw = calendar_bytes(entry, organizer, "kommune@example.org")
    assert raw.endswith(b"END:VCALENDAR\r\n")
    physical = raw.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 and b"\r" not in line and b"\n" not in line for line in physical)
    for line in physical:
        line.decode("utf-8")  # no character is cut by a fold
    event = only_event(icalendar.Calendar.from_ical(raw))
    assert str(event["SUMMARY"]) == title
    expected_name = ical.CONTROL.sub("", name)
    if expected_name:
        assert event["ORGANIZER"].params["CN"] == expected_name
    else:
        assert "CN" not in event["ORGANIZER"].params
    assert str(event["ORGANIZER"]) == "mailto:lotsen@example.org"


# The text of real seminars and offices: letters, digits, umlauts, spaces and a little punctuation.
ORDINARY_TEXT = st.text(st.sampled_from("abcxyzABCÄÖÜäöüß 0123456789-–.()/&"), min_size=1, max_size=160)


@settings(max_examples=80, deadline=None)
@given(title=ORDINARY_TEXT, location=st.none() | ORDINARY_TEXT, name=ORDINARY_TEXT)
def test_an_ordinary_entry_is_the_bytes_the_icalendar_library_writes(
    title: str, location: str | None, name: str
) -> None:
    """The entry is written by hand for speed (docs/adr/0026); for ordinary text it is what the
    icalendar library wrote before, byte for byte, so letters did not change with it."""
    entry = SeminarCalendar(
        uid=calendar_uid("R-1", "S-1"),
        cancelled=False,
        sequence=0,
        starts_on=date(2023, 2, 1),
        ends_on=date(2023, 2, 3),
        title=title,
        location=location,
        stamp=datetime(2023, 1, 15, 9, 30, tzinfo=UTC),
    )
    organizer = Address(display_name=name.strip() or "Büro", addr_spec="lotsen@example.org")
    attendee = "digitalisierung@landkreisgoettingen.de"
    assert calendar_bytes(entry, organizer, attendee) == library_calendar(entry, organizer, attendee)


def library_calendar(entry: SeminarCalendar, organizer: Address, attendee: str) -> bytes:
    """The entry as the icalendar library writes it (the way `calendar_bytes` wrote it before)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", ical.PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", ical.method(entry))
    event = icalendar.Event()
    event.add("uid", entry.uid)
    event.add("dtstamp", entry.stamp.astimezone(UTC))
    event.add("dtstart", entry.starts_on)
    event.add("dtend", entry.ends_on + timedelta(days=1))
    event.add("summary", entry.title)
    if entry.location:
        event.add("location", entry.location)
    event.add("sequence", entry.sequence)
    event.add("status", "CANCELLED" if entry.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    organizer_address = icalendar.vCalAddress(f"mailto:{organizer.addr_spec}")
    organizer_address.params["CN"] = icalendar.vText(organizer.display_name)
    event.add("organizer", organizer_address)
    attendee_address = icalendar.vCalAddress(f"mailto:{attendee}")
    attendee_address.params["ROLE"] = "REQ-PARTICIPANT"
    attendee_address.params["PARTSTAT"] = "ACCEPTED"
    attendee_address.params["RSVP"] = "FALSE"
    event.add("attendee", attendee_address)
    calendar.add_component(event)
    content: bytes = calendar.to_ical()
    return content
