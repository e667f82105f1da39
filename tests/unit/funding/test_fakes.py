"""The in-memory unit of work behaves like a transaction and refuses what PostgreSQL refuses."""

from __future__ import annotations

import pytest

from services.funding.domain import Approve, LockPlan, NewFunding, Release
from services.funding.unit_of_work import InvariantError
from tests.unit.funding.fakes import InMemoryFundingDatabase, completed
from tests.unit.funding.samples import EINHEITSGEMEINDE as E
from tests.unit.funding.samples import application, directory, small_program


def approval(registration_id: str) -> NewFunding:
    return NewFunding(application(registration_id), Approve(registration_id, E, "2023", 50_000))


def plan(*registration_ids: str) -> LockPlan:
    return LockPlan(registration_ids, frozenset({"2023"}), frozenset({E}), may_release=False)


async def record_in_one_unit_of_work(database: InMemoryFundingDatabase, *changes: NewFunding) -> None:
    ids = [change.application.registration_id for change in changes]
    async with database.unit_of_work() as uow:
        await uow.lock_registrations(ids)
        await uow.lock_and_load(plan(*ids))
        await uow.record(changes)


def test_a_failed_unit_of_work_leaves_nothing_behind() -> None:
    database = InMemoryFundingDatabase(small_program(), directory())
    with pytest.raises(InvariantError, match="no free place"):
        completed(record_in_one_unit_of_work(database, approval("R1"), approval("R2"), approval("R3")))
    assert database.tables.fundings == {} and database.tables.quotas[E].held == 0
    completed(record_in_one_unit_of_work(database, approval("R1")))
    assert database.tables.quotas[E].held == 1 and database.tables.budgets["2023"].committed_cents == 50_000


def test_a_change_to_a_row_the_batch_did_not_lock_is_refused() -> None:
    database = InMemoryFundingDatabase(small_program(), directory())

    async def approve_without_locks() -> None:
        async with database.unit_of_work() as uow:
            await uow.lock_registrations(["R1"])
            await uow.record([approval("R1")])

    with pytest.raises(InvariantError, match="without its row lock"):
        completed(approve_without_locks())


def test_a_change_to_a_record_in_another_state_is_refused() -> None:
    database = InMemoryFundingDatabase(small_program(), directory())

    async def release_unknown() -> None:
        async with database.unit_of_work() as uow:
            await uow.record([Release("R1", E, "2023", 50_000)])

    with pytest.raises(InvariantError, match="no funding record"):
        completed(release_unknown())
