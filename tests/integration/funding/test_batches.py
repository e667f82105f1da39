"""A batch applied at once decides exactly what the same events decide one at a time.

The applier decides a whole batch in memory, from state it read once under the batch's locks,
and writes runs of first decisions with one statement per table. This compares that with one
unit of work (transaction) per event, in two databases, through the PostgreSQL unit of work.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

import asyncpg
import pytest

from services.funding import operations
from services.funding.app import MIGRATIONS
from services.funding.domain import Approve, LockPlan, NewFunding, Release
from services.funding.handlers import RegistrationEventsApplier
from services.funding.store import PostgresFundingUnitOfWork
from services.funding.unit_of_work import InvariantError
from shared.db import Pool, create_pool
from shared.events import REGISTRATION_OUTCOME_EVENTS, Envelope, EventDecoder
from shared.migrations import apply_migrations
from shared.outbox import OutboxMessage
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.integration.funding.conftest import accepted, withdrawn
from tests.unit.funding.fakes import InMemoryFundingService, money_heads, whole_waitlists
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    KREISFREIE_STADT,
    LANDKREIS,
    MITGLIEDSGEMEINDE,
    SAMTGEMEINDE,
    UNKNOWN,
    application,
    directory,
    small_program,
)

pytestmark = pytest.mark.integration

IN_2022 = date(2022, 9, 6)


def scenario() -> list[Envelope[Any]]:
    """Quota and budget run out inside the batch; withdrawals release, promote, requeue and leave
    waitlists."""
    decoder = EventDecoder("registration.events", REGISTRATION_OUTCOME_EVENTS)
    messages = [
        accepted("B-1", EINHEITSGEMEINDE),
        accepted("B-2", EINHEITSGEMEINDE),
        accepted("B-3", EINHEITSGEMEINDE),  # quota: waits for a place
        accepted("B-4", LANDKREIS),  # the third approval in 2023 uses up the budget
        accepted("B-5", SAMTGEMEINDE),  # waits for money
        accepted("B-6", KREISFREIE_STADT),  # waits for money, behind B-5
        accepted("B-7", MITGLIEDSGEMEINDE),  # declined: not eligible
        accepted("B-8", UNKNOWN),  # declined: unknown
        accepted("B-9", KREISFREIE_STADT, starts_on=IN_2022),  # unlimited period
        accepted("B-10", KREISFREIE_STADT, starts_on=IN_2022),  # quota spans periods: waits
        accepted("B-1", EINHEITSGEMEINDE),  # decided before: nothing
        withdrawn("B-1", EINHEITSGEMEINDE),  # release: B-3 takes the place and the money
        accepted("B-11", SAMTGEMEINDE, starts_on=IN_2022),
        withdrawn("B-6", KREISFREIE_STADT),  # leaves the money waitlist
        withdrawn("B-4", LANDKREIS),  # money back: B-5 is approved
        accepted("B-12", LANDKREIS),  # the budget is full again: waits for money
        accepted("B-13", LANDKREIS, starts_on=IN_2022),
        accepted("B-14", KREISFREIE_STADT),  # K holds B-9 and B-10: waits for a place
        withdrawn("B-9", KREISFREIE_STADT),  # a place, but no money in 2023: B-14 now waits for money
        withdrawn("B-5", SAMTGEMEINDE),  # money back: B-12 is approved, B-14 still waits
        withdrawn("B-12", LANDKREIS),  # money back: the requeued B-14 is approved
    ]
    return [decoder.decode(json.dumps(value).encode()) for _, value in messages]


async def migrated(make_database: DatabaseFactory) -> Pool:
    pool = await create_pool(await make_database("funding"), max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn, MIGRATIONS, "funding")
    await operations.sync_program(pool, small_program(), directory(), Topics())
    return pool


def published(messages: Sequence[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Everything but the time of writing."""
    return [(m.topic, m.key, m.envelope.model_dump(mode="json", exclude={"occurred_at"})) for m in messages]


