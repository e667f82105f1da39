"""Operator actions and read helpers over the funding state, for the `lotse` command line.

Every function takes an asyncpg pool on the funding database (FUNDING_DATABASE_URL). The results
are frozen dataclasses (use `dataclasses.asdict` for JSON). Money is in integer cents. Closing a
period runs in the funding unit of work, like the applier; the views only read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from services.funding import store
from services.funding.domain import (
    Approve,
    Effect,
    LockPlan,
    declines_at_closing,
    is_raise,
    plan_program_limits,
    promotions_after_raise,
    set_budget,
)
from services.funding.messages import decision_messages, log_effects
from services.funding.store import PostgresFundingUnitOfWork
from services.funding.unit_of_work import FundingUnitOfWork
from shared.db import Pool
from shared.directory import Directory
from shared.logging import get_logger
from shared.program import Program
from shared.topics import Topics

log = get_logger(__name__)

# Closing a period derives its event ids from this namespace and the period id, so that a
# repeated close can never publish a second decline for the same registration.
_CLOSE_NAMESPACE = uuid.UUID("6f0c3c1e-3b0e-4d5e-9a51-6c1f4c6f2d10")


class UnknownPeriodError(LookupError):
    pass


@dataclass(frozen=True)
class ClosedPeriod:
    period_id: str
    declined: list[str]  # registration ids declined by this call, in order of arrival
    already_closed: bool  # the period was closed before this call


async def close_period(pool: Pool, period_id: str, topics: Topics) -> ClosedPeriod:
    """Close a funding period: every registration still waitlisted in it gets `funding.declined`
    with `period_closed` (through the outbox), and later registrations in it are declined too.

    One transaction. Idempotent: running it again declines nothing more. Raises
    UnknownPeriodError for a period that is not in the programme.
    """
    async with PostgresFundingUnitOfWork(pool) as uow:
        return await close_period_in(uow, period_id, topics)


async def close_period_in(uow: FundingUnitOfWork, period_id: str, topics: Topics) -> ClosedPeriod:
    """`close_period` inside a unit of work the caller commits."""
    cause = uuid.uuid5(_CLOSE_NAMESPACE, period_id)
    closing = await uow.mark_period_closed(period_id)
    if closing is None:
        raise UnknownPeriodError(f"no funding period {period_id!r}")
    declines = declines_at_closing(closing.waitlisted)
    await uow.record(declines)
    await uow.enqueue(decision_messages(topics.funding_decisions, cause, cause, declines))
    log_effects(declines)
    log.info("funding period closed", period_id=period_id, declined=len(declines))
    return ClosedPeriod(period_id, [d.registration_id for d in declines], closing.before.closed)


@dataclass(frozen=True)
class ClosingEntry:
    registration_id: str
    kommune_key: str
    waitlist_reason: str  # quota_exhausted or budget_exhausted: what it waits for now
    amount_cents: int


@dataclass(frozen=True)
class ClosingPreview:
    period_id: str
    already_closed: bool  # closing it would be refused (and declines nothing)
    declined: list[ClosingEntry]  # what closing it now declines with period_closed, in order


async def closing_preview(pool: Pool, period_id: str) -> ClosingPreview:
    """What `close_period` would decline now, without changing anything (`lotse close-period
    --dry-run`): the same rule (`declines_at_closing`) over the same entries, read in one
    snapshot. Raises UnknownPeriodError."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        period = await store.read_period(conn, period_id)
        if period is None:
            raise UnknownPeriodError(f"no funding period {period_id!r}")
        waiting = await store.waiting_in_period(conn, period_id)
    by_id = {entry.registration_id: entry for entry in waiting}
    declined = [
        ClosingEntry(
            decline.registration_id,
            decline.kommune_key,
            str(by_id[decline.registration_id].reason),
            by_id[decline.registration_id].amount_cents or 0,
        )
        for decline in declines_at_closing(waiting)
    ]
    return ClosingPreview(period_id, period.closed, declined)


@dataclass(frozen=True)
class ReopenedPeriod:
    period_id: str
    was_closed: bool  # False: the period was open, nothing changed


