"""Pure funding decisions: first decisions, releases, promotions and period closing.

No I/O here. The handlers lock and read the state a decision needs, ask this module what
happens, and write the answer (effects) with conditional updates that PostgreSQL checks again.

First decision for an accepted registration, in this order:
unknown Kommune -> not eligible -> outside every period -> period closed -> quota used up
(waitlisted `quota_exhausted`) -> not enough budget left (waitlisted `budget_exhausted`) -> approved.
A registration that already has a funding record gets no second first decision.

After a release (the withdrawal of an approved registration), promotions:
1. while the Kommune has a free place, its `quota_exhausted` entries, earliest first: approved if
   their period's budget allows their amount; if not, the entry now waits for money instead of a
   place and moves to its period's budget waitlist (keeping its place in the order of arrival),
   published as `funding.waitlisted` `budget_exhausted`, and the next entry is considered;
2. then, while money is left, the earliest `budget_exhausted` entries whose Kommune has a free
   place: in the released period first, then in the other open periods (the Kommune's freed
   place may unblock its entry there). First come first served: the first such entry whose
   amount does not fit ends a period's round, so later (smaller) requests never overtake it.

So after every event: no entry waits for a place while its Kommune has one free, and in every
open period the first entry waiting for money whose Kommune has a free place does not fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from shared.directory import Kommune
from shared.events import FundingDeclineReason, FundingWaitlistReason
from shared.program import Program


class Status(StrEnum):
    APPROVED = "approved"
    WAITLISTED = "waitlisted"
    DECLINED = "declined"
    RELEASED = "released"  # was approved, then withdrawn: its place and money were freed
    WITHDRAWN = "withdrawn"  # was waitlisted, then withdrawn


@dataclass(frozen=True)
class Application:
    """What funding needs from a `registration.accepted` event (no personal data)."""

    registration_id: str
    kommune_key: str
    seminar_starts_on: date
    seminar_ends_on: date
    fee_cents: int


@dataclass(frozen=True)
class Funding:
    """A registration's stored funding state. `seq` orders waitlisted entries by arrival."""

    registration_id: str
    kommune_key: str
    status: Status
    period_id: str | None = None
    reason: str | None = None
    amount_cents: int | None = None
    seq: int | None = None


@dataclass(frozen=True)
class Budget:
    """A period's money: `budget_cents` None is unlimited. Committed = approved - released."""

    period_id: str
    budget_cents: int | None
    approved_cents: int = 0
    released_cents: int = 0
    closed: bool = False

    @property
    def committed_cents(self) -> int:
        return self.approved_cents - self.released_cents

    @property
    def remaining_cents(self) -> int | None:
        return None if self.budget_cents is None else self.budget_cents - self.committed_cents

    def allows(self, amount_cents: int) -> bool:
        remaining = self.remaining_cents
        return remaining is None or amount_cents <= remaining

    def approve(self, amount_cents: int) -> Budget:
        return replace(self, approved_cents=self.approved_cents + amount_cents)

    def release(self, amount_cents: int) -> Budget:
        return replace(self, released_cents=self.released_cents + amount_cents)


@dataclass(frozen=True)
class QuotaState:
    """A Kommune's funded places over the whole programme and how many it holds now."""

    kommune_key: str
    places: int
    held: int = 0

    @property
    def has_room(self) -> bool:
        return self.held < self.places

    def take(self) -> QuotaState:
        return replace(self, held=self.held + 1)

    def free(self) -> QuotaState:
        return replace(self, held=self.held - 1)


# --- effects: each is one state change and (except LeaveWaitlist) one published event --------


@dataclass(frozen=True)
class Approve:
    registration_id: str
    kommune_key: str
    period_id: str
    amount_cents: int
    promoted: bool = False  # False: a first decision (new record); True: from the waitlist


@dataclass(frozen=True)
class Waitlist:
    registration_id: str
    kommune_key: str
    period_id: str
    amount_cents: int
    reason: FundingWaitlistReason
    position: int
    requeued: bool = False  # True: an entry that changes from quota_exhausted to budget_exhausted


@dataclass(frozen=True)
class Decline:
    registration_id: str
    kommune_key: str
    reason: FundingDeclineReason
    period_id: str | None = None
    first: bool = True  # False: a waitlisted entry declined when its period closes


@dataclass(frozen=True)
class Release:
    registration_id: str
    kommune_key: str
    period_id: str
    amount_cents: int


@dataclass(frozen=True)
class LeaveWaitlist:
    registration_id: str


Effect = Approve | Waitlist | Decline | Release | LeaveWaitlist
FirstDecision = Approve | Waitlist | Decline


# --- first decisions -------------------------------------------------------------------------


