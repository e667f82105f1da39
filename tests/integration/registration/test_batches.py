"""A batch applied at once decides exactly what the same events decide one at a time.

An applier loads the state its batch needs once, decides every event in memory and records what
changed with one statement per table. This compares a batch, in one database, with each of its
events applied alone in its own transaction, in a second one: the SQL of the loads and the
records must match what the domain assumes, whatever the batch holds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.registration import operations, store
from services.registration.app import MIGRATIONS
from services.registration.domain import SeatsChange, SeminarSeats
from services.registration.handlers import ParkingSweeper, PortalRegistrationsApplier, PortalSeminarsApplier
from services.registration.store import PostgresRegistrationUnitOfWork
from services.registration.unit_of_work import RegistrationUnitOfWork
from shared.db import Pool, create_pool
from shared.directory import Directory, load_directory
from shared.events import (
    PORTAL_REGISTRATION_EVENTS,
    PORTAL_SEMINAR_EVENTS,
    Envelope,
    EventDecoder,
    RegistrationAccepted,
)
from shared.migrations import apply_migrations
from shared.outbox import OutboxMessage
from shared.settings import DEFAULT_DIRECTORY_FILE
from shared.topics import Topics
from shared.unit_of_work import BatchApplier
from tests.conftest import DatabaseFactory
from tests.integration.registration.portal import (
    Message,
    cancellation,
    participant,
    seminar,
    submission,
    withdrawal,
)

pytestmark = pytest.mark.integration

HANNOVER_AGS = "03241001"
BRAUNSCHWEIG = "03101"
REGION_HANNOVER = "03241"
BARWEDEL_AGS = "03151002"
KEYS = (HANNOVER_AGS, BRAUNSCHWEIG, REGION_HANNOVER, BARWEDEL_AGS)


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


def decode(topic: str, models: dict[str, Any], messages: Sequence[Message]) -> list[Envelope[Any]]:
    decoder = EventDecoder(topic, models)
    return [decoder.decode(json.dumps(value).encode()) for _, value in messages]


def seminars() -> list[Envelope[Any]]:
    return decode(
        "portal.seminars",
        PORTAL_SEMINAR_EVENTS,
        [
            seminar("S-1", 2),
            seminar("S-2", 1),
            seminar("S-3", 3),
            seminar("S-4", 5),
            seminar("S-C", 4),
            cancellation("S-C"),
        ],
    )


def before() -> list[Envelope[Any]]:
    """State the batch finds: placed registrations and withdrawals waiting for their submission."""
    return decode(
        "portal.registrations",
        PORTAL_REGISTRATION_EVENTS,
        [
            submission("R-0", HANNOVER_AGS, "S-4"),
            withdrawal("R-P", BRAUNSCHWEIG),  # its submission is placed in the batch
            withdrawal("R-X", BRAUNSCHWEIG),  # its submission is rejected in the batch
        ],
    )


def scenario() -> list[Envelope[Any]]:
    first = submission("R-1", HANNOVER_AGS, "S-1")
    shouting = {**participant("R-1"), "email": participant("R-1")["email"].upper()}
    invalid = submission("R-7", "0324", "S-1")
    messages: list[Message] = [
        first,
        submission("R-2", HANNOVER_AGS, "S-1"),
        submission("R-3", HANNOVER_AGS, "S-1"),  # full: waitlisted first
        submission("R-4", BRAUNSCHWEIG, "S-1"),  # waitlisted second
        submission("R-5", HANNOVER_AGS, "S-1", person=shouting),  # R-1 again, earlier in this batch
        (first[0], {**first[1], "event_id": "9f1d5c1e-1111-4c6b-9a53-7c1e1a0b0001"}),  # same content
        submission("R-2", HANNOVER_AGS, "S-1", contact_email="andere@kommune.example"),  # conflict
        submission("R-6", REGION_HANNOVER, "S-404"),  # unknown seminar
        invalid,  # invalid key
        (invalid[0], {**invalid[1], "event_id": "9f1d5c1e-1111-4c6b-9a53-7c1e1a0b0002"}),  # same: nothing
        submission("R-7", "0324", "S-2"),  # another seminar under a stored id: conflict
        submission("R-8", BARWEDEL_AGS, "S-C"),  # cancelled seminar
        submission("R-9", BRAUNSCHWEIG, "S-2"),  # takes S-2's only seat
        submission("R-P", BRAUNSCHWEIG, "S-2"),  # waitlisted, then withdrawn as remembered
        submission("R-X", BRAUNSCHWEIG, "S-404"),  # rejected: the remembered withdrawal is dropped
        submission("R-11", REGION_HANNOVER, "S-2", person=participant("R-P")),  # R-P is gone: waits
        withdrawal("R-Q", HANNOVER_AGS),  # before its submission, in the same batch
        submission("R-Q", HANNOVER_AGS, "S-3"),  # accepted, then withdrawn
        *(submission(f"R-3{n}", KEYS[n % 4], "S-3") for n in range(5)),  # three seats, two wait
        *(submission(f"R-4{n}", KEYS[n % 4], "S-4") for n in range(8)),  # R-0 holds one of five
        submission("R-50", HANNOVER_AGS, "S-4", person=participant("R-0")),  # stored before the batch
        withdrawal("R-1", HANNOVER_AGS),  # accepted: R-3 takes the seat
        withdrawal("R-4", BRAUNSCHWEIG),  # waitlisted: no seat to give
        withdrawal("R-1", HANNOVER_AGS),  # withdrawn before: ignored
        submission("R-12", HANNOVER_AGS, "S-1"),  # waitlisted behind nobody
        submission("R-13", HANNOVER_AGS, "S-1", person=participant("R-3")),  # R-3 is accepted
        submission("R-14", HANNOVER_AGS, "S-1", person=shouting),  # R-1 withdrew: may come back
        withdrawal("R-31", BRAUNSCHWEIG),  # accepted in S-3: its waitlist head moves up
        submission("R-15", HANNOVER_AGS, "S-3"),
    ]
    return decode("portal.registrations", PORTAL_REGISTRATION_EVENTS, messages)


async def apply(
    pool: Pool, applier: BatchApplier[RegistrationUnitOfWork], events: Sequence[Envelope[Any]]
) -> list[OutboxMessage]:
    """One batch in one unit of work, as the consumer applies it."""
    async with PostgresRegistrationUnitOfWork(pool) as uow:
        return list(await applier.apply_batch(uow, events))


async def apply_in_batches(
    pool: Pool, applier: BatchApplier[RegistrationUnitOfWork], events: Sequence[Envelope[Any]], size: int
) -> list[OutboxMessage]:
    messages: list[OutboxMessage] = []
    for start in range(0, len(events), size):
        messages += await apply(pool, applier, events[start : start + size])
    return messages


@pytest.fixture
async def databases(make_database: DatabaseFactory, directory: Directory) -> AsyncIterator[tuple[Pool, Pool]]:
    """Two fresh databases with the same seminars and the same state before the batch."""
    # One connection each: the query counts below see every statement on it.
    pools = [await create_pool(await make_database("registration"), max_size=1) for _ in range(2)]
    topics = Topics()
    offers, earlier = seminars(), before()  # the same envelopes (ids, times) in both
    try:
        for pool in pools:
            async with pool.acquire() as conn:
                await apply_migrations(conn, MIGRATIONS, "registration")
            await apply(pool, PortalSeminarsApplier(topics), offers)
            await apply(pool, PortalRegistrationsApplier(topics, directory), earlier)
        yield pools[0], pools[1]
    finally:
        for pool in pools:
            await pool.close()


def published(messages: Sequence[OutboxMessage]) -> list[tuple[str, str, dict[str, Any]]]:
    """Everything but the time of writing."""
    return [(m.topic, m.key, m.envelope.model_dump(mode="json", exclude={"occurred_at"})) for m in messages]


async def state(pool: Pool) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the service, but the times of writing."""
    queries = {
        "registrations": """
            SELECT registration_id, seminar_id, given_kommune_key, kommune_key, given_name, family_name,
                   participant_email, contact_email, status, waitlist_seq, rejection_reason,
                   withdrawal_reason, submitted_at
            FROM registrations ORDER BY registration_id""",
        "seminars": """
            SELECT seminar_id, title, capacity, accepted_count, kept_seats, cancelled, location, course
            FROM seminars ORDER BY seminar_id""",
        # In arrival order; the order values may have gaps (parked and decided within one batch).
        "parked_submissions": """
            SELECT registration_id, seminar_id, given_kommune_key, kommune_key, given_name, family_name,
                   participant_email, contact_email, submitted_at, event_id, correlation_id
            FROM parked_submissions ORDER BY arrival_seq""",
        "pending_withdrawals": """
            SELECT registration_id, given_kommune_key, event_id
            FROM pending_withdrawals ORDER BY registration_id""",
        "waitlist_order": "SELECT last_value FROM waitlist_order",
    }
    async with pool.acquire() as conn:
        return {name: [tuple(row.values()) for row in await conn.fetch(sql)] for name, sql in queries.items()}