async def reopen_period_in(uow: FundingUnitOfWork, period_id: str) -> ReopenedPeriod:
    """Open a closed period again, inside a unit of work the caller commits: registrations that
    come for it from now on are decided again; those declined with `period_closed` stay declined
    (nothing waits in a closed period, so nothing is promoted). An open period is left as it is.
    Raises UnknownPeriodError."""
    before = await uow.mark_period_reopened(period_id)
    if before is None:
        raise UnknownPeriodError(f"no funding period {period_id!r}")
    if before.closed:
        log.info("funding period reopened", period_id=period_id)
    return ReopenedPeriod(period_id, before.closed)


@dataclass(frozen=True)
class ProgramSync:
    raised_periods: list[str]
    raised_kommunen: list[str]
    promoted: list[str]  # registration ids approved from the waitlists, in order


async def sync_program(pool: Pool, program: Program, directory: Directory, topics: Topics) -> ProgramSync:
    """At start: bind the database to the programme, write its periods and every eligible
    Kommune's places, and promote from the waitlists where a budget or places were raised.

    One transaction; promotions go through the outbox like every decision. A period's budget set
    by an operator (`set_period_budget`) is kept; otherwise the file's value applies. Raises
    ProgramMismatchError for a database started with another programme, and
    BudgetBelowCommittedError / PlacesBelowHeldError for a file that lowers a limit below what
    is committed or held (the service does not start rather than overdraw).
    """
    async with PostgresFundingUnitOfWork(pool) as uow:
        return await sync_program_in(uow, program, directory, topics)


async def sync_program_in(
    uow: FundingUnitOfWork, program: Program, directory: Directory, topics: Topics
) -> ProgramSync:
    """`sync_program` inside a unit of work the caller commits."""
    await uow.bind_program(program.id)
    limits = await uow.lock_limits()
    changes = plan_program_limits(program, directory, limits.budgets, limits.quotas)
    await uow.write_limits(program.periods, changes)
    promoted = await _promote_after_raise(
        uow,
        set(changes.budgets) | set(limits.budgets),
        changes.raised_periods,
        changes.raised_kommunen,
        topics,
    )
    log.info(
        "programme loaded",
        program=program.id,
        periods=[p.id for p in program.periods],
        raised_periods=sorted(changes.raised_periods),
        raised_kommunen=len(changes.raised_kommunen),
        promoted=len(promoted),
    )
    return ProgramSync(sorted(changes.raised_periods), sorted(changes.raised_kommunen), promoted)


class BudgetRefusedError(ValueError):
    """An operator's budget that cannot be set (below what the period has committed)."""

    def __init__(self, message: str, committed_cents: int) -> None:
        super().__init__(message)
        self.committed_cents = committed_cents


@dataclass(frozen=True)
class BudgetSet:
    period_id: str
    budget_cents_before: int | None  # None: unlimited
    budget_cents: int | None
    promoted: list[str]  # registration ids approved from the money waitlist, in order


async def set_period_budget(
    pool: Pool, period_id: str, budget_cents: int | None, topics: Topics
) -> BudgetSet:
    """An operator sets a period's budget (None: unlimited), for `lotse budget set`.

    The value is kept by later starts whatever the programme file says. A raise promotes from
    the waitlists (funding.approved with promoted: true, through the outbox); lowering below
    what is committed is refused (BudgetRefusedError). Raises UnknownPeriodError.
    """
    async with PostgresFundingUnitOfWork(pool) as uow:
        return await set_period_budget_in(uow, period_id, budget_cents, topics)


async def set_period_budget_in(
    uow: FundingUnitOfWork,
    period_id: str,
    budget_cents: int | None,
    topics: Topics,
    *,
    cause: uuid.UUID | None = None,
) -> BudgetSet:
    """`set_period_budget` inside a unit of work the caller commits. `cause`: what the
    promotions' event ids derive from and correlate with (a command's id); a fresh one if None."""
    limits = await uow.lock_limits()
    before = limits.budgets.get(period_id)
    if before is None:
        raise UnknownPeriodError(f"no funding period {period_id!r}")
    try:
        after = set_budget(before, budget_cents, by_operator=True)
    except ValueError as exc:
        raise BudgetRefusedError(str(exc), before.committed_cents) from exc
    await uow.set_budget(after)
    raised = {period_id} if is_raise(before.budget_cents, budget_cents) else set()
    promoted = await _promote_after_raise(uow, set(limits.budgets), raised, set(), topics, cause=cause)
    log.info(
        "funding budget set by operator",
        period_id=period_id,
        budget_cents=budget_cents,
        promoted=len(promoted),
    )
    return BudgetSet(period_id, before.budget_cents, budget_cents, promoted)


