"""The real appliers, driven through the in-memory unit of work: what they publish and store.

The property tests generate portal traffic on both topics and check that how the events are
batched changes nothing, that seats are never handed out beyond capacity, and that the waitlist
is first come, first served.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.registration.domain import ACTIVE_STATUSES, Status
from services.registration.handlers import PortalRegistrationsApplier, PortalSeminarsApplier
from services.registration.unit_of_work import RegistrationUnitOfWork
from shared.directory import Directory, load_directory
from shared.events import Envelope
from shared.outbox import OutboxMessage
from shared.settings import DEFAULT_DIRECTORY_FILE
from shared.topics import Topics
from shared.unit_of_work import BatchApplier
from tests.unit.registration.fakes import InMemoryDatabase, RegistrationTables, consume
from tests.unit.registration.portal_events import (
    BRAUNSCHWEIG,
    HANNOVER_AGS,
    REGION_HANNOVER,
    cancelled,
    email_of,
    published,
    submitted,
    withdrawal_requested,
)

TOPICS = Topics()
DIRECTORY = load_directory(str(DEFAULT_DIRECTORY_FILE))


@pytest.fixture(scope="module")
def directory() -> Directory:
    return DIRECTORY


Step = tuple[str, list[Envelope[Any]]]  # a topic and its events, in order


def appliers(directory: Directory) -> dict[str, BatchApplier[RegistrationUnitOfWork]]:
    return {
        TOPICS.portal_seminars: PortalSeminarsApplier(TOPICS),
        TOPICS.portal_registrations: PortalRegistrationsApplier(TOPICS, directory),
    }


async def play(steps: Sequence[Step], directory: Directory, *, batch_size: int | None) -> InMemoryDatabase:
    """Apply each step's events in batches of `batch_size` (None: the step is one batch)."""
    database = InMemoryDatabase()
    by_topic = appliers(directory)
    for topic, events in steps:
        size = batch_size or len(events) or 1
        for start in range(0, len(events), size):
            await consume(database, topic, by_topic[topic], events[start : start + size])
    return database


def without_times(messages: Sequence[OutboxMessage]) -> list[tuple[str, str, dict[str, Any]]]:
    """Everything but the time of writing."""
    return [(m.topic, m.key, m.envelope.model_dump(mode="json", exclude={"occurred_at"})) for m in messages]


def comparable(tables: RegistrationTables) -> tuple[Any, ...]:
    return (
        tables.seminars,
        tables.registrations,
        tables.pending_withdrawals,
        tables.waitlist_order,
        # In arrival order; the sequence's values may have gaps (a row parked and decided again
        # within one batch takes none).
        tables.parked(set(tables.parked_submissions)),
    )


def outcomes(database: InMemoryDatabase) -> list[tuple[str, str, str | None]]:
    return [
        (
            m.envelope.event_type.removeprefix("registration."),
            m.envelope.data.registration_id,
            getattr(m.envelope.data, "reason", None),
        )
        for m in database.tables.outbox
    ]


# --- one scenario, every path ------------------------------------------------------------------


def scenario() -> list[Step]:
    shouting = email_of("R-1").upper()
    return [
        (
            TOPICS.portal_seminars,
            [
                published("S-1", 2),
                published("S-2", 1),
                published("S-3", 3),
                published("S-C", 4),
                cancelled("S-C"),
            ],
        ),
        (
            TOPICS.portal_registrations,
            [withdrawal_requested("R-P", kommune_key=BRAUNSCHWEIG)],  # before its submission
        ),
        (
            TOPICS.portal_registrations,
            [
                submitted("R-1"),
                submitted("R-2"),
                submitted("R-3"),  # full: waitlisted first
                submitted("R-4", kommune_key=BRAUNSCHWEIG),  # waitlisted second
                submitted("R-5", email=shouting),  # R-1 again
                submitted("R-2", contact_email="andere@kommune.example"),  # conflict
                submitted("R-6", "S-404", kommune_key=REGION_HANNOVER),  # unknown seminar
                submitted("R-7", kommune_key="0324"),  # invalid key
                submitted("R-8", "S-C"),  # cancelled seminar
                submitted("R-9", "S-2"),  # takes S-2's only seat
                submitted("R-P", "S-2", kommune_key=BRAUNSCHWEIG),  # waitlisted, then withdrawn
                withdrawal_requested("R-Q"),
                submitted("R-Q", "S-3"),  # accepted, then withdrawn
                *(submitted(f"R-3{n}", "S-3") for n in range(5)),  # three seats, two wait
                withdrawal_requested("R-1"),  # accepted: R-3 takes the seat
                withdrawal_requested("R-4", kommune_key=BRAUNSCHWEIG),  # waitlisted: no seat to give
                withdrawal_requested("R-1"),  # withdrawn before: ignored
                submitted("R-12"),  # waitlisted behind nobody
                submitted("R-14", email=shouting),  # R-1 withdrew: may come back
                withdrawal_requested("R-31"),  # accepted in S-3: its waitlist head moves up
            ],
        ),
        (TOPICS.portal_seminars, [published("S-1", 4), published("S-3", 1), cancelled("S-2")]),
    ]


