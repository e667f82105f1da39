"""An in-memory funding database and unit of work that behave like the PostgreSQL ones.

A unit of work works on a copy of the committed tables and replaces them on a clean exit, so a
failure rolls everything back. It refuses what the database refuses (a quota or budget overdrawn,
a record not in the state a change expects, a second record for a registration) and, on top of
that, a change to a row its batch did not lock, and books that disagree with the records. Every
value is immutable, so a copy of the dicts is a copy of the state.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, TypeVar
from unittest import mock

from services.funding import domain, handlers
from services.funding.domain import (
    Application,
    Approve,
    BatchState,
    Budget,
    Decline,
    Effect,
    Funding,
    FundingChange,
    LeaveWaitlist,
    LimitChanges,
    LockPlan,
    NewFunding,
    QuotaState,
    Release,
    RememberWithdrawal,
    Status,
    Waitlist,
    WithdrawnBeforeAcceptance,
    new_record,
)
from services.funding.handlers import RegistrationEventsApplier
from services.funding.operations import (
    BudgetSet,
    ProgramSync,
    close_period_in,
    set_period_budget_in,
    sync_program_in,
)
from services.funding.unit_of_work import InvariantError, Limits, PeriodClosing, ProgramMismatchError
from shared.directory import Directory
from shared.erasure import ErasureRequest
from shared.events import Envelope, Participant, RegistrationAccepted, RegistrationWithdrawn, new_envelope
from shared.outbox import OutboxMessage
from shared.program import Period, Program
from shared.topics import Topics
from tests.unit.funding.samples import EINHEITSGEMEINDE

TOPIC = "registration.events"
T = TypeVar("T")


class FundingRows(dict[str, Funding]):
    """The fundings by registration id, with the indexes PostgreSQL keeps (the waitlists, the
    rows by participant) and the waiting counts: without them a replay of tens of thousands of
    events reads every funding for every event."""

    def __init__(self, rows: Mapping[str, Funding] | None = None) -> None:
        super().__init__()
        self.waitlisted: dict[str | None, set[str]] = {}  # by reason
        self.by_participant: dict[str, set[str]] = {}
        self.waiting_in_kommune: Counter[tuple[str | None, str]] = Counter()  # (reason, Kommune)
        self.waiting_in_period: Counter[tuple[str | None, str]] = Counter()  # (reason, period)
        for registration_id, row in (rows or {}).items():
            self[registration_id] = row

    def __setitem__(self, registration_id: str, row: Funding) -> None:
        before = self.get(registration_id)
        if before is not None:
            self._index(registration_id, before, -1)
        super().__setitem__(registration_id, row)
        self._index(registration_id, row, +1)

    def _index(self, registration_id: str, row: Funding, change: int) -> None:
        """Add (change +1) or take out (-1) the row in every index."""
        indexes: list[set[str]] = []
        if row.participant_hash is not None:
            indexes.append(self.by_participant.setdefault(row.participant_hash, set()))
        if row.status is Status.WAITLISTED:
            indexes.append(self.waitlisted.setdefault(row.reason, set()))
        for ids in indexes:
            if change > 0:
                ids.add(registration_id)
            else:
                ids.discard(registration_id)
        if row.status is Status.WAITLISTED:
            self.waiting_in_kommune[row.reason, row.kommune_key] += change
            if row.period_id is not None:
                self.waiting_in_period[row.reason, row.period_id] += change

    def copy(self) -> FundingRows:
        return FundingRows(self)

    def waiting(self, reason: str | None = None) -> list[Funding]:
        """The waitlisted ones, for one reason or for every reason."""
        reasons = list(self.waitlisted) if reason is None else [reason]
        return [self[rid] for r in reasons for rid in self.waitlisted.get(r, ())]

    def of_participants(self, participant_hashes: Iterable[str]) -> list[Funding]:
        return [self[rid] for h in participant_hashes for rid in self.by_participant.get(h, ())]


@dataclass
class FundingTables:
    budgets: dict[str, Budget]
    quotas: dict[str, QuotaState]
    fundings: FundingRows = field(default_factory=FundingRows)
    inbox: set[uuid.UUID] = field(default_factory=set)
    outbox: list[OutboxMessage] = field(default_factory=list)
    # Every change recorded, in order (what a test compares with what it expects).
    recorded: list[FundingChange] = field(default_factory=list)
    # Withdrawals of registrations not seen yet: registration id -> Kommune key.
    pending_withdrawals: dict[str, str] = field(default_factory=dict)
    program_id: str | None = None
    erased_registrations: set[str] = field(default_factory=set)  # the erasure markers
    outbox_ids: set[uuid.UUID] = field(default_factory=set)  # the outbox's primary key

    def copy(self) -> FundingTables:
        return FundingTables(
            dict(self.budgets),
            dict(self.quotas),
            self.fundings.copy(),
            set(self.inbox),
            list(self.outbox),
            list(self.recorded),
            dict(self.pending_withdrawals),
            self.program_id,
            set(self.erased_registrations),
            set(self.outbox_ids),
        )

    def waiting(self, reason: str) -> list[Funding]:
        """Waitlisted entries for the reason, in order of arrival."""
        entries = self.fundings.waiting(reason)
        return sorted(entries, key=lambda f: f.seq or 0)


@contextlib.contextmanager
def money_heads(base: int, per_withdrawal: int = 0, growth: int = 2) -> Iterator[None]:
    """Batches read `base + per_withdrawal × withdrawals` entries of each money waitlist first,
    `growth` times more on each retry (the service's defaults are larger: domain.MONEY_HEAD_*)."""
    with (
        mock.patch.object(domain, "MONEY_HEAD_BASE", base),
        mock.patch.object(domain, "MONEY_HEAD_PER_WITHDRAWAL", per_withdrawal),
        mock.patch.object(handlers, "MONEY_HEAD_GROWTH", growth),
    ):
        yield


@contextlib.contextmanager
def whole_waitlists() -> Iterator[None]:
    """Batches read every entry of the money waitlists, as raises do."""
    with mock.patch.object(domain, "money_head_for", lambda withdrawals: None):
        yield


def _heads(waiting: Sequence[Funding], head: int | None) -> tuple[list[Funding], dict[str, int]]:
    """As store._read_waiting_for_money: the first `head` entries of each period, and the last
    number read of each period read only in part."""
    if head is None:
        return list(waiting), {}
    by_period: dict[str, list[Funding]] = {}
    for entry in waiting:
        assert entry.period_id is not None
        by_period.setdefault(entry.period_id, []).append(entry)
    loaded_through = {
        period_id: seq
        for period_id, entries in by_period.items()
        if len(entries) > head and (seq := entries[head - 1].seq) is not None
    }
    kept = [entry for entries in by_period.values() for entry in entries[:head]]
    return sorted(kept, key=lambda f: f.seq or 0), loaded_through


class InMemoryFundingDatabase:
    """The committed state, synced from the programme and the directory like `store.sync_program`."""

    def __init__(self, program: Program, directory: Directory, *, isolated: bool = True) -> None:
        # Isolated: each unit of work changes a copy and checks the books before it commits, so a
        # failed one leaves nothing behind. The fault suite's model replays tens of thousands of
        # events that all commit; it works in place and checks the books once, at the end.
        self.isolated = isolated
        self.tables = FundingTables(
            budgets={p.id: Budget(p.id, p.budget_cents) for p in program.periods},
            quotas={
                k.key: QuotaState(k.key, program.quota_for(k))
                for k in directory.kommunen.values()
                if program.eligibility.admits(k)
            },
            program_id=program.id,
        )
        # Like a PostgreSQL sequence: not rolled back.
        self.waitlist_order = itertools.count(1)
        # The money_head of every read of the waitlists, in order (None: all of them).
        self.money_heads_read: list[int | None] = []

    def unit_of_work(self) -> InMemoryFundingUnitOfWork:
        return InMemoryFundingUnitOfWork(self)


class InMemoryFundingUnitOfWork:
    def __init__(self, database: InMemoryFundingDatabase) -> None:
        self._database = database
        self._tables: FundingTables | None = None
        self._locked_registrations: set[str] = set()
        self._locked_periods: set[str] = set()
        self._locked_kommunen: set[str] = set()

    @property
    def tables(self) -> FundingTables:
        if self._tables is None:
            raise RuntimeError("the unit of work has not begun")
        return self._tables

    async def __aenter__(self) -> InMemoryFundingUnitOfWork:
        tables = self._database.tables
        self._tables = tables.copy() if self._database.isolated else tables
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and not self._database.isolated:
            raise RuntimeError("a unit of work without isolation failed and cannot roll back") from exc
        if exc_type is None and self._database.isolated:
            check_books(self.tables)
            self._database.tables = self.tables
        self._tables = None

    # --- inbox and outbox ----------------------------------------------------------------------

    async def claim_new_events(self, topic: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        new = set(event_ids) - self.tables.inbox
        self.tables.inbox |= new
        return new

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> None:
        tables = self.tables
        fresh = [m for m in messages if m.envelope.event_id not in tables.outbox_ids]
        tables.outbox += fresh
        tables.outbox_ids |= {m.envelope.event_id for m in fresh}

    # --- locks and reads -----------------------------------------------------------------------

    async def lock_registrations(self, registration_ids: Sequence[str]) -> dict[str, Funding]:
        if self._locked_periods or self._locked_kommunen:
            raise InvariantError("registration ids locked after period or quota rows (ADR 0007)")
        self._locked_registrations |= set(registration_ids)
        fundings = self.tables.fundings
        return {rid: fundings[rid] for rid in registration_ids if rid in fundings}

    async def erased_among(self, registration_ids: Sequence[str]) -> set[str]:
        return set(registration_ids) & self.tables.erased_registrations

    async def erase(self, registration_ids: Sequence[str], request: ErasureRequest) -> dict[str, int | str]:
        """As store.erase_identities: the identities go, every id is marked."""
        if self._locked_periods or self._locked_kommunen:
            raise InvariantError("registration ids locked after period or quota rows (ADR 0007)")
        self._locked_registrations |= set(registration_ids)
        tables = self.tables
        taken = 0
        for rid in set(registration_ids):
            record = tables.fundings.get(rid)
            if record is not None and record.participant_hash is not None:
                tables.fundings[rid] = replace(record, participant_hash=None)
                taken += 1
        marked = len(set(registration_ids) - tables.erased_registrations)
        tables.erased_registrations |= set(registration_ids)
        return {"participant_hashes": taken, "outbox": 0, "marked": marked, "erased_at": "now"}

    async def lock_and_load(self, plan: LockPlan) -> BatchState:
        tables = self.tables
        if not set(plan.registration_ids) <= self._locked_registrations:
            raise InvariantError("a plan for registration ids that are not locked")
        self._locked_periods |= plan.period_ids & tables.budgets.keys()
        waiting_for_money = tables.waiting("budget_exhausted") if plan.may_release else []
        loaded_through: dict[str, int] = {}
        if plan.may_release:
            self._database.money_heads_read.append(plan.money_head)
            waiting_for_money, loaded_through = _heads(waiting_for_money, plan.money_head)
        self._locked_kommunen |= plan.kommunen_to_lock(waiting_for_money) & tables.quotas.keys()
        records = {rid: tables.fundings[rid] for rid in plan.registration_ids if rid in tables.fundings}
        if plan.may_release:
            waiting_for_places = [
                f for f in tables.waiting("quota_exhausted") if f.kommune_key in plan.kommune_keys
            ]
            records = {f.registration_id: f for f in waiting_for_money + waiting_for_places} | records
        funded_basic: dict[str, int] = {}
        for entry in tables.fundings.of_participants(plan.participant_hashes):
            if entry.holds_funded_basic:
                assert entry.participant_hash is not None
                funded_basic[entry.participant_hash] = funded_basic.get(entry.participant_hash, 0) + 1
        waiting_in_kommune = tables.fundings.waiting_in_kommune
        quota_waiting = {
            key: n for key in plan.kommune_keys if (n := waiting_in_kommune["quota_exhausted", key]) > 0
        }
        budget_waiting = {
            period_id: n
            for (reason, period_id), n in tables.fundings.waiting_in_period.items()
            if reason == "budget_exhausted" and n > 0
        }
        return BatchState(
            fundings=records,
            budgets=dict(tables.budgets),
            quotas={k: q for k, q in tables.quotas.items() if k in self._locked_kommunen},
            quota_waiting=quota_waiting,
            budget_waiting=budget_waiting,
            waitlists_loaded=plan.may_release,
            pending_withdrawals=frozenset(set(plan.registration_ids) & tables.pending_withdrawals.keys()),
            funded_basic=funded_basic,
            money_loaded_through=loaded_through,
            waitlist_seq_above=max((f.seq for f in tables.fundings.waiting() if f.seq), default=0),
        )

    async def mark_period_closed(self, period_id: str) -> PeriodClosing | None:
        tables = self.tables
        if period_id not in tables.budgets:
            return None
        self._locked_periods.add(period_id)
        before = tables.budgets[period_id]
        tables.budgets[period_id] = replace(before, closed=True)
        waiting = [f for f in tables.fundings.waiting() if f.period_id == period_id]
        return PeriodClosing(before, sorted(waiting, key=lambda f: f.seq or 0))

    async def mark_period_reopened(self, period_id: str) -> Budget | None:
        tables = self.tables
        if period_id not in tables.budgets:
            return None
        self._locked_periods.add(period_id)
        before = tables.budgets[period_id]
        tables.budgets[period_id] = replace(before, closed=False)
        return before

    async def bind_program(self, program_id: str) -> None:
        if self.tables.program_id is None:
            self.tables.program_id = program_id
        if self.tables.program_id != program_id:
            raise ProgramMismatchError(
                f"started with programme {self.tables.program_id!r}, not {program_id!r}"
            )

    async def lock_limits(self) -> Limits:
        if self._locked_kommunen:
            raise InvariantError("period rows locked after quota rows (ADR 0007)")
        self._locked_periods |= self.tables.budgets.keys()
        self._locked_kommunen |= self.tables.quotas.keys()
        return Limits(dict(self.tables.budgets), dict(self.tables.quotas))

    async def write_limits(self, periods: Sequence[Period], changes: LimitChanges) -> None:
        tables = self.tables
        for period in periods:
            budget_cents = changes.budgets[period.id]
            stored = tables.budgets.get(period.id)
            if stored is None:
                tables.budgets[period.id] = Budget(period.id, budget_cents)
                continue
            self._locked_period(period.id)
            tables.budgets[period.id] = replace(stored, budget_cents=budget_cents)
        for key, places in changes.places.items():
            quota = tables.quotas.get(key)
            if quota is None:
                tables.quotas[key] = QuotaState(key, places)
                continue
            self._locked_kommune(key)
            tables.quotas[key] = replace(quota, places=places)

    async def set_budget(self, budget: Budget) -> None:
        self._locked_period(budget.period_id)
        stored = self.tables.budgets[budget.period_id]
        self.tables.budgets[budget.period_id] = replace(
            stored, budget_cents=budget.budget_cents, set_by_operator=budget.set_by_operator
        )

    # --- writes, refused like the database refuses them ----------------------------------------

    async def record(self, changes: Sequence[FundingChange]) -> None:
        for change in changes:
            if isinstance(change, NewFunding):
                self._insert(change)
            else:
                self._change(change)
            self.tables.recorded.append(change)

    def _insert(self, new: NewFunding) -> None:
        application, decision = new.application, new.decision
        rid = application.registration_id
        if rid in self.tables.fundings:
            raise InvariantError(f"a second funding record for {rid}")
        if rid not in self._locked_registrations:
            raise InvariantError(f"registration {rid} is not locked")
        seq: int | None = None
        if isinstance(decision, Approve):
            self._take(decision)
        elif isinstance(decision, Waitlist):
            self._locked_period(decision.period_id)
            seq = next(self._database.waitlist_order)
        elif (
            isinstance(decision, WithdrawnBeforeAcceptance)
            and self.tables.pending_withdrawals.pop(rid, None) is None
        ):
            raise InvariantError(f"registration {rid} has no withdrawal to follow")
        self.tables.fundings[rid] = new_record(new, seq)

    def _change(self, change: Effect) -> None:
        tables = self.tables
        if isinstance(change, RememberWithdrawal):
            if change.registration_id not in self._locked_registrations:
                raise InvariantError(f"registration {change.registration_id} is not locked")
            if change.registration_id in tables.fundings:
                raise InvariantError(
                    f"a withdrawal remembered for a known registration {change.registration_id}"
                )
            tables.pending_withdrawals.setdefault(change.registration_id, change.kommune_key)
            return
        entry = tables.fundings.get(change.registration_id)
        if entry is None:
            raise InvariantError(f"no funding record {change.registration_id}")
        expected = Status.APPROVED if isinstance(change, Release) else Status.WAITLISTED
        if entry.status is not expected:
            raise InvariantError(f"funding record {entry.registration_id} is {entry.status}, not {expected}")
        if entry.status is Status.WAITLISTED:
            assert entry.period_id is not None
            self._locked_period(entry.period_id)  # a waitlisted record changes only under its period's lock
        rid = entry.registration_id
        if isinstance(change, Approve) and change.promoted:
            self._take(change)
            tables.fundings[rid] = replace(entry, status=Status.APPROVED, reason=None, seq=None)
        elif isinstance(change, Waitlist) and change.requeued:
            tables.fundings[rid] = replace(entry, reason=change.reason)
        elif isinstance(change, Release):
            self._locked_period(change.period_id)
            if change.takes_place != entry.takes_place:
                raise InvariantError(f"release of {rid} frees a place it does not hold, or keeps one")
            if change.takes_place:
                self._locked_kommune(change.kommune_key)
                tables.quotas[change.kommune_key] = tables.quotas[change.kommune_key].free()
            tables.budgets[change.period_id] = tables.budgets[change.period_id].release(change.amount_cents)
            tables.fundings[rid] = replace(entry, status=Status.RELEASED)
        elif isinstance(change, LeaveWaitlist):
            tables.fundings[rid] = replace(entry, status=Status.WITHDRAWN, seq=None)
        elif isinstance(change, Decline) and not change.first:
            tables.fundings[rid] = replace(entry, status=Status.DECLINED, reason=change.reason, seq=None)
        else:
            raise TypeError(f"not a change of an existing record: {change!r}")

    def _take(self, approval: Approve) -> None:
        tables = self.tables
        self._locked_period(approval.period_id)
        budget = tables.budgets.get(approval.period_id)
        if budget is None or budget.closed or not budget.allows(approval.amount_cents):
            raise InvariantError(f"not enough budget left in period {approval.period_id}")
        if approval.takes_place:
            self._locked_kommune(approval.kommune_key)
            quota = tables.quotas.get(approval.kommune_key)
            if quota is None or not quota.has_room:
                raise InvariantError(f"no free place for Kommune {approval.kommune_key}")
            tables.quotas[approval.kommune_key] = quota.take()
        tables.budgets[approval.period_id] = budget.approve(approval.amount_cents)

    def _locked_period(self, period_id: str) -> None:
        if period_id not in self._locked_periods:
            raise InvariantError(f"period {period_id} changed without its row lock")

    def _locked_kommune(self, kommune_key: str) -> None:
        if kommune_key not in self._locked_kommunen:
            raise InvariantError(f"quota of {kommune_key} changed without its row lock")


def check_books(tables: FundingTables) -> None:
    """Counters agree with the records and stay within quota and budget."""
    approved = [f for f in tables.fundings.values() if f.status is Status.APPROVED]
    for period_id, budget in tables.budgets.items():
        held = sum(f.amount_cents or 0 for f in approved if f.period_id == period_id)
        if budget.committed_cents != held:
            raise InvariantError(f"period {period_id}: {budget}, but {held} approved")
        if budget.remaining_cents is not None and budget.remaining_cents < 0:
            raise InvariantError(f"period {period_id} overdrawn: {budget}")
    held_by: dict[str, int] = {}
    for f in approved:
        if f.takes_place:
            held_by[f.kommune_key] = held_by.get(f.kommune_key, 0) + 1
    pending_known = tables.pending_withdrawals.keys() & tables.fundings.keys()
    if pending_known:
        raise InvariantError(f"withdrawals remembered for known registrations {sorted(pending_known)}")
    for key, quota in tables.quotas.items():
        if not quota.held == held_by.get(key, 0) <= quota.places:
            raise InvariantError(f"quota of {key}: {quota}, {held_by.get(key, 0)} approved")


async def deliver(
    database: InMemoryFundingDatabase, applier: RegistrationEventsApplier, events: Sequence[Envelope[Any]]
) -> list[FundingChange]:
    """One batch as the consumer applies it (shared/consumer.py): in one unit of work, claim the
    events in the inbox, apply those seen for the first time, enqueue what they publish.
    Returns the changes the batch recorded."""
    async with database.unit_of_work() as uow:
        before = len(uow.tables.recorded)
        new_ids = await uow.claim_new_events(TOPIC, [event.event_id for event in events])
        fresh: list[Envelope[Any]] = []
        for event in events:
            if event.event_id in new_ids:
                new_ids.discard(event.event_id)
                fresh.append(event)
        if fresh:
            await uow.enqueue(await applier.apply_batch(uow, fresh))
        return uow.tables.recorded[before:]


def completed(work: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits: the in-memory unit of work does no I/O, so
    the real applier runs to its end in one step, without an event loop."""
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("the coroutine waited for something")


class InMemoryFundingService:
    """The real applier over an in-memory database, fed one event (or one batch) at a time.

    `accept`, `withdraw` and `close` return the changes they recorded, with first decisions as
    their effects: what the funding.decisions topic tells, plus leaving a waitlist.
    """

    def __init__(
        self,
        program: Program,
        directory: Directory,
        participant_key: bytes | None = None,
        *,
        isolated: bool = True,
    ) -> None:
        self.database = InMemoryFundingDatabase(program, directory, isolated=isolated)
        self.directory = directory
        self.participant_key = participant_key
        self.applier = RegistrationEventsApplier(Topics(), program, directory, participant_key)
        self._event_ids = (uuid.UUID(int=n) for n in itertools.count(1))

    @property
    def tables(self) -> FundingTables:
        return self.database.tables

    def next_event_id(self) -> uuid.UUID:
        return next(self._event_ids)

    def deliver(self, events: Sequence[Envelope[Any]]) -> list[Effect]:
        return effects_of(completed(deliver(self.database, self.applier, events)))

    def accept(
        self, application: Application, event_id: uuid.UUID | None = None, *, email: str = "erika@example.org"
    ) -> list[Effect]:
        return self.deliver([accepted_event(application, event_id or self.next_event_id(), email)])

    def withdraw(self, registration_id: str, event_id: uuid.UUID | None = None) -> list[Effect]:
        record = self.tables.fundings.get(registration_id)
        key = record.kommune_key if record is not None else EINHEITSGEMEINDE
        return self.deliver([withdrawn_event(registration_id, key, event_id or self.next_event_id())])

    def close(self, period_id: str) -> list[Effect]:
        async def close() -> list[FundingChange]:
            async with self.database.unit_of_work() as uow:
                before = len(uow.tables.recorded)
                await close_period_in(uow, period_id, Topics())
                return uow.tables.recorded[before:]

        return effects_of(completed(close()))

    def restart(self, program: Program) -> tuple[ProgramSync, list[Effect]]:
        """A start with `program` (perhaps a changed file): the sync, and what it recorded."""

        async def sync() -> tuple[ProgramSync, list[FundingChange]]:
            async with self.database.unit_of_work() as uow:
                before = len(uow.tables.recorded)
                result = await sync_program_in(uow, program, self.directory, Topics())
                return result, uow.tables.recorded[before:]

        result, changes = completed(sync())
        self.applier = RegistrationEventsApplier(Topics(), program, self.directory, self.participant_key)
        return result, effects_of(changes)

    def set_budget(self, period_id: str, budget_cents: int | None) -> tuple[BudgetSet, list[Effect]]:
        """An operator sets a period's budget (`lotse budget set`)."""

        async def set_() -> tuple[BudgetSet, list[FundingChange]]:
            async with self.database.unit_of_work() as uow:
                before = len(uow.tables.recorded)
                result = await set_period_budget_in(uow, period_id, budget_cents, Topics())
                return result, uow.tables.recorded[before:]

        result, changes = completed(set_())
        return result, effects_of(changes)


def effects_of(changes: Sequence[FundingChange]) -> list[Effect]:
    return [change.decision if isinstance(change, NewFunding) else change for change in changes]


def accepted_event(
    application: Application, event_id: uuid.UUID, email: str = "erika@example.org"
) -> Envelope[Any]:
    data = RegistrationAccepted(
        registration_id=application.registration_id,
        kommune_key=application.kommune_key,
        seminar_id=application.seminar_id,
        seminar_title="Kommunale Digitallotsen",
        seminar_starts_on=application.seminar_starts_on,
        seminar_ends_on=application.seminar_ends_on,
        fee_cents=application.fee_cents,
        participant=Participant(given_name="Erika", family_name="Muster", email=email),
        contact_email="kontakt@kommune.example",
        course=application.course.value,
        submitted_at=application.submitted_at,
    )
    return new_envelope(
        "registration.accepted", data, source="registration", correlation_id=None, event_id=event_id
    )


def withdrawn_event(registration_id: str, kommune_key: str, event_id: uuid.UUID) -> Envelope[Any]:
    data = RegistrationWithdrawn(
        registration_id=registration_id,
        kommune_key=kommune_key,
        seminar_id="S-1",
        contact_email="kontakt@kommune.example",
        reason="withdrawn_by_portal",
    )
    return new_envelope(
        "registration.withdrawn", data, source="registration", correlation_id=None, event_id=event_id
    )
