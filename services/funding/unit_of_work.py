"""The port between funding's appliers and its state: one transaction, locked in one order.

`store.PostgresFundingUnitOfWork` implements it over asyncpg beside the SQL; the unit tests use
an in-memory twin (tests/unit/funding/fakes.py) that refuses what the database refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from services.funding.domain import (
    BatchState,
    Budget,
    Funding,
    FundingChange,
    LimitChanges,
    LockPlan,
    QuotaState,
)
from shared.erasure import ErasureRequest
from shared.program import Period
from shared.unit_of_work import UnitOfWork


class InvariantError(RuntimeError):
    """The state refused a change the domain decided: state and decision disagree."""


class ProgramMismatchError(RuntimeError):
    """The database was started with another programme: its periods and places are not this one's."""


@dataclass(frozen=True)
class Limits:
    """Every period's money and every Kommune's places, as stored (locked)."""

    budgets: dict[str, Budget]
    quotas: dict[str, QuotaState]


@dataclass(frozen=True)
class PeriodClosing:
    """A period as it was when it was marked closed, and the entries still waiting in it."""

    before: Budget
    waitlisted: list[Funding]


class FundingUnitOfWork(UnitOfWork, Protocol):
    """The inbox and outbox, and the funding state a batch or an operator action changes.

    The locks follow ADR 0007: registration ids, then period rows, then quota rows. A change to
    a counter is refused when it would overdraw a quota or budget, and a change to a record
    when the record is not in the state the change expects (`InvariantError`).
    """

    async def lock_registrations(self, registration_ids: Sequence[str]) -> dict[str, Funding]:
        """Lock the registration ids (first in the lock order) and read their funding records."""

    async def erased_among(self, registration_ids: Sequence[str]) -> set[str]:
        """The ids among these (locked) whose personal data were erased (ADR 0018)."""

    async def erase(self, registration_ids: Sequence[str], request: ErasureRequest) -> dict[str, int | str]:
        """Lock the ids, take out their participant identities and stored personal fields, mark
        them erased and record the erasure; what went, per table, and when."""

    async def lock_and_load(self, plan: LockPlan) -> BatchState:
        """Lock the plan's periods, then its Kommunen, and read the state the batch needs."""

    async def record(self, changes: Sequence[FundingChange]) -> None:
        """Write the changes in order: new funding records, and effects on existing ones."""

    async def mark_period_closed(self, period_id: str) -> PeriodClosing | None:
        """Lock the period's row, mark it closed (once); None if there is no such period."""

    async def mark_period_reopened(self, period_id: str) -> Budget | None:
        """Lock the period's row and open it again if it is closed; the period as it was before,
        None if there is no such period."""

    async def bind_program(self, program_id: str) -> None:
        """Record the programme on a new database; ProgramMismatchError if it holds another."""

    async def lock_limits(self) -> Limits:
        """Lock every period row, then every quota row, and read them."""

    async def write_limits(self, periods: Sequence[Period], changes: LimitChanges) -> None:
        """Write the programme's periods with `changes.budgets`, and every Kommune's places
        (under the locks of `lock_limits`)."""

    async def set_budget(self, budget: Budget) -> None:
        """Write a period's budget and who set it (its row locked by `lock_limits`); refused
        below what the period has committed."""
