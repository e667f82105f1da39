"""Random histories of accepted and withdrawn registrations through the real applier.

The in-memory unit of work refuses what the database would refuse, and a change to a row the
batch did not lock, and checks on every commit that the budgets and quotas agree with the
records. On top of that: every accepted registration gets exactly one first decision; a
redelivered event (same event id, or the same registration accepted again under a new id)
publishes nothing; nothing waits for a place or money that is free; and a history delivered in
batches publishes and stores exactly what it does one event at a time.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.funding.domain import (
    Approve,
    Decline,
    Effect,
    FundingChange,
    LeaveWaitlist,
    NewFunding,
    RememberWithdrawal,
    Status,
    Waitlist,
    WithdrawnBeforeAcceptance,
)
from shared.events import Envelope
from tests.unit.funding.fakes import (
    InMemoryFundingService,
    accepted_event,
    money_heads,
    whole_waitlists,
    withdrawn_event,
)
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    IN_2022,
    IN_2023,
    KREISFREIE_STADT,
    LANDKREIS,
    MITGLIEDSGEMEINDE,
    SAMTGEMEINDE,
    UNKNOWN,
    application,
    directory,
    small_program,
)

# Mostly three eligible Kommunen, so that places and money run out and withdrawals promote.
KEYS = [EINHEITSGEMEINDE, KREISFREIE_STADT, LANDKREIS] * 3 + [SAMTGEMEINDE, MITGLIEDSGEMEINDE, UNKNOWN]


@dataclass(frozen=True)
class Accept:
    registration: int
    key: str
    in_2023: bool
    fee_cents: int


@dataclass(frozen=True)
class Withdraw:
    registration: int


@dataclass(frozen=True)
class Redeliver:
    step: int  # an earlier step, delivered again with the same event id


@dataclass(frozen=True)
class Close:
    period_id: str


Step = Accept | Withdraw | Redeliver | Close

accepts = st.builds(
    Accept,
    st.integers(0, 15),
    st.sampled_from(KEYS),
    st.sampled_from([True, True, True, False]),  # mostly 2023, the period with a budget
    st.sampled_from([0, 1, 99_999, 100_000, 150_001, 300_000]),
)
# Weighted by repetition: mostly acceptances, then withdrawals, some redeliveries; at most one
# period is closed, somewhere in the history.
steps = st.tuples(
    st.lists(
        st.one_of(
            *[accepts] * 5,
            *[st.builds(Withdraw, st.integers(0, 15))] * 2,
            st.builds(Redeliver, st.integers(0, 80)),
        ),
        min_size=5,
        max_size=80,
    ),
    st.none() | st.tuples(st.integers(0, 80), st.builds(Close, st.sampled_from(["2023", "2021-2022"]))),
).map(lambda drawn: _with_close(*drawn))


def _with_close(history: list[Step], close: tuple[int, Close] | None) -> list[Step]:
    if close is None:
        return history
    at, step = close
    return [*history[:at], step, *history[at:]]


Delivery = Envelope[Any] | Close


def deliveries(history: list[Step]) -> list[Delivery]:
    """The history as events (a redelivery repeats an earlier event) and period closings."""
    delivered: list[Delivery] = []
    events: list[Envelope[Any]] = []
    first_keys: dict[str, str] = {}
    for number, step in enumerate(history):
        event_id = uuid.UUID(int=number + 1)
        if isinstance(step, Accept):
            registration_id = f"R{step.registration}"
            first_keys.setdefault(registration_id, step.key)
            starts_on = IN_2023 if step.in_2023 else IN_2022
            found = application(registration_id, step.key, starts_on=starts_on, fee_cents=step.fee_cents)
            events.append(accepted_event(found, event_id))
            delivered.append(events[-1])
        elif isinstance(step, Withdraw):
            registration_id = f"R{step.registration}"
            key = first_keys.get(registration_id, EINHEITSGEMEINDE)
            events.append(withdrawn_event(registration_id, key, event_id))
            delivered.append(events[-1])
        elif isinstance(step, Redeliver):
            if step.step < len(events):
                delivered.append(events[step.step])
        else:
            delivered.append(step)
    return delivered


def is_first_decision(effect: Effect) -> bool:
    if isinstance(effect, Approve):
        return not effect.promoted
    if isinstance(effect, Waitlist):
        return not effect.requeued
    if isinstance(effect, WithdrawnBeforeAcceptance):
        return True
    return isinstance(effect, Decline) and effect.first


def publishes_nothing(change: FundingChange) -> bool:
    """Leaving a waitlist, and a withdrawal that came before its acceptance (both halves)."""
    if isinstance(change, NewFunding):
        return isinstance(change.decision, WithdrawnBeforeAcceptance)
    return isinstance(change, LeaveWaitlist | RememberWithdrawal)


def new_service() -> InMemoryFundingService:
    return InMemoryFundingService(small_program(), directory())


@settings(max_examples=300, deadline=None)
@given(steps)
def test_random_histories_keep_every_invariant(history: list[Step]) -> None:
    funding = new_service()
    seen: set[uuid.UUID] = set()
    accepted: set[str] = set()
    first_decisions: Counter[str] = Counter()
    withdrawn: set[str] = set()
    for delivery in deliveries(history):
        if isinstance(delivery, Close):
            funding.close(delivery.period_id)
            continue
        before = funding.tables.copy()
        effects = funding.deliver([delivery])
        _assert_nothing_waits_for_what_is_free(funding)
        if delivery.event_id in seen:
            assert effects == [], "a redelivered event changed something"
            assert funding.tables.fundings == before.fundings and funding.tables.outbox == before.outbox
            continue
        seen.add(delivery.event_id)
        firsts = [e for e in effects if is_first_decision(e)]
        first_decisions.update(e.registration_id for e in firsts)
        if delivery.event_type == "registration.accepted":
            registration_id = delivery.data.registration_id
            if registration_id in accepted:
                assert effects == [], "a registration decided before got a second first decision"
            else:
                assert [e.registration_id for e in firsts] == [registration_id]
                accepted.add(registration_id)
                if registration_id in withdrawn:  # its withdrawal came first: it holds nothing
                    assert funding.tables.fundings[registration_id].status is Status.WITHDRAWN
        else:
            assert firsts == [], "a withdrawal made a first decision"
            withdrawn.add(delivery.data.registration_id)

    assert first_decisions == Counter(accepted)
    tables = funding.tables
    for record in tables.fundings.values():
        if record.status is Status.WAITLISTED:
            assert record.period_id is not None
            assert not tables.budgets[record.period_id].closed, "a waitlisted entry outlived its period"
    # One message per recorded change, except those that tell nothing.
    assert len(tables.outbox) == sum(1 for c in tables.recorded if not publishes_nothing(c))


def _assert_nothing_waits_for_what_is_free(funding: InMemoryFundingService) -> None:
    """No entry waits for a place its Kommune has free; no open period's first fundable entry
    waiting for money fits (also after an entry ahead of it left the waitlist)."""
    tables = funding.tables
    for entry in tables.waiting("quota_exhausted"):
        assert not tables.quotas[entry.kommune_key].has_room, f"{entry} waits for a free place"
    for period_id, budget in tables.budgets.items():
        if budget.closed:
            continue
        waiting = [
            e
            for e in tables.waiting("budget_exhausted")
            if e.period_id == period_id and (not e.takes_place or tables.quotas[e.kommune_key].has_room)
        ]
        if waiting:
            assert waiting[0].amount_cents is not None
            assert not budget.allows(waiting[0].amount_cents), f"{waiting[0]} waits for money that is there"


@settings(max_examples=200, deadline=None)
@given(steps, st.lists(st.integers(1, 12), min_size=1, max_size=40))
def test_batches_publish_and_store_what_single_events_do(history: list[Step], sizes: list[int]) -> None:
    one_by_one, batched = new_service(), new_service()
    pending: list[Envelope[Any]] = []
    batch_sizes = iter(sizes * 80)

    def flush() -> None:
        while pending:
            size = next(batch_sizes)
            batched.deliver(pending[:size])
            del pending[:size]

    for delivery in deliveries(history):
        if isinstance(delivery, Close):
            one_by_one.close(delivery.period_id)
            flush()
            batched.close(delivery.period_id)
        else:
            one_by_one.deliver([delivery])
            pending.append(delivery)
    flush()

    assert published(batched) == published(one_by_one)
    for table in ("fundings", "budgets", "quotas", "inbox"):
        assert getattr(batched.tables, table) == getattr(one_by_one.tables, table), table


# Long money waitlists: the 2023 budget goes to the first three of many acceptances, and the
# withdrawals mostly hit the early registrations, which hold it or wait first.
waitlist_histories = st.tuples(
    st.lists(
        st.tuples(st.sampled_from(KEYS), st.sampled_from([1, 100_000, 100_000, 200_000])),
        min_size=6,
        max_size=30,
    ).map(lambda drawn: [Accept(number, key, True, fee) for number, (key, fee) in enumerate(drawn)]),
    st.lists(
        st.one_of(
            st.builds(Withdraw, st.integers(0, 8)),
            st.builds(Accept, st.integers(0, 30), st.sampled_from(KEYS), st.booleans(), st.just(100_000)),
        ),
        min_size=1,
        max_size=40,
    ),
).map(lambda drawn: [*drawn[0], *drawn[1]])


@settings(max_examples=200, deadline=None)
@given(waitlist_histories, st.lists(st.integers(1, 12), min_size=1, max_size=40))
def test_heads_of_one_entry_publish_and_store_what_whole_waitlists_do(
    history: list[Step], sizes: list[int]
) -> None:
    """ADR 0025: batches that read one entry of each money waitlist first, and twice as many on
    each retry, decide as batches that read the whole waitlists. (About half of these histories
    need a longer head at least once.)"""
    whole, heads = new_service(), new_service()
    batch_sizes = iter(sizes * 80)
    events = [delivery for delivery in deliveries(history) if not isinstance(delivery, Close)]
    while events:
        batch = events[: next(batch_sizes)]
        del events[: len(batch)]
        with whole_waitlists():
            whole.deliver(batch)
        with money_heads(1, growth=2):
            heads.deliver(batch)

    assert set(whole.database.money_heads_read) <= {None}
    assert published(heads) == published(whole)
    for table in ("fundings", "budgets", "quotas", "inbox"):
        assert getattr(heads.tables, table) == getattr(whole.tables, table), table


def published(funding: InMemoryFundingService) -> list[dict[str, Any]]:
    """Everything but the time of writing."""
    return [
        {"key": m.key, **m.envelope.model_dump(mode="json", exclude={"occurred_at"})}
        for m in funding.tables.outbox
    ]