@pytest.mark.parametrize("batch_size", [None, 4], ids=["one-batch", "batches-of-four"])
async def test_a_batch_decides_what_the_events_decide_one_at_a_time(
    databases: tuple[Pool, Pool], directory: Directory, batch_size: int | None
) -> None:
    events = scenario()
    applier = PortalRegistrationsApplier(Topics(), directory)
    whole, single = databases
    at_once = await apply_in_batches(whole, applier, events, batch_size or len(events))
    one_by_one = await apply_in_batches(single, applier, events, 1)

    assert published(at_once) == published(one_by_one)
    assert await state(whole) == await state(single)

    # The scenario reaches what it is meant to reach, so the comparison covers those paths.
    outcomes = [(m.envelope.event_type.removeprefix("registration."), m.envelope.data) for m in at_once]
    decided = {(kind, data.registration_id, getattr(data, "reason", None)) for kind, data in outcomes}
    assert {
        ("rejected", "R-5", "duplicate_participant"),
        ("rejected", "R-2", "registration_id_conflict"),
        ("rejected", "R-6", "unknown_seminar"),
        ("rejected", "R-7", "invalid_kommune_key"),
        ("rejected", "R-7", "registration_id_conflict"),
        ("rejected", "R-8", "seminar_cancelled"),
        ("rejected", "R-X", "unknown_seminar"),
        ("rejected", "R-50", "duplicate_participant"),
        ("rejected", "R-13", "duplicate_participant"),
        ("waitlisted", "R-P", None),
        ("withdrawn", "R-P", "withdrawn_by_portal"),
        ("accepted", "R-Q", None),
        ("withdrawn", "R-Q", "withdrawn_by_portal"),
        ("withdrawn", "R-1", "withdrawn_by_portal"),
        ("accepted", "R-3", None),  # promoted
        ("accepted", "R-33", None),  # promoted after R-31 withdrew
        ("waitlisted", "R-14", None),
    } <= decided
    assert sum(1 for _, data in outcomes if data.registration_id == "R-1") == 2  # accepted, withdrawn
    positions = {data.registration_id: data.position for kind, data in outcomes if kind == "waitlisted"}
    assert positions["R-3"] == 1
    assert positions["R-4"] == 2
    assert positions["R-34"] == 2  # behind R-33
    assert positions["R-12"] == 1  # R-3 was promoted, R-4 withdrew
    assert positions["R-14"] == 2
    tables = await state(whole)
    assert {row[0]: row[3] for row in tables["seminars"]} == {
        "S-1": 2,
        "S-2": 1,
        "S-3": 3,
        "S-4": 5,
        "S-C": 0,
    }
    assert tables["pending_withdrawals"] == []


