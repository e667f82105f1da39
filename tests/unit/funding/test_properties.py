"""Random sequences of accepted and withdrawn registrations, checked against the invariants.

The book refuses any effect the database would refuse and checks after every step that the
budgets and quotas agree with the records. On top of that: every accepted registration gets
exactly one first decision, and a redelivered event (same event id, or the same registration
accepted again under a new id) publishes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from services.funding.domain import Approve, Decline, Effect, Status, Waitlist
from tests.unit.funding.memory import Book
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


FIRST = (Approve, Waitlist, Decline)


def is_first_decision(effect: Effect) -> bool:
    if isinstance(effect, Approve):
        return not effect.promoted
    if isinstance(effect, Waitlist):
        return not effect.requeued
    return isinstance(effect, Decline) and effect.first


@settings(max_examples=300, deadline=None)
@given(steps)
def test_random_histories_keep_every_invariant(history: list[Step]) -> None:
    book = Book(small_program(), directory())
    delivered: list[tuple[str, Step]] = []
    accepted: set[str] = set()
    for number, step in enumerate(history):
        if isinstance(step, Redeliver):
            if step.step >= len(delivered):
                continue
            event_id, original = delivered[step.step]
            before = dict(book.records), dict(book.budgets), dict(book.quotas)
            assert _deliver(book, event_id, original) == []
            assert (dict(book.records), dict(book.budgets), dict(book.quotas)) == before
            continue
        event_id = f"event-{number}"
        delivered.append((event_id, step))
        effects = _deliver(book, event_id, step)
        _assert_nothing_waits_for_what_is_free(book)
        if isinstance(step, Accept):
            registration_id = f"R{step.registration}"
            firsts = [e for e in effects if is_first_decision(e)]
            if registration_id in accepted:
                assert effects == [], "a registration decided before got a second first decision"
            else:
                assert len(firsts) == 1 and firsts[0].registration_id == registration_id
                accepted.add(registration_id)

    first_decisions = Counter(
        e.registration_id for e in book.published if isinstance(e, FIRST) and is_first_decision(e)
    )
    assert first_decisions == Counter(accepted)
    for record in book.records.values():
        if record.status is Status.WAITLISTED:
            assert record.period_id is not None
            assert not book.budgets[record.period_id].closed, "a waitlisted entry outlived its period"


def _assert_nothing_waits_for_what_is_free(book: Book) -> None:
    """No entry waits for a place its Kommune has free; no period's first fundable entry fits."""
    for entry in book.waiting("quota_exhausted"):
        assert not book.quotas[entry.kommune_key].has_room, f"{entry} waits for a free place"
    for period_id, budget in book.budgets.items():
        waiting = [
            e
            for e in book.waiting("budget_exhausted")
            if e.period_id == period_id and book.quotas[e.kommune_key].has_room
        ]
        if waiting:
            assert waiting[0].amount_cents is not None
            assert not budget.allows(waiting[0].amount_cents), f"{waiting[0]} waits for money that is there"


def _deliver(book: Book, event_id: str, step: Step) -> list[Effect]:
    if isinstance(step, Accept):
        starts_on = IN_2023 if step.in_2023 else IN_2022
        return book.accept(
            event_id,
            application(f"R{step.registration}", step.key, starts_on=starts_on, fee_cents=step.fee_cents),
        )
    if isinstance(step, Withdraw):
        return book.withdraw(event_id, f"R{step.registration}")
    if isinstance(step, Close):
        return book.close(step.period_id)
    raise AssertionError(step)
