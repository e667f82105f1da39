"""The applier of registration.events: lock, read, decide with the domain, write, publish.

Only `registration.accepted` (a first decision) and `registration.withdrawn` (release and
promotions, or leaving a waitlist) change anything. `registration.waitlisted` (no seat yet) and
`registration.rejected` need no funding decision: a seat promotion arrives later as
`registration.accepted`.

Logs carry registration ids and Kommune keys, never names or email addresses.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.funding import store
from services.funding.domain import (
    Application,
    Approve,
    Decline,
    Effect,
    Funding,
    LeaveWaitlist,
    QuotaState,
    Release,
    Status,
    Waitlist,
    decide,
    on_withdrawn,
)
from shared.directory import Directory
from shared.events import (
    Envelope,
    FundingApproved,
    FundingDeclined,
    FundingReleased,
    FundingWaitlisted,
    RegistrationAccepted,
    RegistrationWithdrawn,
    derived_event_id,
    new_envelope,
)
from shared.logging import bound_event, get_logger
from shared.outbox import OutboxMessage
from shared.program import Program
from shared.topics import Topics

log = get_logger(__name__)

SOURCE = "funding"

DecisionData = FundingApproved | FundingWaitlisted | FundingDeclined | FundingReleased


def decision_messages(
    topic: str, cause_id: uuid.UUID, correlation_id: uuid.UUID, effects: Sequence[Effect]
) -> list[OutboxMessage]:
    """The funding.decisions messages for effects, keyed by kommune_key.

    Event ids derive from the cause and name the event type and registration, so that a
    reprocessed cause yields the same ids (the outbox then keeps one row per id).
    """
    messages = []
    for effect in effects:
        published = _event(effect)
        if published is None:
            continue
        event_type, data = published
        envelope = new_envelope(
            event_type,
            data,
            source=SOURCE,
            correlation_id=correlation_id,
            event_id=derived_event_id(cause_id, f"{event_type}:{effect.registration_id}"),
        )
        messages.append(OutboxMessage(topic, data.kommune_key, envelope))
    return messages


# Each published effect carries the fields of its event's data under the same names.
_EVENTS: dict[type[Effect], tuple[str, type[DecisionData]]] = {
    Approve: ("funding.approved", FundingApproved),
    Waitlist: ("funding.waitlisted", FundingWaitlisted),
    Decline: ("funding.declined", FundingDeclined),
    Release: ("funding.released", FundingReleased),
}


def _event(effect: Effect) -> tuple[str, DecisionData] | None:
    """The event an effect publishes; None for leaving a waitlist (nothing to tell)."""
    if isinstance(effect, LeaveWaitlist):
        return None
    event_type, model = _EVENTS[type(effect)]
    return event_type, model(**{name: getattr(effect, name) for name in model.model_fields})


def log_effects(effects: Sequence[Effect]) -> None:
    for effect in effects:
        log.info(
            "funding " + type(effect).__name__.lower(),
            registration_id=effect.registration_id,
            **{
                name: getattr(effect, name)
                for name in ("kommune_key", "period_id", "reason", "amount_cents", "position", "promoted")
                if getattr(effect, name, None) is not None
            },
        )


FIRST_STATUS = {Approve: Status.APPROVED, Waitlist: Status.WAITLISTED, Decline: Status.DECLINED}


def is_acceptance(event: Envelope[Any]) -> bool:
    """A seat confirmed: the only registration outcome that asks for a funding decision.

    By event type, not by data class: `registration.waitlisted` (no seat yet) carries the same
    fields and its model derives from the acceptance's.
    """
    return event.event_type == "registration.accepted"


class RegistrationEventsApplier:
    """registration.events: first decisions for acceptances; releases and promotions for withdrawals."""

    def __init__(self, topics: Topics, program: Program, directory: Directory) -> None:
        self._topic = topics.funding_decisions
        self._program = program
        self._directory = directory

    async def lock(self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]) -> None:
        """Registration ids, then the periods, then the Kommunen the batch may change (ADR 0007)."""
        relevant = [e for e in events if is_acceptance(e) or isinstance(e.data, RegistrationWithdrawn)]
        if not relevant:
            return
        registration_ids = [event.data.registration_id for event in relevant]
        await store.lock_registrations(conn, registration_ids)
        existing = await store.fundings(conn, registration_ids)
        period_ids: set[str] = set()
        kommune_keys: set[str] = set()
        releases = False
        for event in relevant:
            data = event.data
            record = existing.get(data.registration_id)
            if is_acceptance(event):
                kommune_keys.add(data.kommune_key)
                period = self._program.period_for(data.seminar_starts_on)
                if period is not None:
                    period_ids.add(period.id)
            elif record is None or record.status in (Status.WAITLISTED, Status.APPROVED):
                # Any of these may be a release by the time it is applied: the acceptance may come
                # earlier in this batch, or another instance may promote a waitlisted one before we
                # hold the period rows. A release may promote in any period, and any Kommune waiting
                # for money, so take those locks now, in order, rather than as the updates run.
                kommune_keys.add(data.kommune_key)
                releases = True
        if releases:
            period_ids |= {period.id for period in self._program.periods}
        await store.lock_periods(conn, period_ids)
        if releases:
            # Stable now: only holders of a period's row add or change its waitlisted entries.
            for queue in (await store.budget_queues(conn)).values():
                kommune_keys |= {entry.kommune_key for entry in queue}
        await store.lock_quotas(conn, kommune_keys)

    async def apply(self, conn: asyncpg.Connection, event: Envelope[Any]) -> Sequence[OutboxMessage]:
        return await self.apply_batch(conn, [event])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        """Runs of acceptances are decided together, with bulk reads and writes; a withdrawal
        is applied on its own, after the run before it is written."""
        outgoing: list[OutboxMessage] = []
        run: list[Envelope[Any]] = []
        for event in events:
            if is_acceptance(event):
                run.append(event)
            elif isinstance(event.data, RegistrationWithdrawn):
                outgoing += await self._decide_first(conn, run)
                run = []
                with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
                    effects = await self._withdrawn(conn, event.data)
                    log_effects(effects)
                outgoing += decision_messages(
                    self._topic, event.event_id, event.effective_correlation_id, effects
                )
        outgoing += await self._decide_first(conn, run)
        return outgoing

    async def _decide_first(
        self, conn: asyncpg.Connection, acceptances: Sequence[Envelope[Any]]
    ) -> list[OutboxMessage]:
        """First decisions for a run of acceptances, in order, each seeing the ones before it.

        The batch holds the rows of every period and Kommune involved (`lock`), so the state read
        here stays true while the run is decided in memory and written in one go.
        """
        if not acceptances:
            return []
        registration_ids = [event.data.registration_id for event in acceptances]
        keys = {event.data.kommune_key for event in acceptances}
        decided_before = await store.fundings(conn, registration_ids)
        budgets = await store.budgets(conn)
        quotas = await store.quotas(conn, keys)
        quota_waiting = await store.quota_waiting(conn, keys)
        limited = [period.id for period in self._program.periods if period.budget_cents is not None]
        budget_waiting = await store.budget_waiting(conn, limited)
        decided: list[store.FirstDecision] = []
        outgoing: list[OutboxMessage] = []
        for event in acceptances:
            data: RegistrationAccepted = event.data
            with bound_event(event.event_id, event.effective_correlation_id, event_type=event.event_type):
                if data.registration_id in decided_before:
                    log.info(
                        "registration decided before, no second decision",
                        registration_id=data.registration_id,
                        status=decided_before[data.registration_id].status.value,
                    )
                    continue
                application = Application(
                    registration_id=data.registration_id,
                    kommune_key=data.kommune_key,
                    seminar_starts_on=data.seminar_starts_on,
                    seminar_ends_on=data.seminar_ends_on,
                    fee_cents=data.fee_cents,
                )
                kommune = self._directory.get(data.kommune_key)
                decision = decide(
                    self._program,
                    kommune,
                    application,
                    existing=None,
                    budgets=budgets,
                    quota=quotas.get(data.kommune_key),
                    quota_waiting=quota_waiting[data.kommune_key],
                    budget_waiting=budget_waiting,
                )
                assert decision is not None  # None only for an existing record
                # What the next acceptance of the run must see.
                if isinstance(decision, Approve):
                    quota = quotas.get(data.kommune_key)
                    if quota is not None:
                        quotas[data.kommune_key] = quota.take()
                    budget = budgets.get(decision.period_id)
                    if budget is not None:
                        budgets[decision.period_id] = budget.approve(decision.amount_cents)
                elif isinstance(decision, Waitlist) and decision.reason == "quota_exhausted":
                    quota_waiting[data.kommune_key] += 1
                elif isinstance(decision, Waitlist):
                    budget_waiting[decision.period_id] += 1
                decided_before[data.registration_id] = Funding(
                    data.registration_id, data.kommune_key, FIRST_STATUS[type(decision)]
                )
                decided.append(store.FirstDecision(application, data.seminar_id, decision))
                log_effects([decision])
                outgoing += decision_messages(
                    self._topic, event.event_id, event.effective_correlation_id, [decision]
                )
        await store.record_first_decisions(conn, decided)
        return outgoing

    async def _withdrawn(self, conn: asyncpg.Connection, data: RegistrationWithdrawn) -> list[Effect]:
        existing = await store.funding(conn, data.registration_id)
        if existing is None or existing.status not in (Status.APPROVED, Status.WAITLISTED):
            log.info("withdrawal changes no funding", registration_id=data.registration_id)
            return []
        kommune_queue: list[Funding] = []
        budget_queues: dict[str, list[Funding]] = {}
        quotas: dict[str, QuotaState] = {}
        if existing.status is Status.APPROVED:
            kommune_queue = await store.waitlisted(conn, "quota_exhausted", kommune_key=existing.kommune_key)
            budget_queues = await store.budget_queues(conn)
            keys = {existing.kommune_key} | {e.kommune_key for q in budget_queues.values() for e in q}
            quotas = await store.quotas(conn, keys)
        effects = on_withdrawn(
            existing,
            budgets=await store.budgets(conn),
            quotas=quotas,
            kommune_queue=kommune_queue,
            budget_queues=budget_queues,
        )
        for effect in effects:
            await store.apply_change(conn, effect)
        return effects
