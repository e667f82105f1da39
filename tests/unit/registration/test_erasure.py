"""Erased registrations (ADR 0018) in the pure rules and the real appliers over the in-memory
twin: an event of an erased registration is applied as nothing, and nothing of it is published."""

from __future__ import annotations

from typing import Any

import pytest

from services.registration.domain import (
    ErasedIgnored,
    Promoted,
    Registration,
    RegistrationContent,
    SeminarSaved,
    Status,
    Withdrawn,
    publishes,
)
from services.registration.handlers import PortalRegistrationsApplier, PortalSeminarsApplier
from shared.directory import load_directory
from shared.events import Envelope
from shared.settings import DEFAULT_DIRECTORY_FILE
from shared.topics import Topics
from tests.unit.registration.fakes import InMemoryDatabase, consume
from tests.unit.registration.portal_events import cancelled, published, submitted, withdrawal_requested

TOPICS = Topics()
DIRECTORY = load_directory(str(DEFAULT_DIRECTORY_FILE))
SEMINAR = published("S-1", 1)


def _registration(*, erased: bool) -> Registration:
    content = (
        RegistrationContent("03241", "S-1", "", "", "", "")
        if erased
        else RegistrationContent(
            "03241", "S-1", "Alex", "Beispiel", "alex@mail.example", "it@kommune.example"
        )
    )
    return Registration("R-1", Status.ACCEPTED, content, erased=erased)


@pytest.mark.parametrize(
    ("outcome", "published_"),
    [
        (ErasedIgnored("R-1"), False),
        (Withdrawn(_registration(erased=True), "seminar_cancelled"), False),
        (Withdrawn(_registration(erased=False), "seminar_cancelled"), True),
        (SeminarSaved("S-1", 1, stays_cancelled=False), True),
    ],
)
def test_nothing_of_an_erased_registration_is_published(outcome: Any, published_: bool) -> None:
    assert publishes(outcome) is published_


def test_a_promotion_of_an_erased_registration_is_not_published() -> None:
    promoted = Promoted(_registration(erased=True), seminar=None)  # type: ignore[arg-type]
    assert not publishes(promoted)


async def _apply(database: InMemoryDatabase, *events: Envelope[Any]) -> list[str]:
    """Apply portal events one batch per topic run; the event types they published."""
    published_types: list[str] = []
    for event in events:
        if event.event_type.startswith("seminar."):
            messages = await consume(database, TOPICS.portal_seminars, PortalSeminarsApplier(TOPICS), [event])
        else:
            applier = PortalRegistrationsApplier(TOPICS, DIRECTORY)
            messages = await consume(database, TOPICS.portal_registrations, applier, [event])
        published_types += [f"{m.envelope.event_type}:{m.envelope.data.registration_id}" for m in messages]
    return published_types


@pytest.mark.parametrize(
    ("after_erasure", "expected"),
    [
        # The submission again under a new id (a portal that sends it again, a replayed dead letter).
        ("resubmitted", []),
        # A withdrawal: the erased registration keeps its seat; nobody is told.
        ("withdrawn", []),
        # A new registration for the seminar waits as usual: erasing gave no seat back.
        ("other", ["registration.waitlisted:R-2"]),
        # A cancellation withdraws everyone; of the erased registration nothing is published.
        ("cancelled", []),
    ],
)
async def test_an_erased_registration_stays_erased(after_erasure: str, expected: list[str]) -> None:
    database = InMemoryDatabase()
    original = submitted("R-1")
    assert await _apply(database, SEMINAR, original) == ["registration.accepted:R-1"]
    database.tables.erase({"R-1"})
    following = {
        "resubmitted": submitted("R-1"),
        "withdrawn": withdrawal_requested("R-1"),
        "other": submitted("R-2"),
        "cancelled": cancelled("S-1"),
    }[after_erasure]
    assert await _apply(database, following) == expected
    row = database.tables.registrations["R-1"]
    assert (row.content.given_name, row.content.participant_email, row.erased) == ("", "", True)
    expected_status = Status.WITHDRAWN if after_erasure == "cancelled" else Status.ACCEPTED
    assert row.status is expected_status


async def test_a_submission_of_an_erased_id_it_never_stored_is_not_stored() -> None:
    """A dead-lettered submission erased before it was replayed: the marker alone keeps it out."""
    database = InMemoryDatabase()
    await _apply(database, SEMINAR)
    database.tables.erase({"R-9"})
    assert await _apply(database, submitted("R-9")) == []
    assert "R-9" not in database.tables.registrations