async def _promote_after_raise(
    uow: FundingUnitOfWork,
    period_ids: set[str],
    raised_periods: Iterable[str],
    raised_kommunen: Iterable[str],
    topics: Topics,
    *,
    cause: uuid.UUID | None = None,
) -> list[str]:
    """Promote from the waitlists after a raise, within the unit of work; the approved ids.
    Every raise is a cause of its own (`cause`, or a fresh id): a later raise must not reuse
    these event ids."""
    periods, kommunen = frozenset(raised_periods), frozenset(raised_kommunen)
    if not periods and not kommunen:
        return []
    state = await uow.lock_and_load(LockPlan((), frozenset(period_ids), kommunen, may_release=True))
    effects: list[Effect] = promotions_after_raise(state, periods, kommunen)
    await uow.record(effects)
    cause = cause or uuid.uuid4()
    await uow.enqueue(decision_messages(topics.funding_decisions, cause, cause, effects))
    log_effects(effects)
    return [effect.registration_id for effect in effects if isinstance(effect, Approve)]


@dataclass(frozen=True)
class BudgetFigures:
    period_id: str
    starts_on: date
    ends_on: date
    budget_cents: int | None  # None: unlimited
    approved_cents: int  # everything ever approved in the period
    released_cents: int  # given back by withdrawals
    committed_cents: int  # approved - released
    remaining_cents: int | None  # None: unlimited
    waitlisted: int  # registrations waiting in the period (for a place or for money)
    closed: bool


async def budget_figures(pool: Pool) -> list[BudgetFigures]:
    """Per period, in date order: budget, approved, released, committed, remaining, waitlisted."""
    async with pool.acquire() as conn:
        rows = await store.period_figures(conn)
    figures = []
    for row in rows:
        committed = row["approved_cents"] - row["released_cents"]
        budget = row["budget_cents"]
        figures.append(
            BudgetFigures(
                period_id=row["period_id"],
                starts_on=row["starts_on"],
                ends_on=row["ends_on"],
                budget_cents=budget,
                approved_cents=row["approved_cents"],
                released_cents=row["released_cents"],
                committed_cents=committed,
                remaining_cents=None if budget is None else budget - committed,
                waitlisted=row["waitlisted"],
                closed=row["closed_at"] is not None,
            )
        )
    return figures


@dataclass(frozen=True)
class WaitlistEntry:
    registration_id: str
    kommune_key: str
    period_id: str
    reason: str  # quota_exhausted (waits for a place) or budget_exhausted (waits for money)
    amount_cents: int
    position: int  # 1-based: in the Kommune's queue (quota_exhausted) or the period's (budget)
    waitlisted_at: datetime


async def waitlist(pool: Pool, period_id: str | None = None) -> list[WaitlistEntry]:
    """The waitlisted registrations (of one period, or all), by period and then in promotion order
    (order of arrival)."""
    async with pool.acquire() as conn:
        rows = await store.waitlist_view(conn, period_id)
    return [
        WaitlistEntry(
            registration_id=row["registration_id"],
            kommune_key=row["kommune_key"],
            period_id=row["period_id"],
            reason=row["reason"],
            amount_cents=row["amount_cents"],
            position=row["position"],
            waitlisted_at=row["decided_at"],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class RegistrationFunding:
    registration_id: str
    seminar_id: str
    seminar_starts_on: date
    fee_cents: int
    status: str  # approved, waitlisted, declined, released, withdrawn
    period_id: str | None
    reason: str | None  # the waitlist or decline reason
    amount_cents: int | None
    promoted: bool  # approved from the waitlist
    decided_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class KommuneFunding:
    kommune_key: str
    places: int | None  # funded places over the programme; None: not eligible (no quota)
    held: int  # approved registrations it holds now
    registrations: list[RegistrationFunding]  # in order of decision


async def kommune_funding(pool: Pool, kommune_key: str) -> KommuneFunding:
    """A Kommune's places and every registration's funding state (by the canonical key)."""
    async with pool.acquire() as conn:
        quota = (await store.read_quotas(conn, [kommune_key])).get(kommune_key)
        rows = await store.kommune_fundings(conn, kommune_key)
    return KommuneFunding(
        kommune_key=kommune_key,
        places=None if quota is None else quota.places,
        held=0 if quota is None else quota.held,
        registrations=[RegistrationFunding(**dict(row)) for row in rows],
    )
