"""Issue 18 and 19 against PostgreSQL: a withdrawal before its acceptance, raises at start and by
an operator through the outbox, the programme a database belongs to, and follow-up courses with
the participant's keyed hash; each compared with the in-memory unit of work the unit tests use."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from services.funding import operations
from services.funding.app import MIGRATIONS
from services.funding.domain import Application
from services.funding.handlers import RegistrationEventsApplier
from services.funding.store import PostgresFundingUnitOfWork
from services.funding.unit_of_work import ProgramMismatchError
from shared.db import Pool, create_pool
from shared.events import Envelope
from shared.migrations import apply_migrations
from shared.outbox import OutboxMessage
from shared.program import Course, Program, parse_program
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.unit.funding.fakes import InMemoryFundingService, accepted_event, withdrawn_event
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    LANDKREIS,
    PARTICIPANT_KEY,
    SAMTGEMEINDE,
    SMALL_BUDGET_TOML,
    application,
    courses_program,
    directory,
    small_program,
)

E, L, S = EINHEITSGEMEINDE, LANDKREIS, SAMTGEMEINDE


async def migrated(make_database: DatabaseFactory, program: Program) -> Pool:
    pool = await create_pool(await make_database("funding"), max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn, MIGRATIONS, "funding")
    await operations.sync_program(pool, program, directory(), Topics())
    return pool


async def apply(
    pool: Pool, applier: RegistrationEventsApplier, events: Sequence[Envelope[Any]]
) -> list[OutboxMessage]:
    async with PostgresFundingUnitOfWork(pool) as uow:
        messages = list(await applier.apply_batch(uow, events))
        await uow.enqueue(messages)
    return messages


def decisions(messages: Sequence[OutboxMessage]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (m.envelope.event_type, m.key, m.envelope.model_dump(mode="json", include={"data"})["data"])
        for m in messages
    ]


async def outbox(pool: Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT event_type, convert_from(payload, 'UTF8') AS payload FROM outbox ORDER BY id"
    )
    return [(row["event_type"], row["payload"]) for row in rows]


def ids() -> Any:
    return (uuid.UUID(int=n) for n in range(1, 1000))


async def test_a_withdrawal_before_its_acceptance_funds_nothing(make_database: DatabaseFactory) -> None:
    pool = await migrated(make_database, small_program())
    applier = RegistrationEventsApplier(Topics(), small_program(), directory())
    event_ids = ids()
    withdrawal = withdrawn_event("R1", E, next(event_ids))
    acceptance = accepted_event(application("R1", E), next(event_ids))
    later = accepted_event(application("R2", E), next(event_ids))
    try:
        assert await apply(pool, applier, [withdrawal]) == []
        assert (
            await pool.fetchval("SELECT kommune_key FROM pending_withdrawals WHERE registration_id = 'R1'")
            == E
        )
        assert await apply(pool, applier, [acceptance]) == []
        row = await pool.fetchrow(
            "SELECT status, period_id, amount_cents, reason FROM fundings WHERE registration_id = 'R1'"
        )
        assert row is not None and tuple(row.values()) == (
            "withdrawn",
            None,
            None,
            "withdrawn_before_acceptance",
        )
        assert await pool.fetchval("SELECT count(*) FROM pending_withdrawals") == 0
        assert await pool.fetchval("SELECT held FROM quotas WHERE kommune_key = $1", E) == 0
        assert [m.envelope.event_type for m in await apply(pool, applier, [later])] == ["funding.approved"]
        # The in-memory twin publishes the same.
        twin = InMemoryFundingService(small_program(), directory())
        twin.deliver([withdrawal])
        twin.deliver([acceptance])
        twin.deliver([later])
        assert [m.envelope.event_id for m in twin.tables.outbox] == [
            uuid.UUID(str(row[0])) for row in await pool.fetch("SELECT event_id FROM outbox ORDER BY id")
        ]
    finally:
        await pool.close()


async def test_raises_at_start_and_by_an_operator_promote_through_the_outbox(
    make_database: DatabaseFactory,
) -> None:
    pool = await migrated(make_database, small_program())
    applier = RegistrationEventsApplier(Topics(), small_program(), directory())
    event_ids = ids()
    try:
        await apply(
            pool,
            applier,
            [
                accepted_event(application("L1", L, fee_cents=200_000), next(event_ids)),
                accepted_event(application("S1", S), next(event_ids)),
                accepted_event(application("E1", E), next(event_ids)),
                accepted_event(application("E2", E), next(event_ids)),
                accepted_event(application("E3", E), next(event_ids)),
            ],
        )
        before = len(await outbox(pool))
        raised = parse_program(SMALL_BUDGET_TOML.replace("budget_cents = 150_000", "budget_cents = 200_000"))
        result = await operations.sync_program(pool, raised, directory(), Topics())
        assert result.promoted == ["E1"]
        (approved,) = (await outbox(pool))[before:]
        assert approved[0] == "funding.approved" and '"promoted":true' in approved[1]
        assert await pool.fetchval("SELECT budget_cents FROM periods WHERE period_id = '2023'") == 200_000

        budget = await operations.set_period_budget(pool, "2023", 250_000, Topics())
        assert budget.promoted == ["E2"]
        with pytest.raises(operations.BudgetRefusedError):
            await operations.set_period_budget(pool, "2023", 100_000, Topics())
        # A later start with the old file keeps the operator's budget and promotes no one.
        assert (await operations.sync_program(pool, small_program(), directory(), Topics())).promoted == []
        row = await pool.fetchrow(
            "SELECT budget_cents, budget_set_by_operator FROM periods WHERE period_id = '2023'"
        )
        assert row is not None and tuple(row.values()) == (250_000, True)
        # Money for E3, but Göttingen's two places are held by E1 and E2: no one is promoted ...
        assert (await operations.set_period_budget(pool, "2023", 300_000, Topics())).promoted == []
        # ... until a start with three places.
        more_places = parse_program(SMALL_BUDGET_TOML.replace("places = 2", "places = 3"))
        assert (await operations.sync_program(pool, more_places, directory(), Topics())).promoted == ["E3"]
        assert await pool.fetchval("SELECT held FROM quotas WHERE kommune_key = $1", E) == 3
    finally:
        await pool.close()


async def test_a_database_refuses_another_programme(make_database: DatabaseFactory) -> None:
    pool = await migrated(make_database, small_program())
    try:
        with pytest.raises(ProgramMismatchError, match="started with programme 'small', not 'courses'"):
            await operations.sync_program(pool, courses_program(), directory(), Topics())
        assert await pool.fetchval("SELECT program_id FROM funding_program") == "small"
    finally:
        await pool.close()


async def test_follow_up_courses_by_the_participants_keyed_hash(make_database: DatabaseFactory) -> None:
    program = courses_program()
    pool = await migrated(make_database, program)
    applier = RegistrationEventsApplier(Topics(), program, directory(), PARTICIPANT_KEY)
    event_ids = ids()

    def course(rid: str, course: Course = Course.BASIC) -> Application:
        return Application(rid, E, "S-1", date(2023, 5, 2), date(2023, 5, 3), 100_000, course=course)

    events = [
        accepted_event(course("F0", Course.FOLLOW_UP), next(event_ids), "erika@example.org"),
        accepted_event(course("B1"), next(event_ids), "erika@example.org"),
        accepted_event(course("F1", Course.FOLLOW_UP), next(event_ids), "Erika@Example.org"),
        accepted_event(course("F2", Course.FOLLOW_UP), next(event_ids), "max@example.org"),
    ]
    try:
        messages = await apply(pool, applier, events)
        assert [(m.envelope.event_type, m.envelope.data.registration_id) for m in messages] == [
            ("funding.declined", "F0"),
            ("funding.approved", "B1"),
            ("funding.approved", "F1"),
            ("funding.declined", "F2"),
        ]
        assert [m.envelope.data.reason for m in messages if m.envelope.event_type == "funding.declined"] == [
            "prerequisite_missing"
        ] * 2
        rows = await pool.fetch(
            "SELECT registration_id, course, takes_place, participant_hash FROM fundings ORDER BY 1"
        )
        assert all(row["participant_hash"].startswith("v1:") for row in rows)
        assert not any("@" in row["participant_hash"] for row in rows)
        assert {row["registration_id"]: row["takes_place"] for row in rows}["F1"] is False
        assert await pool.fetchval("SELECT held FROM quotas WHERE kommune_key = $1", E) == 1
        # Withdrawing the follow-up frees its money and no place.
        released = await apply(pool, applier, [withdrawn_event("F1", E, next(event_ids))])
        assert [m.envelope.event_type for m in released] == ["funding.released"]
        assert await pool.fetchval("SELECT held FROM quotas WHERE kommune_key = $1", E) == 1
        twin = InMemoryFundingService(program, directory(), PARTICIPANT_KEY)
        twin.deliver(events)
        assert decisions(twin.tables.outbox) == decisions(messages)
    finally:
        await pool.close()


async def test_leaving_the_money_waitlist_promotes_the_next_that_fits(make_database: DatabaseFactory) -> None:
    pool = await migrated(make_database, small_program())
    applier = RegistrationEventsApplier(Topics(), small_program(), directory())
    event_ids = ids()
    try:
        await apply(
            pool,
            applier,
            [
                accepted_event(application("L1", L, fee_cents=200_000), next(event_ids)),
                accepted_event(application("S1", S), next(event_ids)),
                accepted_event(application("K1", "031010000000", fee_cents=200_000), next(event_ids)),
                accepted_event(application("E1", E), next(event_ids)),
                withdrawn_event("S1", S, next(event_ids)),
            ],
        )
        # 2023's 150,000: L1 holds 100,000; 50,000 are free again, but K1 (100,000) comes first
        # and does not fit, so E1 (50,000) waits behind it.
        assert await pool.fetchval("SELECT status FROM fundings WHERE registration_id = 'E1'") == "waitlisted"
        messages = await apply(pool, applier, [withdrawn_event("K1", "031010000000", next(event_ids))])
        assert [(m.envelope.event_type, m.envelope.data.registration_id) for m in messages] == [
            ("funding.approved", "E1")
        ]
        assert messages[0].envelope.data.promoted is True
        assert (
            await pool.fetchval(
                "SELECT approved_cents - released_cents FROM periods WHERE period_id = '2023'"
            )
            == 150_000
        )
    finally:
        await pool.close()