def seminar_changes() -> list[Envelope[Any]]:
    """After the scenario: capacities up and down, cancellations, a seminar offered and cancelled."""
    return decode(
        "portal.seminars",
        PORTAL_SEMINAR_EVENTS,
        [
            seminar("S-1", 5),  # three wait: all move up
            seminar("S-1", 1),  # four keep their seats
            seminar("S-3", 5),  # move up
            cancellation("S-3"),  # after that promotion: the accepted go by registration_id
            seminar("S-3", 9),  # stays cancelled
            cancellation("S-4"),
            cancellation("S-4"),  # cancelled before
            cancellation("S-404"),  # unknown
            seminar("S-N", 2),
            cancellation("S-N"),
        ],
    )


@pytest.mark.parametrize("batch_size", [None, 3], ids=["one-batch", "batches-of-three"])
async def test_a_batch_of_seminar_changes_decides_what_they_decide_one_at_a_time(
    databases: tuple[Pool, Pool], directory: Directory, batch_size: int | None
) -> None:
    registrations = PortalRegistrationsApplier(Topics(), directory)
    seminars_applier = PortalSeminarsApplier(Topics())
    whole, single = databases
    earlier = scenario()
    for pool in databases:
        await apply(pool, registrations, earlier)
    events = seminar_changes()
    at_once = await apply_in_batches(whole, seminars_applier, events, batch_size or len(events))
    one_by_one = await apply_in_batches(single, seminars_applier, events, 1)

    assert published(at_once) == published(one_by_one)
    assert await state(whole) == await state(single)
    kinds = [(m.envelope.event_type, m.envelope.data.registration_id) for m in at_once]
    promoted = [rid for kind, rid in kinds if kind == "registration.accepted"]
    assert promoted == ["R-12", "R-14", "R-34", "R-15"]
    withdrawn_in_s3 = [
        m.envelope.data.registration_id
        for m in at_once
        if m.envelope.event_type == "registration.withdrawn" and m.envelope.data.seminar_id == "S-3"
    ]
    # The accepted by registration_id, the two promoted among them.
    assert withdrawn_in_s3 == ["R-15", "R-30", "R-32", "R-33", "R-34"]
    tables = await state(whole)
    assert {row[0]: (row[2], row[3], row[4], row[5]) for row in tables["seminars"]} == {
        "S-1": (1, 4, 4, False),
        "S-2": (1, 1, 0, False),
        "S-3": (9, 0, 0, True),
        "S-4": (5, 0, 0, True),
        "S-C": (4, 0, 0, True),
        "S-N": (2, 0, 0, True),
    }