async def state(conn: Pool) -> dict[str, list[tuple[Any, ...]]]:
    fundings = await conn.fetch(
        """SELECT registration_id, kommune_key, status, period_id, reason, amount_cents, promoted,
                  rank() OVER (ORDER BY waitlist_seq) AS waitlist_rank
           FROM fundings ORDER BY registration_id"""
    )
    return {
        "fundings": [
            (*tuple(row.values())[:-1], row["waitlist_rank"] if row["status"] == "waitlisted" else None)
            for row in fundings
        ],
        "periods": [
            tuple(row.values())
            for row in await conn.fetch(
                "SELECT period_id, approved_cents, released_cents FROM periods ORDER BY period_id"
            )
        ],
        "quotas": [
            tuple(row.values())
            for row in await conn.fetch("SELECT kommune_key, held FROM quotas WHERE held > 0 ORDER BY 1")
        ],
    }


async def test_a_batch_decides_what_the_events_decide_one_at_a_time(make_database: DatabaseFactory) -> None:
    events = scenario()
    applier = RegistrationEventsApplier(Topics(), small_program(), directory())
    whole, single = await migrated(make_database), await migrated(make_database)
    try:
        async with PostgresFundingUnitOfWork(whole) as uow:
            at_once = await applier.apply_batch(uow, events)
        one_by_one: list[OutboxMessage] = []
        for event in events:
            async with PostgresFundingUnitOfWork(single) as uow:
                one_by_one.extend(await applier.apply_batch(uow, [event]))

        assert published(at_once) == published(one_by_one)
        assert await state(whole) == await state(single)
        # The in-memory unit of work the unit tests use publishes what PostgreSQL's does.
        in_memory = InMemoryFundingService(small_program(), directory())
        in_memory.deliver(events)
        assert published(in_memory.tables.outbox) == published(at_once)
        # The scenario reaches what it is meant to reach, so the comparison covers those paths.
        decisions = [(m.envelope.event_type, m.envelope.data.registration_id) for m in at_once]
        assert decisions.count(("funding.waitlisted", "B-3")) == 1  # for a place
        assert decisions.count(("funding.approved", "B-3")) == 1  # promoted after B-1's release
        assert ("funding.waitlisted", "B-6") in decisions
        assert ("funding.released", "B-1") in decisions
        assert ("funding.approved", "B-5") in decisions  # promoted after B-4's release
        assert ("funding.declined", "B-7") in decisions
        assert sum(1 for d in decisions if d[1] == "B-1") == 2  # approved once, released once
        assert decisions.count(("funding.waitlisted", "B-12")) == 1
        assert ("funding.approved", "B-12") in decisions  # promoted after B-5's release
        assert decisions.count(("funding.waitlisted", "B-14")) == 2  # for a place, then for money
        assert decisions[-1] == ("funding.approved", "B-14")  # the requeued entry, after B-12's release
    finally:
        await whole.close()
        await single.close()


async def test_the_postgresql_unit_of_work_refuses_what_the_in_memory_one_refuses(
    make_database: DatabaseFactory,
) -> None:
    pool = await migrated(make_database)
    approvals = [
        NewFunding(application(rid), Approve(rid, EINHEITSGEMEINDE, "2023", 50_000))
        for rid in ("R1", "R2", "R3")
    ]
    plan = LockPlan(("R1", "R2", "R3"), frozenset({"2023"}), frozenset({EINHEITSGEMEINDE}), may_release=False)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="within_quota"):
            async with PostgresFundingUnitOfWork(pool) as uow:
                await uow.lock_registrations(plan.registration_ids)
                await uow.lock_and_load(plan)
                await uow.record(approvals)
        with pytest.raises(InvariantError, match="not in the state the change expects"):
            async with PostgresFundingUnitOfWork(pool) as uow:
                await uow.record([Release("R1", EINHEITSGEMEINDE, "2023", 50_000)])
        # Both rolled back: nothing was written.
        assert await pool.fetchval("SELECT count(*) FROM fundings") == 0
        assert await pool.fetchval("SELECT sum(held) FROM quotas") == 0
    finally:
        await pool.close()


MONEY_WAITING_COUNTED = """
SELECT p.period_id, p.money_waiting,
       (SELECT count(*) FROM fundings f
        WHERE f.period_id = p.period_id AND f.status = 'waitlisted' AND f.reason = 'budget_exhausted')
           AS counted
FROM periods p ORDER BY p.period_id
"""


