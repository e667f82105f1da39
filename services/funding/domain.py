"""Pure funding decisions: first decisions, releases, promotions and period closing.

No I/O here. The handlers lock and read the state a decision needs, ask this module what
happens, and write the answer (effects) with conditional updates that PostgreSQL checks again.

First decision for an accepted registration, in this order (ADR 0014):
withdrawn before it was accepted (recorded as withdrawn, nothing published) -> unknown Kommune
-> not eligible -> course not funded -> registered after the seminar began -> outside every
period -> period closed -> follow-up without a funded basic course (`prerequisite_missing`) ->
quota used up, for a course that takes a place (waitlisted `quota_exhausted`) -> not enough
budget left (waitlisted `budget_exhausted`) -> approved.
A registration that already has a funding record gets no second first decision. A withdrawal of
a registration funding has not seen yet (a dead letter replayed, reordering) is remembered
(`RememberWithdrawal`), so that its later acceptance is funded with nothing.

After a release (the withdrawal of an approved registration), promotions:
1. while the Kommune has a free place, its `quota_exhausted` entries, earliest first: approved if
   their period's budget allows their amount; if not, the entry now waits for money instead of a
   place and moves to its period's budget waitlist (keeping its place in the order of arrival),
   published as `funding.waitlisted` `budget_exhausted`, and the next entry is considered;
2. then, while money is left, the earliest `budget_exhausted` entries whose Kommune has a free
   place: in the released period first, then in the other open periods (the Kommune's freed
   place may unblock its entry there). First come first served: the first such entry whose
   amount does not fit ends a period's round, so later (smaller) requests never overtake it.

When an entry waiting for money leaves its waitlist, the entries behind it in its period are
considered as after a release (the first one that fits now is approved). When a period's budget
or a Kommune's places are raised (programme file at start, or an operator), the same promotions
run: the raised Kommunen's entries waiting for a place, then the entries waiting for money, in
the raised periods first (`promotions_after_raise`).

So after every event: no entry waits for a place while its Kommune has one free; and in every
open period the first entry waiting for money whose Kommune has a free place does not fit.

A batch: `plan_locks` names the rows the batch may change (the applier's unit of work locks them
in the order of ADR 0007 and reads a `BatchState` under those locks), and a `FundingRun` decides
the batch's acceptances and withdrawals in order against that state, each seeing the ones before
it, and returns per event what it changes (`Outcome`), which the unit of work records in order.

Erased registrations (ADR 0018): an application of a registration whose personal data were
erased is decided like any other (the money and the counts stay complete), but without its
participant identity (`without_erased_identities`): a redelivered acceptance or a replayed
dead letter never stores the pseudonym again. Without it a follow-up course finds no
prerequisite.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from shared.directory import Directory, Kommune
from shared.events import FundingDeclineReason, FundingWaitlistReason
from shared.program import Course, Program, seminar_days


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
    course: Course = Course.BASIC
    # When the registration was submitted (None: an older producer; never too late then).
    submitted_at: datetime | None = None
    # The keyed hash of the participant's normalised email (participants.py); None where the
    # programme checks no prerequisite, so that funding keeps no identity it does not need.
    participant_hash: str | None = None


@dataclass(frozen=True)
class Withdrawal:
    """What funding needs from a `registration.withdrawn` event."""

    registration_id: str
    kommune_key: str


# The events of registration.events that funding acts on, in the terms of this module.
RegistrationEvent = Application | Withdrawal


def without_erased_identities(
    inputs: Sequence[RegistrationEvent], erased: Iterable[str]
) -> list[RegistrationEvent]:
    """The events with the participant identity of every erased registration taken out."""
    gone = set(erased)
    return [
        replace(event, participant_hash=None)
        if isinstance(event, Application) and event.registration_id in gone
        else event
        for event in inputs
    ]


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
    course: Course = Course.BASIC
    takes_place: bool = True  # False: a follow-up course funded without a place of the quota
    participant_hash: str | None = None

    @property
    def holds_funded_basic(self) -> bool:
        """An approved, unreleased basic course of a known participant (admits a follow-up)."""
        return (
            self.status is Status.APPROVED
            and self.course is Course.BASIC
            and self.participant_hash is not None
        )


@dataclass(frozen=True)
class Budget:
    """A period's money: `budget_cents` None is unlimited. Committed = approved - released.

    `set_by_operator`: the budget was set by an operator, so the programme file's value no
    longer applies at start."""

    period_id: str
    budget_cents: int | None
    approved_cents: int = 0
    released_cents: int = 0
    closed: bool = False
    set_by_operator: bool = False

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
    takes_place: bool = True  # False: holds money only (a follow-up course of ADR 0014)


@dataclass(frozen=True)
class Waitlist:
    registration_id: str
    kommune_key: str
    period_id: str
    amount_cents: int
    reason: FundingWaitlistReason
    position: int
    requeued: bool = False  # True: an entry that changes from quota_exhausted to budget_exhausted
    takes_place: bool = True


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
    takes_place: bool = True  # False: frees money only


@dataclass(frozen=True)
class LeaveWaitlist:
    registration_id: str


@dataclass(frozen=True)
class RememberWithdrawal:
    """The withdrawal of a registration funding has no record of: kept for its acceptance."""

    registration_id: str
    kommune_key: str


@dataclass(frozen=True)
class WithdrawnBeforeAcceptance:
    """The first decision for an acceptance whose withdrawal came first: a record that is
    withdrawn, holding nothing. Nothing is published: the registration is withdrawn already,
    and its Kommune was told so by registration."""

    registration_id: str
    kommune_key: str
    period_id: None = None


Effect = (
    Approve | Waitlist | Decline | Release | LeaveWaitlist | RememberWithdrawal | WithdrawnBeforeAcceptance
)
FirstDecision = Approve | Waitlist | Decline | WithdrawnBeforeAcceptance


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
    withdrawn_before: bool = False,
    holds_funded_basic: bool = False,
) -> FirstDecision | None:
    """The first decision for an accepted registration; None if it was decided before.

    `existing`: the registration's funding record, if any (a redelivery or a seat promotion
    of a registration that was decided already gets no second first decision). `budgets`: every
    period's money; `quota`: the Kommune's places (None if it has none); `quota_waiting`: how
    many of the Kommune's entries wait for a place; `budget_waiting`: per period, how many
    entries wait for money. Positions are 1-based, at the end of the waitlist.
    `withdrawn_before`: its withdrawal came first; `holds_funded_basic`: the same participant
    holds an approved, unreleased basic course (the prerequisite of a follow-up).
    """
    if existing is not None:
        return None
    registration_id, key = application.registration_id, application.kommune_key
    if withdrawn_before:
        return WithdrawnBeforeAcceptance(registration_id, key)
    if kommune is None:
        return Decline(registration_id, key, "unknown_kommune")
    if not program.eligible(kommune):
        return Decline(registration_id, key, "kommune_not_eligible")
    course = application.course
    if not program.course_funded(course):
        return Decline(registration_id, key, "course_not_funded")
    submitted_at = application.submitted_at
    if submitted_at is not None and program.registered_too_late(submitted_at, application.seminar_starts_on):
        return Decline(registration_id, key, "registered_after_start")
    period = program.period_for(application.seminar_starts_on)
    if period is None:
        return Decline(registration_id, key, "outside_funding_period")
    budget = budgets.get(period.id) or Budget(period.id, period.budget_cents)
    if budget.closed:
        return Decline(registration_id, key, "period_closed", period.id)
    if program.requires_funded_basic(course) and not holds_funded_basic:
        return Decline(registration_id, key, "prerequisite_missing", period.id)
    amount = program.course_amount_cents(
        course,
        application.fee_cents,
        seminar_days(application.seminar_starts_on, application.seminar_ends_on),
    )
    takes_place = program.takes_quota_place(course)
    if takes_place:
        quota = quota or QuotaState(key, program.quota_for(kommune))
        if not quota.has_room:
            return Waitlist(registration_id, key, period.id, amount, "quota_exhausted", quota_waiting + 1)
    if not budget.allows(amount):
        position = budget_waiting.get(period.id, 0) + 1
        return Waitlist(
            registration_id, key, period.id, amount, "budget_exhausted", position, takes_place=takes_place
        )
    return Approve(registration_id, key, period.id, amount, takes_place=takes_place)


# --- withdrawals, releases and promotions ----------------------------------------------------


def on_withdrawn(
    existing: Funding | None,
    *,
    budgets: Mapping[str, Budget],
    quotas: Mapping[str, QuotaState],
    kommune_queue: Sequence[Funding],
    budget_queues: Mapping[str, Sequence[Funding]],
    withdrawal: Withdrawal | None = None,
    remembered: bool = False,
    loaded_through: Mapping[str, int] | None = None,
) -> list[Effect]:
    """What the withdrawal of a registration changes.

    An approved registration is released and its place and money promote others; a waitlisted one
    leaves its waitlist (and if it waited for money, the entries behind it in its period that fit
    now are approved); one funding has no record of is remembered (`withdrawal` given and not
    `remembered` already), so that its acceptance, if it comes later, is funded with nothing;
    anything else (declined, already withdrawn or released) changes nothing.

    `kommune_queue`: the withdrawn registration's Kommune's `quota_exhausted` entries;
    `budget_queues`: per period, its `budget_exhausted` entries; both in order of arrival.
    `quotas` holds every Kommune that appears in them. `loaded_through`: see `promote_waiting`.
    """
    if existing is None:
        if withdrawal is None or remembered:
            return []
        return [RememberWithdrawal(withdrawal.registration_id, withdrawal.kommune_key)]
    if existing.status is Status.WAITLISTED:
        leave = LeaveWaitlist(existing.registration_id)
        if existing.reason != "budget_exhausted" or existing.period_id is None:
            return [leave]
        # The entries behind it move up: the first that fits now is approved, as after a release.
        queue = [
            e for e in budget_queues.get(existing.period_id, []) if e.registration_id != leave.registration_id
        ]
        return [
            leave,
            *promote_waiting(
                budgets,
                quotas,
                {},
                {existing.period_id: queue},
                [existing.period_id],
                loaded_through=loaded_through,
            ),
        ]
    if existing.status is not Status.APPROVED:
        return []
    assert existing.period_id is not None and existing.amount_cents is not None
    release = Release(
        existing.registration_id,
        existing.kommune_key,
        existing.period_id,
        existing.amount_cents,
        existing.takes_place,
    )
    budgets = dict(budgets)
    budgets[release.period_id] = budgets[release.period_id].release(release.amount_cents)
    quotas = dict(quotas)
    if release.takes_place:
        quotas[release.kommune_key] = quotas[release.kommune_key].free()
    return [
        release,
        *plan_promotions(
            release, budgets, quotas, kommune_queue, budget_queues, loaded_through=loaded_through
        ),
    ]


def plan_promotions(
    release: Release,
    budgets: Mapping[str, Budget],
    quotas: Mapping[str, QuotaState],
    kommune_queue: Sequence[Funding],
    budget_queues: Mapping[str, Sequence[Funding]],
    *,
    loaded_through: Mapping[str, int] | None = None,
) -> list[Effect]:
    """The promotions after `release` (already applied to `budgets` and `quotas`)."""
    kommune_queues = {release.kommune_key: kommune_queue} if release.takes_place else {}
    return promote_waiting(
        budgets, quotas, kommune_queues, budget_queues, [release.period_id], loaded_through=loaded_through
    )


def promotions_after_raise(
    state: BatchState, raised_periods: Iterable[str], raised_kommunen: Iterable[str]
) -> list[Effect]:
    """The promotions after periods' budgets or Kommunen's places were raised (already in
    `state`, read with its waitlists): the raised Kommunen's entries waiting for a place, then
    the entries waiting for money, in the raised periods first."""
    if not state.waitlists_loaded:
        raise WaitlistsNotLoadedError("a raise needs the waitlists")
    kommunen = set(raised_kommunen)
    kommune_queues: dict[str, list[Funding]] = {}
    budget_queues: dict[str, list[Funding]] = {}
    for entry in sorted(state.fundings.values(), key=_arrival):
        if entry.status is not Status.WAITLISTED or entry.period_id is None:
            continue
        if entry.reason == "quota_exhausted" and entry.kommune_key in kommunen:
            kommune_queues.setdefault(entry.kommune_key, []).append(entry)
        elif entry.reason == "budget_exhausted":
            budget_queues.setdefault(entry.period_id, []).append(entry)
    return promote_waiting(
        state.budgets,
        state.quotas,
        kommune_queues,
        budget_queues,
        sorted(set(raised_periods)),
        loaded_through=state.money_loaded_through,
    )


class BudgetBelowCommittedError(ValueError):
    """A budget may not be set below what its period has committed (approved - released)."""


def set_budget(budget: Budget, budget_cents: int | None, *, by_operator: bool) -> Budget:
    """A period's budget set to `budget_cents` (None: unlimited); refused below what is committed.

    An operator's value is kept from then on (`set_by_operator`), whatever a later start's file says.
    """
    if budget_cents is not None and budget_cents < budget.committed_cents:
        raise BudgetBelowCommittedError(
            f"period {budget.period_id}: a budget of {budget_cents} cents lies below the "
            f"{budget.committed_cents} cents already committed (approved - released)"
        )
    return replace(budget, budget_cents=budget_cents, set_by_operator=budget.set_by_operator or by_operator)


def is_raise(before: int | None, after: int | None) -> bool:
    """More money than before (None: unlimited)."""
    if before is None:
        return False
    return after is None or after > before


class PlacesBelowHeldError(ValueError):
    """A Kommune's places may not be set below the places it holds."""