async def test_a_run_of_submissions_costs_the_same_queries_whatever_its_length(
    databases: tuple[Pool, Pool], directory: Directory
) -> None:
    applier = PortalRegistrationsApplier(Topics(), directory)
    queries: list[str] = []

    def submissions(prefix: str, count: int) -> list[Envelope[Any]]:
        # Accepted, waitlisted, rejected for several reasons, into several seminars.
        seminar_ids = ("S-1", "S-2", "S-3", "S-4", "S-C", "S-404")
        messages = [
            submission(f"{prefix}-{n}", KEYS[n % 4] if n % 7 else "0324", seminar_ids[n % 6])
            for n in range(count)
        ]
        return decode("portal.registrations", PORTAL_REGISTRATION_EVENTS, messages)

    def record(query: Any) -> None:
        queries.append(query.query)

    async def count_queries(pool: Pool, events: Sequence[Envelope[Any]]) -> int:
        """The statements of loading, deciding and recording the batch."""
        async with PostgresRegistrationUnitOfWork(pool) as uow:
            queries.clear()
            uow.connection.add_query_logger(record)
            try:
                messages = await applier.apply_batch(uow, events)
            finally:
                uow.connection.remove_query_logger(record)
        assert len(messages) == len(events)  # one outcome each
        return len(queries)

    short, long = databases
    for pool in databases:  # asyncpg looks up the array types once per connection
        await count_queries(pool, submissions("W", 24))

    few = await count_queries(short, submissions("A", 24))
    many = await count_queries(long, submissions("A", 240))
    # Locks and reads: 9 (registration ids, seminar ids, seminar rows twice, registrations,
    # participants, pending withdrawals, parked submissions, waitlist heads), writes: 3
    # (waitlist order values, registrations, seats).
    assert few == many <= 12


