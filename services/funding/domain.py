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

So after every event: no entry waits for a place while its Kommune has one free; and after every
first decision and release, in every open period the first entry waiting for money whose Kommune
has a free place does not fit. (An entry that leaves the money waitlist promotes no one: the
entries behind it move up, and one that fits now is approved at the next release.)

A batch: `plan_locks` names the rows the batch may change (the applier's unit of work locks them
in the order of ADR 0007 and reads a `BatchState` under those locks), and a `FundingRun` decides
the batch's acceptances and withdrawals in order against that state, each seeing the ones before
it, and returns per event what it changes (`Outcome`), which the unit of work records in order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from enum import StrEnum

from shared.directory import Directory, Kommune
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
    seminar_id: str
    seminar_starts_on: date
    seminar_ends_on: date
    fee_cents: int


@dataclass(frozen=True)
class Withdrawal:
    """What funding needs from a `registration.withdrawn` event."""

    registration_id: str
    kommune_key: str


# The events of registration.events that funding acts on, in the terms of this module.
RegistrationEvent = Application | Withdrawal


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


@dataclass(frozen=True)
class NewFunding:
    """A first decision with the application it decides: a new funding record."""

    application: Application
    decision: FirstDecision


# What the unit of work records, in order: new records, and effects on existing records.
FundingChange = NewFunding | Effect


# --- first decisions -------------------------------------------------------------------------