@dataclass(frozen=True)
class LimitChanges:
    """What a start writes from the programme file: every period's budget (the operator's where
    one was set), every eligible Kommune's places, and which of them were raised."""

    budgets: Mapping[str, int | None]
    places: Mapping[str, int]
    raised_periods: frozenset[str]
    raised_kommunen: frozenset[str]


def plan_program_limits(
    program: Program, directory: Directory, budgets: Mapping[str, Budget], quotas: Mapping[str, QuotaState]
) -> LimitChanges:
    """The limits a start writes, against the stored `budgets` and `quotas` (locked).

    A period's file budget applies unless an operator set its budget; a budget or places lowered
    below what is committed or held is refused (BudgetBelowCommittedError, PlacesBelowHeldError).
    """
    new_budgets: dict[str, int | None] = {}
    raised_periods: set[str] = set()
    for period in program.periods:
        stored = budgets.get(period.id)
        if stored is None:
            new_budgets[period.id] = period.budget_cents
            continue
        if stored.set_by_operator:
            new_budgets[period.id] = stored.budget_cents
            continue
        new_budgets[period.id] = set_budget(stored, period.budget_cents, by_operator=False).budget_cents
        if is_raise(stored.budget_cents, period.budget_cents):
            raised_periods.add(period.id)
    places: dict[str, int] = {}
    raised_kommunen: set[str] = set()
    for kommune in program.eligible_kommunen(directory):
        wanted = program.quota_for(kommune)
        places[kommune.key] = wanted
        quota = quotas.get(kommune.key)
        if quota is None:
            continue
        if wanted < quota.held:
            raise PlacesBelowHeldError(
                f"Kommune {kommune.key}: {wanted} places lie below the {quota.held} it holds"
            )
        if wanted > quota.places:
            raised_kommunen.add(kommune.key)
    return LimitChanges(new_budgets, places, frozenset(raised_periods), frozenset(raised_kommunen))