async def test_seats_are_written_only_over_the_seats_the_run_started_from(
    databases: tuple[Pool, Pool],
) -> None:
    pool, _ = databases

    async def set_seats(*changes: SeatsChange) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await store.set_seats(conn, changes)

    await set_seats(
        SeatsChange("S-1", 0, SeminarSeats(2, 2, 0), cancelled=False),
        SeatsChange("S-4", 1, SeminarSeats(5, 5, 0), cancelled=False),  # R-0 holds one of five
    )
    with pytest.raises(store.StaleStateError, match="S-3"):  # S-2 is right, S-3 holds no seat
        await set_seats(
            SeatsChange("S-2", 0, SeminarSeats(1, 1, 0), cancelled=False),
            SeatsChange("S-3", 2, SeminarSeats(3, 3, 0), cancelled=False),
        )
    with pytest.raises(asyncpg.CheckViolationError, match="seats_within_capacity"):
        await set_seats(SeatsChange("S-2", 0, SeminarSeats(1, 2, 0), cancelled=False))
    with pytest.raises(store.StaleStateError, match="S-C"):
        await set_seats(SeatsChange("S-C", 0, SeminarSeats(4, 1, 0), cancelled=False))  # cancelled
    tables = await state(pool)
    assert [(row[0], row[3]) for row in tables["seminars"]] == [
        ("S-1", 2),
        ("S-2", 0),
        ("S-3", 0),
        ("S-4", 5),
        ("S-C", 0),
    ]


async def test_an_operator_reads_a_kommune_s_registrations_without_personal_data(
    databases: tuple[Pool, Pool], directory: Directory
) -> None:
    pool, _ = databases
    await apply(pool, PortalRegistrationsApplier(Topics(), directory), scenario())
    found = await operations.registrations_of_kommune(pool, "031010000000")  # Braunschweig
    by_id = {entry.registration_id: entry for entry in found}
    assert (by_id["R-4"].status, by_id["R-4"].reason) == ("withdrawn", "withdrawn_by_portal")
    assert (by_id["R-X"].status, by_id["R-X"].reason, by_id["R-X"].seminar_starts_on) == (
        "rejected",
        "unknown_seminar",
        None,
    )
    assert (by_id["R-9"].status, by_id["R-9"].position) == ("accepted", None)
    waiting = [entry for entry in found if entry.status == "waitlisted"]
    assert waiting
    assert all(entry.position is not None and entry.position >= 1 for entry in waiting)
    assert found == sorted(found, key=lambda entry: (entry.created_at, entry.registration_id))
    assert {field.name for field in fields(operations.KommuneRegistration)} == {
        "registration_id",
        "seminar_id",
        "seminar_starts_on",
        "status",
        "reason",
        "position",
        "created_at",
    }


def before_their_offers() -> list[Envelope[Any]]:
    """Submissions for seminars not offered yet, and what can happen to them before the offer."""
    messages: list[Message] = [
        submission("R-N1", HANNOVER_AGS, "S-N1"),
        submission("R-N2", BRAUNSCHWEIG, "S-N1"),
        submission("R-N3", REGION_HANNOVER, "S-N1", person=participant("R-N1")),  # a duplicate
        submission("R-N4", HANNOVER_AGS, "S-N2"),
        submission("R-N5", BARWEDEL_AGS, "S-N2"),
        submission("R-N1", HANNOVER_AGS, "S-N1", contact_email="andere@kommune.example"),  # conflict
        withdrawal("R-N5", BARWEDEL_AGS),  # parked: rejected at once
        withdrawal("R-N6", HANNOVER_AGS),  # remembered: its submission is rejected at once
        submission("R-N6", HANNOVER_AGS, "S-N1"),
        submission("R-N7", HANNOVER_AGS, "S-N3"),  # its seminar never comes
        submission("R-N8", HANNOVER_AGS, "S-1"),  # a known seminar: decided at once
    ]
    return decode("portal.registrations", PORTAL_REGISTRATION_EVENTS, messages)