def decide_first(
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

    def promote(entry: Funding) -> None:
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
            promote(head)
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
            promote(entry)
    return effects


def _arrival(entry: Funding) -> tuple[int, str]:
    return (entry.seq if entry.seq is not None else 0, entry.registration_id)


def _open(entry: Funding, budgets: Mapping[str, Budget]) -> bool:
    return entry.period_id is not None and not budgets[entry.period_id].closed


# --- closing a period ------------------------------------------------------------------------


def declines_at_closing(waitlisted: Sequence[Funding]) -> list[Decline]:
    """Closing a period declines every entry still waiting in it, in order of arrival."""
    return [
        Decline(entry.registration_id, entry.kommune_key, "period_closed", entry.period_id, first=False)
        for entry in sorted(waitlisted, key=_arrival)
        if entry.status is Status.WAITLISTED
    ]


# --- a batch: the rows it may change ---------------------------------------------------------


@dataclass(frozen=True)
class LockPlan:
    """The rows a batch may change, for its unit of work to lock in the order of ADR 0007.

    1. `registration_ids` (locked before the batch's funding records are read, which this plan
       is made from); 2. `period_ids`; 3. `kommune_keys` and, when the batch `may_release`, every
    Kommune with an entry waiting for money (known only once the periods are locked, see
    `kommunen_to_lock`). With a possible release, the state read under these locks includes
    the waitlisted entries a release may promote.
    """

    registration_ids: tuple[str, ...]
    period_ids: frozenset[str]
    kommune_keys: frozenset[str]
    may_release: bool

    def kommunen_to_lock(self, waiting_for_money: Iterable[Funding]) -> frozenset[str]:
        """The Kommunen to lock, given the entries waiting for money in any period (read under
        the locks of every period, when no one else can add such entries)."""
        if not self.may_release:
            return self.kommune_keys
        return self.kommune_keys | {entry.kommune_key for entry in waiting_for_money}


def plan_locks(
    program: Program, events: Sequence[RegistrationEvent], existing: Mapping[str, Funding]
) -> LockPlan:
    """Which periods and Kommunen a batch can reach, from its events and their funding records.

    An acceptance reaches its Kommune and its period. A withdrawal of a registration that is
    approved, waitlisted or not yet known may be a release by the time it is applied: the
    acceptance may come earlier in the batch, or another instance may promote a waitlisted one
    before the period rows are held. A release may promote in any period and any Kommune waiting
    for money, so those locks are taken up front, in order, rather than as the changes run.
    A declined, released or withdrawn registration's withdrawal changes nothing and reaches nothing.
    """
    period_ids: set[str] = set()
    kommune_keys: set[str] = set()
    may_release = False
    for event in events:
        if isinstance(event, Application):
            kommune_keys.add(event.kommune_key)
            period = program.period_for(event.seminar_starts_on)
            if period is not None:
                period_ids.add(period.id)
            continue
        record = existing.get(event.registration_id)
        if record is None or record.status in (Status.WAITLISTED, Status.APPROVED):
            kommune_keys.add(event.kommune_key)
            if record is not None:
                kommune_keys.add(record.kommune_key)
            may_release = True
    if may_release:
        period_ids |= {period.id for period in program.periods}
    return LockPlan(
        registration_ids=tuple(dict.fromkeys(event.registration_id for event in events)),
        period_ids=frozenset(period_ids),
        kommune_keys=frozenset(kommune_keys),
        may_release=may_release,
    )


@dataclass(frozen=True)
class BatchState:
    """What a batch is decided against, read under the locks of its `LockPlan`.

    `fundings`: the records of the batch's registrations and, with `waitlists_loaded`, every
    waitlisted entry a release may promote (all entries waiting for money; the entries of the
    plan's Kommunen waiting for a place). `budgets`: every period. `quotas`: the locked Kommunen
    that have places. `quota_waiting`: per Kommune of the plan, its entries waiting for a place;
    `budget_waiting`: per period, its entries waiting for money.
    """

    fundings: Mapping[str, Funding]
    budgets: Mapping[str, Budget]
    quotas: Mapping[str, QuotaState]
    quota_waiting: Mapping[str, int]
    budget_waiting: Mapping[str, int]
    waitlists_loaded: bool


# --- a batch: deciding its events in order ---------------------------------------------------


@dataclass(frozen=True)
class AcceptanceOutcome:
    """A first decision, or none for a registration decided before (`decided_before`)."""

    new_funding: NewFunding | None
    decided_before: Funding | None = None

    @property
    def effects(self) -> list[Effect]:
        return [] if self.new_funding is None else [self.new_funding.decision]

    @property
    def changes(self) -> list[FundingChange]:
        return [] if self.new_funding is None else [self.new_funding]


@dataclass(frozen=True)
class WithdrawalOutcome:
    """A release and its promotions, leaving a waitlist, or nothing (holds nothing)."""

    effects: list[Effect]

    @property
    def changes(self) -> list[FundingChange]:
        return list(self.effects)


Outcome = AcceptanceOutcome | WithdrawalOutcome


class WaitlistsNotLoadedError(RuntimeError):
    """A release found a state read without its waitlists: the lock plan missed a release."""


class FundingRun:
    """Decides a batch's events in order against one `BatchState`, each seeing the ones before it.

    Every decision is folded into the run's records, quotas, budgets and waiting counts, so that
    deciding the batch here gives what deciding each event against the stored state, after the
    one before it was recorded, would give. New waitlist entries sort after every stored one, in
    order of arrival, as their sequence numbers will when they are recorded under the same locks.
    """

    def __init__(self, program: Program, directory: Directory, state: BatchState) -> None:
        self._program = program
        self._directory = directory
        self._fundings = dict(state.fundings)
        self._budgets = dict(state.budgets)
        self._quotas = dict(state.quotas)
        self._quota_waiting = Counter(state.quota_waiting)
        self._budget_waiting = Counter(state.budget_waiting)
        self._waitlists_loaded = state.waitlists_loaded
        self._next_seq = 1 + max((f.seq for f in self._fundings.values() if f.seq is not None), default=0)

    def decide(self, events: Sequence[RegistrationEvent]) -> list[Outcome]:
        """One outcome per event, in order."""
        return [
            self._accept(event) if isinstance(event, Application) else self._withdraw(event)
            for event in events
        ]

    def _accept(self, application: Application) -> AcceptanceOutcome:
        existing = self._fundings.get(application.registration_id)
        if existing is not None:
            return AcceptanceOutcome(None, decided_before=existing)
        key = application.kommune_key
        decision = decide_first(
            self._program,
            self._directory.get(key),
            application,
            existing=None,
            budgets=self._budgets,
            quota=self._quotas.get(key),
            quota_waiting=self._quota_waiting[key],
            budget_waiting=self._budget_waiting,
        )
        assert decision is not None  # None only for an existing record
        new_funding = NewFunding(application, decision)
        self._fold_new(new_funding)
        return AcceptanceOutcome(new_funding)

    def _withdraw(self, withdrawal: Withdrawal) -> WithdrawalOutcome:
        existing = self._fundings.get(withdrawal.registration_id)
        kommune_queue: list[Funding] = []
        budget_queues: dict[str, list[Funding]] = {}
        if existing is not None and existing.status is Status.APPROVED:
            if not self._waitlists_loaded:
                raise WaitlistsNotLoadedError(f"release of {existing.registration_id}")
            waiting = [f for f in self._fundings.values() if f.status is Status.WAITLISTED]
            for entry in sorted(waiting, key=_arrival):
                if entry.reason == "quota_exhausted" and entry.kommune_key == existing.kommune_key:
                    kommune_queue.append(entry)
                elif entry.reason == "budget_exhausted" and entry.period_id is not None:
                    budget_queues.setdefault(entry.period_id, []).append(entry)
        effects = on_withdrawn(
            existing,
            budgets=self._budgets,
            quotas=self._quotas,
            kommune_queue=kommune_queue,
            budget_queues=budget_queues,
        )
        for effect in effects:
            self._fold_change(effect)
        return WithdrawalOutcome(effects)

    # --- the fold: what the next event of the batch must see ---------------------------------

    def _fold_new(self, new_funding: NewFunding) -> None:
        application, decision = new_funding.application, new_funding.decision
        key = application.kommune_key
        record = Funding(application.registration_id, key, Status.DECLINED, decision.period_id)
        if isinstance(decision, Approve):
            record = replace(record, status=Status.APPROVED, amount_cents=decision.amount_cents)
            self._hold_place_and_money(decision)
        elif isinstance(decision, Waitlist):
            record = replace(
                record,
                status=Status.WAITLISTED,
                reason=decision.reason,
                amount_cents=decision.amount_cents,
                seq=self._next_seq,
            )
            self._next_seq += 1
            self._waiting(record, +1)
        else:
            record = replace(record, reason=decision.reason)
        self._fundings[application.registration_id] = record

    def _fold_change(self, effect: Effect) -> None:
        entry = self._fundings[effect.registration_id]
        if isinstance(effect, Release):
            self._fundings[entry.registration_id] = replace(entry, status=Status.RELEASED)
            self._quotas[effect.kommune_key] = self._quotas[effect.kommune_key].free()
            self._budgets[effect.period_id] = self._budgets[effect.period_id].release(effect.amount_cents)
        elif isinstance(effect, Approve):  # a promotion
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(
                entry, status=Status.APPROVED, reason=None, seq=None
            )
            self._hold_place_and_money(effect)
        elif isinstance(effect, Waitlist):  # now waits for money instead of a place
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(entry, reason=effect.reason)
            self._waiting(self._fundings[entry.registration_id], +1)
        elif isinstance(effect, LeaveWaitlist):
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(entry, status=Status.WITHDRAWN, seq=None)
        else:  # a waitlisted entry declined
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(
                entry, status=Status.DECLINED, reason=effect.reason, seq=None
            )

    def _hold_place_and_money(self, approval: Approve) -> None:
        quota = self._quotas.get(approval.kommune_key)
        if quota is not None:
            self._quotas[approval.kommune_key] = quota.take()
        budget = self._budgets.get(approval.period_id)
        if budget is not None:
            self._budgets[approval.period_id] = budget.approve(approval.amount_cents)

    def _waiting(self, entry: Funding, change: int) -> None:
        if entry.reason == "quota_exhausted":
            self._quota_waiting[entry.kommune_key] += change
        elif entry.period_id is not None:
            self._budget_waiting[entry.period_id] += change
