"""Operator actions and read helpers over the funding state, for the `lotse` command line.

Every function takes an asyncpg pool on the funding database (FUNDING_DATABASE_URL). The results
are frozen dataclasses (use `dataclasses.asdict` for JSON). Money is in integer cents. Closing a
period runs in the funding unit of work, like the applier; the views only read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from services.funding import store
from services.funding.domain import declines_at_closing
from services.funding.messages import decision_messages, log_effects
from services.funding.store import PostgresFundingUnitOfWork
from services.funding.unit_of_work import FundingUnitOfWork
from shared.db import Pool
from shared.logging import get_logger
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