@pytest.mark.parametrize("batch_size", [1, 4, None], ids=["batches-of-one", "batches-of-four", "one-batch"])
async def test_heads_of_one_entry_decide_what_whole_waitlists_decide(
    make_database: DatabaseFactory, batch_size: int | None
) -> None:
    """ADR 0025 on PostgreSQL: a batch that needs more of a money waitlist than its head goes back
    to its savepoint, reads a longer head and takes the locks again, in order; what it decides is
    what whole waitlists give. The periods' waiting counts (migration 0004's triggers) stay the
    counts of the table throughout."""
    events = scenario()
    applier = RegistrationEventsApplier(Topics(), small_program(), directory())
    heads, whole = await migrated(make_database), await migrated(make_database)
    size = batch_size or len(events)
    try:
        published_heads: list[OutboxMessage] = []
        published_whole: list[OutboxMessage] = []
        for start in range(0, len(events), size):
            batch = events[start : start + size]
            with money_heads(1, growth=2):
                async with PostgresFundingUnitOfWork(heads) as uow:
                    published_heads.extend(await applier.apply_batch(uow, batch))
            with whole_waitlists():
                async with PostgresFundingUnitOfWork(whole) as uow:
                    published_whole.extend(await applier.apply_batch(uow, batch))
            for pool in (heads, whole):
                counts = await pool.fetch(MONEY_WAITING_COUNTED)
                assert [row["money_waiting"] for row in counts] == [row["counted"] for row in counts]
        assert published(published_heads) == published(published_whole)
        assert await state(heads) == await state(whole)
        assert ("funding.approved", "B-5") in [
            (m.envelope.event_type, m.envelope.data.registration_id) for m in published_heads
        ]
    finally:
        await heads.close()
        await whole.close()


async def test_a_head_read_again_holds_only_the_locks_of_its_own_read(
    make_database: DatabaseFactory,
) -> None:
    """Going back to the savepoint gives up what the earlier read locked, so the read after it
    takes its locks afresh, in the order of ADR 0007 (periods, then Kommunen in one ordered
    statement). 2023's money waitlist here: S1 (Samtgemeinde), then E2 (Einheitsgemeinde)."""
    pool = await migrated(make_database)
    applier = RegistrationEventsApplier(Topics(), small_program(), directory())
    decoder = EventDecoder("registration.events", REGISTRATION_OUTCOME_EVENTS)
    filling = [
        accepted("E1", EINHEITSGEMEINDE),
        accepted("K1", KREISFREIE_STADT),
        accepted("L1", LANDKREIS),
        accepted("S1", SAMTGEMEINDE),
        accepted("E2", EINHEITSGEMEINDE),
    ]
    try:
        async with PostgresFundingUnitOfWork(pool) as uow:
            await applier.apply_batch(uow, [decoder.decode(json.dumps(v).encode()) for _, v in filling])
        plan = LockPlan((), frozenset({"2021-2022", "2023"}), frozenset(), may_release=True)
        async with PostgresFundingUnitOfWork(pool) as uow, pool.acquire() as other:

            async def locked(kommune_key: str) -> bool:
                try:
                    async with other.transaction():
                        await other.execute(
                            "SELECT 1 FROM quotas WHERE kommune_key = $1 FOR UPDATE NOWAIT", kommune_key
                        )
                except asyncpg.LockNotAvailableError:
                    return True
                return False

            longer = await uow.lock_and_load(replace(plan, money_head=8))
            assert {"S1", "E2"} <= set(longer.fundings)
            assert await locked(SAMTGEMEINDE) and await locked(EINHEITSGEMEINDE)
            shorter = await uow.lock_and_load(replace(plan, money_head=1))
            assert "S1" in shorter.fundings and "E2" not in shorter.fundings
            assert shorter.money_loaded_through == {"2023": longer.fundings["S1"].seq}
            assert await locked(SAMTGEMEINDE) and not await locked(EINHEITSGEMEINDE)
            assert shorter.budget_waiting == {"2023": 2}  # counted in full, whatever was read
    finally:
        await pool.close()