def decide(
    program: Program,
    kommune: Kommune | None,
    application: Application,
    *,
    existing: Funding | None,
    budgets: Mapping[str, Budget],
    quota: QuotaState | None,
    quota_waiting: int,
    budget_waiting: Mapping[str, int],
) -> FirstDecision | None:
    """The first decision for an accepted registration; None if it was decided before.

    `existing`: the registration's funding record, if any (a redelivery or a seat promotion
    of a registration that was decided already gets no second first decision). `budgets`: every
    period's money; `quota`: the Kommune's places (None if it has none); `quota_waiting`: how
    many of the Kommune's entries wait for a place; `budget_waiting`: per period, how many
    entries wait for money. Positions are 1-based, at the end of the waitlist.
    """
    if existing is not None:
        return None
    registration_id, key = application.registration_id, application.kommune_key
    if kommune is None:
        return Decline(registration_id, key, "unknown_kommune")
    if not program.eligibility.admits(kommune):
        return Decline(registration_id, key, "kommune_not_eligible")
    period = program.period_for(application.seminar_starts_on)
    if period is None:
        return Decline(registration_id, key, "outside_funding_period")
    budget = budgets.get(period.id) or Budget(period.id, period.budget_cents)
    if budget.closed:
        return Decline(registration_id, key, "period_closed", period.id)
    amount = program.amount_cents(
        application.fee_cents, application.seminar_starts_on, application.seminar_ends_on
    )
    quota = quota or QuotaState(key, program.quota_for(kommune))
    if not quota.has_room:
        return Waitlist(registration_id, key, period.id, amount, "quota_exhausted", quota_waiting + 1)
    if not budget.allows(amount):
        position = budget_waiting.get(period.id, 0) + 1
        return Waitlist(registration_id, key, period.id, amount, "budget_exhausted", position)
    return Approve(registration_id, key, period.id, amount)


# --- withdrawals, releases and promotions ----------------------------------------------------


def on_withdrawn(
    existing: Funding | None,
    *,
    budgets: Mapping[str, Budget],
    quotas: Mapping[str, QuotaState],
    kommune_queue: Sequence[Funding],
    budget_queues: Mapping[str, Sequence[Funding]],
) -> list[Effect]:
    """What the withdrawal of a registration changes.

    An approved registration is released and its place and money promote others; a waitlisted one
    leaves its waitlist; anything else (declined, already withdrawn, never decided) changes nothing.

    `kommune_queue`: the withdrawn registration's Kommune's `quota_exhausted` entries;
    `budget_queues`: per period, its `budget_exhausted` entries; both in order of arrival.
    `quotas` holds every Kommune that appears in them.
    """
    if existing is None:
        return []
    if existing.status is Status.WAITLISTED:
        return [LeaveWaitlist(existing.registration_id)]
    if existing.status is not Status.APPROVED:
        return []
    assert existing.period_id is not None and existing.amount_cents is not None
    release = Release(
        existing.registration_id, existing.kommune_key, existing.period_id, existing.amount_cents
    )
    budgets = dict(budgets)
    budgets[release.period_id] = budgets[release.period_id].release(release.amount_cents)
    quotas = dict(quotas)
    quotas[release.kommune_key] = quotas[release.kommune_key].free()
    return [release, *plan_promotions(release, budgets, quotas, kommune_queue, budget_queues)]


def plan_promotions(
    release: Release,
    budgets: Mapping[str, Budget],
    quotas: Mapping[str, QuotaState],
    kommune_queue: Sequence[Funding],
    budget_queues: Mapping[str, Sequence[Funding]],
) -> list[Effect]:
    """The promotions after `release` (already applied to `budgets` and `quotas`)."""
    budgets = dict(budgets)
    quotas = dict(quotas)
    queues = {period_id: list(queue) for period_id, queue in budget_queues.items()}
    effects: list[Effect] = []

    def approve(entry: Funding) -> None:
        assert entry.period_id is not None and entry.amount_cents is not None
        budgets[entry.period_id] = budgets[entry.period_id].approve(entry.amount_cents)
        quotas[entry.kommune_key] = quotas[entry.kommune_key].take()
        effects.append(
            Approve(entry.registration_id, entry.kommune_key, entry.period_id, entry.amount_cents, True)
        )

    # 1. The Kommune's entries waiting for a place, earliest first, while it has a free place.
    for head in sorted((e for e in kommune_queue if _open(e, budgets)), key=_arrival):
        if not quotas[release.kommune_key].has_room:
            break
        assert head.period_id is not None and head.amount_cents is not None
        if budgets[head.period_id].allows(head.amount_cents):
            approve(head)
            continue
        queue = queues.setdefault(head.period_id, [])
        queue.append(replace(head, reason="budget_exhausted"))
        queue.sort(key=_arrival)
        position = 1 + [entry.registration_id for entry in queue].index(head.registration_id)
        effects.append(
            Waitlist(
                head.registration_id,
                head.kommune_key,
                head.period_id,
                head.amount_cents,
                "budget_exhausted",
                position,
                requeued=True,
            )
        )

    # 2. Entries waiting for money, while it lasts: the released period first (it has new money),
    # then the others (the Kommune's free place may unblock its entry there).
    others = sorted(period_id for period_id in queues if period_id != release.period_id)
    for period_id in [release.period_id, *others]:
        if budgets[period_id].closed:
            continue
        for entry in sorted(queues.get(period_id, []), key=_arrival):
            assert entry.amount_cents is not None
            if not quotas[entry.kommune_key].has_room:
                continue
            if not budgets[period_id].allows(entry.amount_cents):
                break
            approve(entry)
    return effects


def _arrival(entry: Funding) -> tuple[int, str]:
    return (entry.seq if entry.seq is not None else 0, entry.registration_id)


def _open(entry: Funding, budgets: Mapping[str, Budget]) -> bool:
    return entry.period_id is not None and not budgets[entry.period_id].closed


# --- closing a period ------------------------------------------------------------------------


def close_period(waitlisted: Sequence[Funding]) -> list[Decline]:
    """Closing a period declines every entry still waiting in it, in order of arrival."""
    return [
        Decline(entry.registration_id, entry.kommune_key, "period_closed", entry.period_id, first=False)
        for entry in sorted(waitlisted, key=_arrival)
        if entry.status is Status.WAITLISTED
    ]