@pytest.mark.parametrize("batch_size", [None, 1, 4], ids=["one-batch", "batches-of-one", "batches-of-four"])
async def test_a_batch_decides_what_the_events_decide_one_at_a_time(
    directory: Directory, batch_size: int | None
) -> None:
    steps = scenario()
    batched = await play(steps, directory, batch_size=batch_size)
    alone = await play(steps, directory, batch_size=1)
    assert without_times(batched.tables.outbox) == without_times(alone.tables.outbox)
    assert comparable(batched.tables) == comparable(alone.tables)

    decided = set(outcomes(batched))
    assert {
        ("rejected", "R-5", "duplicate_participant"),
        ("rejected", "R-2", "registration_id_conflict"),
        ("rejected", "R-6", "unknown_seminar"),
        ("rejected", "R-7", "invalid_kommune_key"),
        ("rejected", "R-8", "seminar_cancelled"),
        ("waitlisted", "R-P", None),
        ("withdrawn", "R-P", "withdrawn_by_portal"),
        ("accepted", "R-Q", None),
        ("withdrawn", "R-Q", "withdrawn_by_portal"),
        ("withdrawn", "R-1", "withdrawn_by_portal"),
        ("accepted", "R-3", None),  # promoted
        ("accepted", "R-33", None),  # promoted after R-31 withdrew
        ("waitlisted", "R-14", None),
        ("accepted", "R-12", None),  # the larger capacity of S-1
        ("accepted", "R-14", None),
        ("withdrawn", "R-9", "seminar_cancelled"),
    } <= decided
    tables = batched.tables
    assert {s.seminar_id: (s.accepted_count, s.kept_seats) for s in tables.seminars.values()} == {
        "S-1": (4, 0),
        "S-2": (0, 0),
        "S-3": (3, 3),  # shrunk to 1: the three keep their seats
        "S-C": (0, 0),
    }
    assert tables.pending_withdrawals == {}


async def test_a_redelivered_event_changes_nothing(directory: Directory) -> None:
    first = submitted("R-1")
    steps: list[Step] = [
        (TOPICS.portal_seminars, [published("S-1", 1)]),
        (TOPICS.portal_registrations, [first, first]),
        (TOPICS.portal_registrations, [first]),
    ]
    database = await play(steps, directory, batch_size=None)
    assert outcomes(database) == [("accepted", "R-1", None)]


async def test_a_failed_batch_leaves_no_trace(directory: Directory) -> None:
    database = await play([(TOPICS.portal_seminars, [published("S-1", 1)])], directory, batch_size=None)
    before = comparable(database.tables), set(database.tables.inbox), list(database.tables.outbox)

    class FailsAfterApplying:
        async def apply_batch(self, uow: Any, events: Sequence[Envelope[Any]]) -> Sequence[OutboxMessage]:
            await PortalRegistrationsApplier(TOPICS, directory).apply_batch(uow, events)
            raise RuntimeError("the transaction fails")

    with pytest.raises(RuntimeError):
        await consume(database, TOPICS.portal_registrations, FailsAfterApplying(), [submitted("R-1")])
    after = comparable(database.tables), set(database.tables.inbox), list(database.tables.outbox)
    assert after == before


# --- properties --------------------------------------------------------------------------------

SEMINAR_IDS = ("S-1", "S-2", "S-404")
REGISTRATION_IDS = tuple(f"R-{n}" for n in range(8))
EMAILS = tuple(f"p{n}@mail.example" for n in range(5))
KEYS = (HANNOVER_AGS, BRAUNSCHWEIG, "0324")