def promote_waiting(
    budgets: Mapping[str, Budget],
    quotas: Mapping[str, QuotaState],
    kommune_queues: Mapping[str, Sequence[Funding]],
    budget_queues: Mapping[str, Sequence[Funding]],
    first_periods: Sequence[str],
    *,
    loaded_through: Mapping[str, int] | None = None,
) -> list[Effect]:
    """Promotions where there is room, by the rules of the module docstring.

    1. per Kommune of `kommune_queues` (by key), its entries waiting for a place, earliest first,
       while it has a free place (an entry whose money does not fit moves to the money waitlist);
    2. the entries waiting for money, in `first_periods` first and then the others (by id),
       first come first served: the first entry of a period that does not fit ends its round.

    `loaded_through`: per period whose money waitlist is known only as its head, the sequence
    number of the head's last entry. A round that would need an entry behind it raises
    `WaitlistHeadTooShortError`: nothing is decided from a waitlist known only in part.
    """
    heads = loaded_through or {}
    budgets = dict(budgets)
    quotas = dict(quotas)
    queues = {period_id: list(queue) for period_id, queue in budget_queues.items()}
    effects: list[Effect] = []

    def promote(entry: Funding) -> None:
        assert entry.period_id is not None and entry.amount_cents is not None
        budgets[entry.period_id] = budgets[entry.period_id].approve(entry.amount_cents)
        if entry.takes_place:
            quotas[entry.kommune_key] = quotas[entry.kommune_key].take()
        effects.append(
            Approve(
                entry.registration_id,
                entry.kommune_key,
                entry.period_id,
                entry.amount_cents,
                True,
                entry.takes_place,
            )
        )

    # 1. The Kommunen's entries waiting for a place, earliest first, while they have a free place.
    for kommune_key in sorted(kommune_queues):
        for head in sorted((e for e in kommune_queues[kommune_key] if _open(e, budgets)), key=_arrival):
            if not quotas[kommune_key].has_room:
                break
            assert head.period_id is not None and head.amount_cents is not None
            if budgets[head.period_id].allows(head.amount_cents):
                promote(head)
                continue
            if _behind_head(head, heads):
                raise WaitlistHeadTooShortError(head.period_id)  # its position is not known
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

    # 2. Entries waiting for money, while it lasts: the given periods first (they have new money),
    # then the others (a Kommune's free place may unblock its entry there).
    first = list(dict.fromkeys(first_periods))
    others = sorted(period_id for period_id in queues if period_id not in first)
    for period_id in [*first, *others]:
        if period_id not in budgets or budgets[period_id].closed:
            continue
        for entry in sorted(queues.get(period_id, []), key=_arrival):
            assert entry.amount_cents is not None
            if _behind_head(entry, heads):
                raise WaitlistHeadTooShortError(period_id)
            if entry.takes_place and not quotas[entry.kommune_key].has_room:
                continue
            if not budgets[period_id].allows(entry.amount_cents):
                break
            promote(entry)
        else:
            if period_id in heads:  # the round ran to the end of the head: more may wait behind it
                raise WaitlistHeadTooShortError(period_id)
    return effects