@pytest.mark.parametrize("batch_size", [None, 3], ids=["one-batch", "batches-of-three"])
async def test_submissions_waiting_for_their_offer_are_decided_alike_in_batches_and_alone(
    databases: tuple[Pool, Pool], directory: Directory, batch_size: int | None
) -> None:
    grace = timedelta(seconds=300)
    registrations = PortalRegistrationsApplier(Topics(), directory, seminar_grace=grace)
    whole, single = databases
    waiting = before_their_offers()
    at_once = await apply_in_batches(whole, registrations, waiting, batch_size or len(waiting))
    one_by_one = await apply_in_batches(single, registrations, waiting, 1)
    assert published(at_once) == published(one_by_one)
    assert await state(whole) == await state(single)
    assert [(m.envelope.data.registration_id, getattr(m.envelope.data, "reason", None)) for m in at_once] == [
        ("R-N1", "registration_id_conflict"),
        ("R-N5", "unknown_seminar"),
        ("R-N6", "unknown_seminar"),
        ("R-N8", None),
    ]
    parked = [row[0] for row in (await state(whole))["parked_submissions"]]
    assert parked == ["R-N1", "R-N2", "R-N3", "R-N4", "R-N7"]
    # An operator sees them waiting, beside the decided ones.
    found = {e.registration_id: e for e in await operations.registrations_of_kommune(whole, "032410001001")}
    assert (found["R-N1"].status, found["R-N1"].seminar_starts_on) == ("waiting_for_seminar", None)
    assert (found["R-N6"].status, found["R-N6"].reason) == ("rejected", "unknown_seminar")

    offers = decode(
        "portal.seminars",
        PORTAL_SEMINAR_EVENTS,
        [seminar("S-N1", 1), seminar("S-N1", 3), seminar("S-N2", 2), cancellation("S-N2")],
    )
    at_once = await apply_in_batches(
        whole, PortalSeminarsApplier(Topics()), offers, batch_size or len(offers)
    )
    one_by_one = await apply_in_batches(single, PortalSeminarsApplier(Topics()), offers, 1)
    assert published(at_once) == published(one_by_one)
    assert await state(whole) == await state(single)
    assert [
        (m.envelope.event_type, m.envelope.data.registration_id, getattr(m.envelope.data, "reason", None))
        for m in at_once
    ] == [
        ("registration.accepted", "R-N1", None),
        ("registration.waitlisted", "R-N2", None),
        ("registration.rejected", "R-N3", "duplicate_participant"),
        ("registration.accepted", "R-N2", None),  # S-N1 grows to three
        ("registration.accepted", "R-N4", None),
        ("registration.withdrawn", "R-N4", "seminar_cancelled"),
    ]
    accepted = at_once[0].envelope
    assert accepted.correlation_id == waiting[0].event_id
    assert isinstance(accepted.data, RegistrationAccepted)
    assert accepted.data.submitted_at == waiting[0].occurred_at

    # The sweep: with no grace left, the one whose seminar never came is rejected, once.
    for pool in databases:
        for _ in range(2):
            async with PostgresRegistrationUnitOfWork(pool) as uow:
                await ParkingSweeper(Topics(), timedelta(0)).sweep(uow)
    assert await state(whole) == await state(single)
    async with whole.acquire() as conn:
        rows = await conn.fetch("SELECT payload FROM outbox ORDER BY id")
    swept = [json.loads(row["payload"])["data"] for row in rows]
    assert [(data["registration_id"], data["reason"]) for data in swept] == [("R-N7", "unknown_seminar")]
    assert (await state(whole))["parked_submissions"] == []
