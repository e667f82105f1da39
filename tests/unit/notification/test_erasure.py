"""Erased registrations in notification (ADR 0018): no event of one writes a letter, remembers
its data or waits for it, whichever topic it comes on and in whatever order. The pure rule, then
the real appliers over the in-memory twin."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.notification.domain import BatchState, Effects, FundingDecisionsRun, RegistrationEventsRun
from shared.events import Envelope
from tests.unit.notification.fakes import (
    InMemoryNotificationDatabase,
    emails_by_event,
    pending_registration_ids,
)
from tests.unit.notification.test_appliers import NAME_KOMMUNE, WRITE_EMAIL, apply, decision, outcome


def run(events: list[Envelope[Any]], state: BatchState) -> Effects:
    if events[0].event_type.startswith("registration."):
        return RegistrationEventsRun(state, NAME_KOMMUNE, WRITE_EMAIL).run(events)
    return FundingDecisionsRun(state, NAME_KOMMUNE, WRITE_EMAIL).run(events)


@pytest.mark.parametrize(
    ("event", "erased", "letters"),
    [
        (outcome("registration.accepted", "R-1"), frozenset(), 1),
        (outcome("registration.accepted", "R-1"), frozenset({"R-1"}), 0),
        (outcome("registration.withdrawn", "R-1"), frozenset({"R-1"}), 0),
        (outcome("registration.rejected", "R-1"), frozenset({"R-1"}), 0),
        (outcome("registration.accepted", "R-1"), frozenset({"R-2"}), 1),
        (decision("funding.approved", "R-1"), frozenset({"R-1"}), 0),
    ],
)
def test_an_event_of_an_erased_registration_is_applied_as_nothing(
    event: Envelope[Any], erased: frozenset[str], letters: int
) -> None:
    effects = run([event], BatchState(registrations={}, erased=erased))
    assert len(effects.emails) == letters
    if letters == 0:
        assert effects == Effects()


def test_a_decision_waiting_for_an_erased_registration_is_not_released() -> None:
    waiting = decision("funding.approved", "R-1")
    state = BatchState(registrations={}, pending_decisions=[waiting], erased=frozenset({"R-1"}))
    assert run([outcome("registration.accepted", "R-1")], state) == Effects()


async def test_after_an_erasure_redelivered_and_replayed_events_write_no_letter() -> None:
    database = InMemoryNotificationDatabase()
    accepted = outcome("registration.accepted", "R-1")
    await apply(database, [accepted])
    await apply(database, [decision("funding.approved", "R-2")])  # waits for R-2
    assert len(database.tables.emails) == 1
    database.tables.erase({"R-1", "R-2"})
    assert pending_registration_ids(database.tables) == {}
    # The acceptance under a new id (a replayed dead letter), its decision, R-2's acceptance.
    await apply(database, [accepted.model_copy(update={"event_id": uuid.uuid4()})])
    await apply(database, [decision("funding.approved", "R-1")])
    await apply(database, [outcome("registration.accepted", "R-2")])
    assert [email.recipient for email in emails_by_event(database.tables).values()] == [""]
    assert database.tables.registrations == {}
    assert pending_registration_ids(database.tables) == {}
