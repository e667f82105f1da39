"""The real appliers through the in-memory unit of work: what a batch records, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.notification.compose import EmailWriter
from services.notification.domain import KommuneNames
from services.notification.handlers import FundingDecisionsApplier, RegistrationEventsApplier
from shared.directory import load_directory
from shared.events import Envelope
from shared.settings import DEFAULT_DIRECTORY_FILE
from tests.unit.notification.fakes import (
    InMemoryNotificationDatabase,
    NotificationTables,
    emails_by_event,
    pending_registration_ids,
)
from tests.unit.notification.letters import OFFICE, WORDING, letter_bytes, parse, parts
from tests.unit.notification.samples import envelope, event_data

NAME_KOMMUNE = KommuneNames(load_directory(str(DEFAULT_DIRECTORY_FILE)))
WRITE_EMAIL = EmailWriter(OFFICE, WORDING)
APPLIERS: dict[str, RegistrationEventsApplier | FundingDecisionsApplier] = {
    "registration.events": RegistrationEventsApplier(NAME_KOMMUNE, WRITE_EMAIL),
    "funding.decisions": FundingDecisionsApplier(NAME_KOMMUNE, WRITE_EMAIL),
}


def contact(registration_id: str) -> str:
    return f"kontakt-{registration_id.lower()}@kommune.example"


def outcome(event_type: str, registration_id: str, **overrides: Any) -> Envelope[Any]:
    data = event_data(event_type, registration_id, contact_email=contact(registration_id))
    return envelope(event_type, {**data, **overrides})


def decision(event_type: str, registration_id: str, **overrides: Any) -> Envelope[Any]:
    return envelope(event_type, event_data(event_type, registration_id, **overrides))


def topic_of(event: Envelope[Any]) -> str:
    return "registration.events" if event.event_type.startswith("registration.") else "funding.decisions"


async def apply(database: InMemoryNotificationDatabase, events: Sequence[Envelope[Any]]) -> None:
    """One batch of one topic in one unit of work, as the BatchConsumer applies it."""
    async with database.unit_of_work() as uow:
        assert await APPLIERS[topic_of(events[0])].apply_batch(uow, events) == []


async def test_a_decision_waits_for_its_registration_and_is_emailed_when_it_arrives() -> None:
    database = InMemoryNotificationDatabase()
    approved, waitlisted = decision("funding.approved", "R-1"), decision("funding.waitlisted", "R-2")
    await apply(database, [approved, waitlisted])
    assert database.tables.emails == {}
    assert pending_registration_ids(database.tables) == {approved.event_id: "R-1", waitlisted.event_id: "R-2"}

    accepted = outcome("registration.accepted", "R-1")
    await apply(database, [accepted])
    emails = emails_by_event(database.tables)
    assert set(emails) == {accepted.event_id, approved.event_id}
    assert emails[approved.event_id].recipient == contact("R-1")
    assert emails[approved.event_id].template == "funding_approved"
    text, _ = parts(parse(letter_bytes(emails[approved.event_id].planned)))
    assert "Jürgen Weiß" in text and "500,00 €" in text
    assert pending_registration_ids(database.tables) == {waitlisted.event_id: "R-2"}
    assert set(database.tables.registrations) == {"R-1"}


async def test_a_decision_about_a_known_registration_is_emailed_at_once() -> None:
    database = InMemoryNotificationDatabase()
    await apply(database, [outcome("registration.accepted", "R-1")])
    approved = decision("funding.approved", "R-1", promoted=True)
    await apply(database, [approved])
    email = emails_by_event(database.tables)[approved.event_id]
    assert (email.template, email.recipient) == ("funding_promoted", contact("R-1"))
    assert database.tables.pending_decisions == {}


async def test_an_event_recorded_before_is_not_recorded_again() -> None:
    database = InMemoryNotificationDatabase()
    accepted = outcome("registration.accepted", "R-1")
    await apply(database, [accepted])
    first = dict(database.tables.emails)
    again = envelope("registration.accepted", {**accepted.data.model_dump(mode="json")}, accepted.event_id)
    await apply(database, [again])
    assert database.tables.emails == first


async def test_a_failed_batch_leaves_nothing_behind() -> None:
    database = InMemoryNotificationDatabase()
    await apply(database, [decision("funding.approved", "R-1")])
    before = database.tables.copy()
    with pytest.raises(RuntimeError, match="after the applier"):
        async with database.unit_of_work() as uow:
            await uow.claim_new_events(
                "registration.events", [outcome("registration.accepted", "R-1").event_id]
            )
            await APPLIERS["registration.events"].apply_batch(uow, [outcome("registration.accepted", "R-1")])
            raise RuntimeError("after the applier")
    assert database.tables == before


# --- a batch records what its events record one batch each ----------------------------------

REGISTRATION_IDS = ["R-1", "R-2"]
OUTCOMES = {
    "accepted": lambda rid: outcome("registration.accepted", rid),
    "accepted elsewhere": lambda rid: outcome("registration.accepted", rid, seminar_title="Aufbau"),
    "waitlisted": lambda rid: outcome("registration.waitlisted", rid, seminar_title="Gruppe A"),
    "rejected": lambda rid: outcome("registration.rejected", rid),
    "conflict": lambda rid: outcome(
        "registration.rejected",
        rid,
        kommune_key="03241",
        contact_email="b@andere.example",
        reason="registration_id_conflict",
    ),
    "withdrawn": lambda rid: outcome(
        "registration.withdrawn", rid, contact_email=f"neu-{contact(rid)}", reason="seminar_cancelled"
    ),
    "approved": lambda rid: decision("funding.approved", rid),
    "promoted": lambda rid: decision("funding.approved", rid, promoted=True),
    "waitlisted for funding": lambda rid: decision("funding.waitlisted", rid),
    "declined": lambda rid: decision("funding.declined", rid),
    "released": lambda rid: decision("funding.released", rid),
}
event_lists = st.lists(
    st.builds(
        lambda kind, rid: OUTCOMES[kind](rid),
        st.sampled_from(sorted(OUTCOMES)),
        st.sampled_from(REGISTRATION_IDS),
    ),
    min_size=1,
    max_size=14,
)


def batches(events: Sequence[Envelope[Any]], cuts: set[int]) -> list[list[Envelope[Any]]]:
    """Runs of events of one topic, cut also where `cuts` says."""
    split: list[list[Envelope[Any]]] = []
    for index, event in enumerate(events):
        if split and topic_of(split[-1][0]) == topic_of(event) and index not in cuts:
            split[-1].append(event)
        else:
            split.append([event])
    return split


async def recorded(split: Sequence[Sequence[Envelope[Any]]]) -> NotificationTables:
    database = InMemoryNotificationDatabase()
    for batch in split:
        await apply(database, batch)
    return database.tables


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_lists, cuts=st.sets(st.integers(min_value=0, max_value=14)))
async def test_batches_of_any_size_record_what_one_event_per_batch_records(
    events: list[Envelope[Any]], cuts: set[int]
) -> None:
    one_by_one = await recorded([[event] for event in events])
    batched = await recorded(batches(events, cuts))
    assert batched.registrations == one_by_one.registrations
    assert pending_registration_ids(batched) == pending_registration_ids(one_by_one)
    assert batched.emails == one_by_one.emails
    # Every event is emailed, or is a decision that still waits for its registration.
    assert set(emails_by_event(batched)) | set(pending_registration_ids(batched)) == {
        e.event_id for e in events
    }