class WaitlistHeadTooShortError(RuntimeError):
    """A round of promotions needs more of a period's money waitlist than was loaded: the batch is
    decided again on a longer head; its locks are given up and taken again, in order (ADR 0025)."""

    def __init__(self, period_id: str) -> None:
        super().__init__(f"the money waitlist of period {period_id} is needed beyond its loaded head")
        self.period_id = period_id


def _behind_head(entry: Funding, heads: Mapping[str, int]) -> bool:
    """Whether the entry sorts after the loaded head of its period's money waitlist (an entry of
    this batch does: its number is above every stored one)."""
    assert entry.period_id is not None
    last = heads.get(entry.period_id)
    return last is not None and (entry.seq is None or entry.seq > last)


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
    Kommune with an entry in the head of a money waitlist read (known only once the periods are
    locked, see `kommunen_to_lock`). With a possible release, the state read under these locks
    includes the waitlisted entries a release may promote, as far as `money_head` reaches.
    """

    registration_ids: tuple[str, ...]
    period_ids: frozenset[str]
    kommune_keys: frozenset[str]
    may_release: bool
    # The participants of the batch's acceptances, whose funded basic courses are read.
    participant_hashes: frozenset[str] = frozenset()
    # With `may_release`: how many entries of each period's money waitlist to read, from its
    # head; None: all of them. A batch's promotions rarely reach far (each release frees one
    # amount), so a withdrawal costs the same however many wait (ADR 0025).
    money_head: int | None = None

    def kommunen_to_lock(self, waiting_for_money: Iterable[Funding]) -> frozenset[str]:
        """The Kommunen to lock, given the entries waiting for money read (under the locks of
        every period, when no one else can add such entries)."""
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
    before the period rows are held. A release (and an entry leaving the money waitlist) may
    promote in any period and any Kommune waiting for money, so those locks are taken up front,
    in order, rather than as the changes run.
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
    withdrawals = sum(1 for event in events if isinstance(event, Withdrawal))
    return LockPlan(
        registration_ids=tuple(dict.fromkeys(event.registration_id for event in events)),
        period_ids=frozenset(period_ids),
        kommune_keys=frozenset(kommune_keys),
        may_release=may_release,
        money_head=money_head_for(withdrawals) if may_release else None,
        participant_hashes=frozenset(
            event.participant_hash
            for event in events
            if isinstance(event, Application) and event.participant_hash is not None
        ),
    )


# The head of each money waitlist a batch reads first: enough for the promotions of every
# withdrawal in it and a few entries skipped for want of a place. A longer one is read when a
# round reaches past it (`WaitlistHeadTooShortError`), MONEY_HEAD_GROWTH times longer each time.
MONEY_HEAD_BASE = 32
MONEY_HEAD_PER_WITHDRAWAL = 2
MONEY_HEAD_GROWTH = 8


def money_head_for(withdrawals: int) -> int:
    return MONEY_HEAD_BASE + MONEY_HEAD_PER_WITHDRAWAL * withdrawals


@dataclass(frozen=True)
class BatchState:
    """What a batch is decided against, read under the locks of its `LockPlan`.

    `fundings`: the records of the batch's registrations and, with `waitlists_loaded`, every
    waitlisted entry a release may promote (the entries waiting for money, all of them or the
    plan's `money_head` of each period; the entries of the plan's Kommunen waiting for a place).
    `budgets`: every period. `quotas`: the locked Kommunen that have places. `quota_waiting`:
    per Kommune of the plan, its entries waiting for a place; `budget_waiting`: per period, its
    entries waiting for money (all of them, counted: migration 0004). `pending_withdrawals`: the
    batch's registrations withdrawn before funding saw them accepted. `funded_basic`: per
    participant of the plan, the approved, unreleased basic courses they hold.
    `money_loaded_through`: per period whose money waitlist was read only as its head (the plan's
    `money_head`), the sequence number of the head's last entry. `waitlist_seq_above`: no stored
    waitlist entry has a higher sequence number (new entries of the batch sort after it).
    """

    fundings: Mapping[str, Funding]
    budgets: Mapping[str, Budget]
    quotas: Mapping[str, QuotaState]
    quota_waiting: Mapping[str, int]
    budget_waiting: Mapping[str, int]
    waitlists_loaded: bool
    pending_withdrawals: frozenset[str] = frozenset()
    funded_basic: Mapping[str, int] = field(default_factory=dict)
    money_loaded_through: Mapping[str, int] = field(default_factory=dict)
    waitlist_seq_above: int = 0


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
        self._pending_withdrawals = set(state.pending_withdrawals)
        self._funded_basic = Counter(state.funded_basic)
        self._money_loaded_through = dict(state.money_loaded_through)
        stored = max((f.seq for f in self._fundings.values() if f.seq is not None), default=0)
        self._next_seq = 1 + max(stored, state.waitlist_seq_above)

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
            withdrawn_before=application.registration_id in self._pending_withdrawals,
            holds_funded_basic=(
                application.participant_hash is not None
                and self._funded_basic[application.participant_hash] > 0
            ),
        )
        assert decision is not None  # None only for an existing record
        new_funding = NewFunding(application, decision)
        self._fold_new(new_funding)
        return AcceptanceOutcome(new_funding)

    def _withdraw(self, withdrawal: Withdrawal) -> WithdrawalOutcome:
        existing = self._fundings.get(withdrawal.registration_id)
        kommune_queue: list[Funding] = []
        budget_queues: dict[str, list[Funding]] = {}
        if existing is not None and (
            existing.status is Status.APPROVED
            or (existing.status is Status.WAITLISTED and existing.reason == "budget_exhausted")
        ):
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
            withdrawal=withdrawal,
            remembered=withdrawal.registration_id in self._pending_withdrawals,
            loaded_through=self._money_loaded_through,
        )
        for effect in effects:
            self._fold_change(effect)
        return WithdrawalOutcome(effects)

    # --- the fold: what the next event of the batch must see ---------------------------------

    def _fold_new(self, new_funding: NewFunding) -> None:
        application, decision = new_funding.application, new_funding.decision
        record = new_record(new_funding, self._next_seq)
        if isinstance(decision, Approve):
            self._hold_place_and_money(decision)
        elif isinstance(decision, Waitlist):
            self._next_seq += 1
            self._waiting(record, +1)
        elif isinstance(decision, WithdrawnBeforeAcceptance):
            self._pending_withdrawals.discard(decision.registration_id)
        self._count_basic(record, +1)
        self._fundings[application.registration_id] = record

    def _fold_change(self, effect: Effect) -> None:
        if isinstance(effect, RememberWithdrawal):
            self._pending_withdrawals.add(effect.registration_id)
            return
        entry = self._fundings[effect.registration_id]
        if isinstance(effect, Release):
            self._count_basic(entry, -1)
            self._fundings[entry.registration_id] = replace(entry, status=Status.RELEASED)
            if effect.takes_place:
                self._quotas[effect.kommune_key] = self._quotas[effect.kommune_key].free()
            self._budgets[effect.period_id] = self._budgets[effect.period_id].release(effect.amount_cents)
        elif isinstance(effect, Approve):  # a promotion
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(
                entry, status=Status.APPROVED, reason=None, seq=None
            )
            self._count_basic(self._fundings[entry.registration_id], +1)
            self._hold_place_and_money(effect)
        elif isinstance(effect, Waitlist):  # now waits for money instead of a place
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(entry, reason=effect.reason)
            self._waiting(self._fundings[entry.registration_id], +1)
        elif isinstance(effect, LeaveWaitlist):
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(entry, status=Status.WITHDRAWN, seq=None)
        elif isinstance(effect, Decline):  # a waitlisted entry declined
            self._waiting(entry, -1)
            self._fundings[entry.registration_id] = replace(
                entry, status=Status.DECLINED, reason=effect.reason, seq=None
            )
        else:
            raise TypeError(f"not a change of an existing record: {effect!r}")

    def _count_basic(self, record: Funding, change: int) -> None:
        if record.holds_funded_basic:
            assert record.participant_hash is not None
            self._funded_basic[record.participant_hash] += change

    def _hold_place_and_money(self, approval: Approve) -> None:
        quota = self._quotas.get(approval.kommune_key)
        if quota is not None and approval.takes_place:
            self._quotas[approval.kommune_key] = quota.take()
        budget = self._budgets.get(approval.period_id)
        if budget is not None:
            self._budgets[approval.period_id] = budget.approve(approval.amount_cents)

    def _waiting(self, entry: Funding, change: int) -> None:
        if entry.reason == "quota_exhausted":
            self._quota_waiting[entry.kommune_key] += change
        elif entry.period_id is not None:
            self._budget_waiting[entry.period_id] += change


def new_record(new_funding: NewFunding, seq: int | None) -> Funding:
    """The funding record a first decision creates (`seq`: its place in the waitlists' order,
    used only for a waitlisted one)."""
    application, decision = new_funding.application, new_funding.decision
    record = Funding(
        application.registration_id,
        application.kommune_key,
        Status.DECLINED,
        decision.period_id,
        course=application.course,
        participant_hash=application.participant_hash,
    )
    if isinstance(decision, Approve):
        return replace(
            record,
            status=Status.APPROVED,
            amount_cents=decision.amount_cents,
            takes_place=decision.takes_place,
        )
    if isinstance(decision, Waitlist):
        return replace(
            record,
            status=Status.WAITLISTED,
            reason=decision.reason,
            amount_cents=decision.amount_cents,
            seq=seq,
            takes_place=decision.takes_place,
        )
    if isinstance(decision, WithdrawnBeforeAcceptance):
        return replace(record, status=Status.WITHDRAWN, reason="withdrawn_before_acceptance")
    return replace(record, reason=decision.reason)