seminar_event = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(SEMINAR_IDS[:2]), st.integers(1, 4)),
    st.tuples(st.just("cancel"), st.sampled_from(SEMINAR_IDS), st.just(0)),
)
registration_event = st.one_of(
    st.tuples(
        st.just("submit"),
        st.sampled_from(REGISTRATION_IDS),
        st.sampled_from(SEMINAR_IDS),
        st.sampled_from(EMAILS),
        st.sampled_from(KEYS),
    ),
    st.tuples(st.just("withdraw"), st.sampled_from(REGISTRATION_IDS), st.just(""), st.just(""), st.just("")),
)
steps_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("seminars"), st.lists(seminar_event, min_size=1, max_size=4)),
        st.tuples(st.just("registrations"), st.lists(registration_event, min_size=1, max_size=10)),
    ),
    max_size=8,
)


def build(spec: list[tuple[str, list[tuple[Any, ...]]]]) -> list[Step]:
    # Every seminar exists before the first registration, as the portal offers it first.
    steps: list[Step] = [(TOPICS.portal_seminars, [published("S-1", 2), published("S-2", 1)])]
    for topic, events in spec:
        if topic == "seminars":
            steps.append(
                (
                    TOPICS.portal_seminars,
                    [
                        published(sid, cap) if kind == "publish" else cancelled(sid)
                        for kind, sid, cap in events
                    ],
                )
            )
        else:
            steps.append(
                (
                    TOPICS.portal_registrations,
                    [
                        submitted(rid, sid, email=email, kommune_key=key)
                        if kind == "submit"
                        else withdrawal_requested(rid)
                        for kind, rid, sid, email, key in events
                    ],
                )
            )
    return steps


def check_seats(tables: RegistrationTables) -> None:
    for seminar in tables.seminars.values():
        active = [r for r in tables.registrations.values() if r.content.seminar_id == seminar.seminar_id]
        accepted = sum(1 for r in active if r.status is Status.ACCEPTED)
        assert seminar.accepted_count == accepted
        if seminar.cancelled:
            assert not any(r.status in ACTIVE_STATUSES for r in active)
            continue
        # Never beyond capacity, but for the seats taken before it shrank.
        assert accepted <= max(seminar.capacity, seminar.kept_seats)
        # Nobody waits while a seat is free.
        if tables.waitlist(seminar.seminar_id):
            assert accepted >= seminar.capacity


def check_first_come_first_served(messages: Sequence[OutboxMessage]) -> None:
    """From the outputs alone: positions count the waiting, and a seat goes to the longest waiting."""
    waiting: dict[str, list[str]] = defaultdict(list)
    seminar_of: dict[str, str] = {}
    for message in messages:
        kind, data = message.envelope.event_type, message.envelope.data
        rid = data.registration_id
        if kind == "registration.waitlisted":
            waiting[data.seminar_id].append(rid)
            seminar_of[rid] = data.seminar_id
            assert data.position == len(waiting[data.seminar_id])
        elif kind == "registration.accepted" and rid in seminar_of:
            assert waiting[seminar_of[rid]][0] == rid, "promoted out of turn"
            waiting[seminar_of.pop(rid)].pop(0)
        elif kind == "registration.withdrawn" and rid in seminar_of:
            waiting[seminar_of.pop(rid)].remove(rid)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=steps_strategy, batch_size=st.sampled_from([None, 2, 3]))
async def test_batching_changes_nothing_and_seats_stay_within_capacity(
    spec: list[tuple[str, list[tuple[Any, ...]]]], batch_size: int | None
) -> None:
    steps = build(spec)
    batched = await play(steps, DIRECTORY, batch_size=batch_size)
    alone = InMemoryDatabase()
    by_topic = appliers(DIRECTORY)
    kept_at_most: dict[str, int] = {}
    for topic, events in steps:
        for event in events:
            await consume(alone, topic, by_topic[topic], [event])
            check_seats(alone.tables)
            for seminar in alone.tables.seminars.values():
                # Kept seats only come from a capacity decrease and never grow after it.
                if event.event_type == "seminar.published" and event.data.seminar_id == seminar.seminar_id:
                    kept_at_most[seminar.seminar_id] = seminar.kept_seats
                assert seminar.kept_seats <= kept_at_most.get(seminar.seminar_id, 0)
    assert without_times(batched.tables.outbox) == without_times(alone.tables.outbox)
    assert comparable(batched.tables) == comparable(alone.tables)
    check_first_come_first_served(alone.tables.outbox)
