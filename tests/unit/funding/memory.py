"""An in-memory funding book that drives the pure domain the way the store does.

It keeps every record, budget and quota, builds the inputs of `decide` and `on_withdrawn` from
them, applies the effects, and refuses any effect the database constraints would refuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from services.funding.domain import (
    Application,
    Approve,
    Budget,
    Decline,
    Effect,
    Funding,
    LeaveWaitlist,
    QuotaState,
    Release,
    Status,
    Waitlist,
    close_period,
    decide,
    on_withdrawn,
)
from shared.directory import Directory
from shared.program import Program


class ConstraintViolationError(AssertionError):
    """An effect the database would refuse (a CHECK constraint or a conditional update)."""


@dataclass
class Book:
    program: Program
    directory: Directory
    budgets: dict[str, Budget] = field(default_factory=dict)
    quotas: dict[str, QuotaState] = field(default_factory=dict)
    records: dict[str, Funding] = field(default_factory=dict)
    seen_events: set[str] = field(default_factory=set)
    published: list[Effect] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        for period in self.program.periods:
            self.budgets[period.id] = Budget(period.id, period.budget_cents)

    def quota(self, kommune_key: str) -> QuotaState | None:
        if kommune_key not in self.quotas:
            kommune = self.directory.get(kommune_key)
            if kommune is None or not self.program.eligibility.admits(kommune):
                return None
            self.quotas[kommune_key] = QuotaState(kommune_key, self.program.quota_for(kommune))
        return self.quotas[kommune_key]

    def waiting(self, reason: str) -> list[Funding]:
        entries = [r for r in self.records.values() if r.status is Status.WAITLISTED and r.reason == reason]
        return sorted(entries, key=lambda r: r.seq or 0)

    # --- inputs ------------------------------------------------------------------------------

    def accept(self, event_id: str, application: Application) -> list[Effect]:
        if event_id in self.seen_events:
            return []
        self.seen_events.add(event_id)
        key = application.kommune_key
        decision = decide(
            self.program,
            self.directory.get(key),
            application,
            existing=self.records.get(application.registration_id),
            budgets=self.budgets,
            quota=self.quota(key),
            quota_waiting=sum(1 for r in self.waiting("quota_exhausted") if r.kommune_key == key),
            budget_waiting=Counter(r.period_id for r in self.waiting("budget_exhausted") if r.period_id),
        )
        return self._apply([] if decision is None else [decision])

    def withdraw(self, event_id: str, registration_id: str) -> list[Effect]:
        if event_id in self.seen_events:
            return []
        self.seen_events.add(event_id)
        existing = self.records.get(registration_id)
        key = existing.kommune_key if existing else ""
        budget_queues: dict[str, list[Funding]] = {}
        for entry in self.waiting("budget_exhausted"):
            assert entry.period_id is not None
            budget_queues.setdefault(entry.period_id, []).append(entry)
        kommunen = {key} | {e.kommune_key for q in budget_queues.values() for e in q}
        effects = on_withdrawn(
            existing,
            budgets=self.budgets,
            quotas={k: q for k in kommunen if (q := self.quota(k)) is not None},
            kommune_queue=[r for r in self.waiting("quota_exhausted") if r.kommune_key == key],
            budget_queues=budget_queues,
        )
        return self._apply(effects)

    def close(self, period_id: str) -> list[Effect]:
        self.budgets[period_id] = replace(self.budgets[period_id], closed=True)
        waiting = [
            r for r in self.records.values() if r.status is Status.WAITLISTED and r.period_id == period_id
        ]
        return self._apply(list(close_period(waiting)))

    # --- effects, checked like the database checks them --------------------------------------

    def _apply(self, effects: list[Effect]) -> list[Effect]:
        for effect in effects:
            self._apply_one(effect)
            self.published.append(effect)
        self.check_invariants()
        return effects

    def _apply_one(self, effect: Effect) -> None:
        if isinstance(effect, Approve):
            self._take(effect.kommune_key, effect.period_id, effect.amount_cents)
            if effect.promoted:
                assert self.records[effect.registration_id].status is Status.WAITLISTED
            else:
                assert effect.registration_id not in self.records
            self.records[effect.registration_id] = Funding(
                effect.registration_id,
                effect.kommune_key,
                Status.APPROVED,
                effect.period_id,
                None,
                effect.amount_cents,
            )
        elif isinstance(effect, Waitlist):
            if effect.requeued:
                entry = self.records[effect.registration_id]
                self.records[effect.registration_id] = replace(entry, reason=effect.reason)
            else:
                assert effect.registration_id not in self.records
                self._seq += 1
                self.records[effect.registration_id] = Funding(
                    effect.registration_id,
                    effect.kommune_key,
                    Status.WAITLISTED,
                    effect.period_id,
                    effect.reason,
                    effect.amount_cents,
                    self._seq,
                )
        elif isinstance(effect, Decline):
            if not effect.first:
                assert self.records[effect.registration_id].status is Status.WAITLISTED
            self.records[effect.registration_id] = Funding(
                effect.registration_id, effect.kommune_key, Status.DECLINED, effect.period_id, effect.reason
            )
        elif isinstance(effect, Release):
            entry = self.records[effect.registration_id]
            assert entry.status is Status.APPROVED
            self.records[effect.registration_id] = replace(entry, status=Status.RELEASED)
            self.quotas[effect.kommune_key] = self.quotas[effect.kommune_key].free()
            self.budgets[effect.period_id] = self.budgets[effect.period_id].release(effect.amount_cents)
        elif isinstance(effect, LeaveWaitlist):
            entry = self.records[effect.registration_id]
            assert entry.status is Status.WAITLISTED
            self.records[effect.registration_id] = replace(entry, status=Status.WITHDRAWN, seq=None)

    def _take(self, kommune_key: str, period_id: str, amount_cents: int) -> None:
        quota = self.quotas[kommune_key]
        budget = self.budgets[period_id]
        if not quota.has_room:
            raise ConstraintViolationError(f"quota of {kommune_key} exceeded")
        if not budget.allows(amount_cents) or budget.closed:
            raise ConstraintViolationError(f"budget of {period_id} exceeded")
        self.quotas[kommune_key] = quota.take()
        self.budgets[period_id] = budget.approve(amount_cents)

    def check_invariants(self) -> None:
        approved = [r for r in self.records.values() if r.status is Status.APPROVED]
        for period_id, budget in self.budgets.items():
            if budget.budget_cents is not None and budget.committed_cents > budget.budget_cents:
                raise ConstraintViolationError(f"period {period_id} overdrawn")
            held = sum(r.amount_cents or 0 for r in approved if r.period_id == period_id)
            assert budget.committed_cents == held, f"period {period_id} books disagree with records"
        for key, quota in self.quotas.items():
            held = sum(1 for r in approved if r.kommune_key == key)
            assert quota.held == held <= quota.places, f"quota of {key}: {quota}, {held} approved"
