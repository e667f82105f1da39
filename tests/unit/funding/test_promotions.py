"""Withdrawals, releases and every promotion path, as scenarios over the in-memory book."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from services.funding.domain import Approve, Decline, Effect, LeaveWaitlist, Release, Waitlist
from tests.unit.funding.memory import Book
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE as E,
)
from tests.unit.funding.samples import (
    IN_2022,
    IN_2023,
    application,
    directory,
    small_program,
)
from tests.unit.funding.samples import (
    KREISFREIE_STADT as K,
)
from tests.unit.funding.samples import (
    LANDKREIS as L,
)
from tests.unit.funding.samples import (
    SAMTGEMEINDE as S,
)

_event_ids = (f"event-{n}" for n in itertools.count())


def accept(
    book: Book, registration_id: str, key: str, *, in_2022: bool = False, fee: int = 100_000
) -> Effect:
    starts_on = IN_2022 if in_2022 else IN_2023
    (decision,) = book.accept(
        next(_event_ids), application(registration_id, key, starts_on=starts_on, fee_cents=fee)
    )
    return decision


def withdraw(book: Book, registration_id: str) -> list[Effect]:
    return book.withdraw(next(_event_ids), registration_id)


def new_book() -> Book:
    return Book(small_program(), directory())


def fill_2023(book: Book) -> None:
    """Uses the whole 2023 budget (150,000) with L1 (100,000) and S1 (50,000)."""
    assert isinstance(accept(book, "L1", L, fee=200_000), Approve)
    assert isinstance(accept(book, "S1", S), Approve)


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[Book], None]
    withdrawn: str
    expected: list[Effect]


def _one_approved(book: Book) -> None:
    assert accept(book, "E1", E) == Approve("E1", E, "2023", 50_000)


def _quota_waiting(book: Book) -> None:
    assert accept(book, "E1", E) == Approve("E1", E, "2023", 50_000)
    assert accept(book, "E2", E) == Approve("E2", E, "2023", 50_000)
    assert accept(book, "E3", E) == Waitlist("E3", E, "2023", 50_000, "quota_exhausted", 1)
    assert accept(book, "E4", E) == Waitlist("E4", E, "2023", 50_000, "quota_exhausted", 2)


def _quota_waiting_in_other_period(book: Book) -> None:
    accept(book, "E1", E, in_2022=True)
    accept(book, "E2", E, in_2022=True)
    assert accept(book, "E3", E) == Waitlist("E3", E, "2023", 50_000, "quota_exhausted", 1)


def _quota_waiting_without_money(book: Book) -> None:
    fill_2023(book)
    accept(book, "E1", E, in_2022=True)
    accept(book, "E2", E, in_2022=True)
    assert accept(book, "E3", E) == Waitlist("E3", E, "2023", 50_000, "quota_exhausted", 1)


def _budget_waiting(book: Book) -> None:
    fill_2023(book)
    assert accept(book, "S2", S) == Waitlist("S2", S, "2023", 50_000, "budget_exhausted", 1)
    assert accept(book, "K1", K) == Waitlist("K1", K, "2023", 50_000, "budget_exhausted", 2)
    assert accept(book, "E1", E) == Waitlist("E1", E, "2023", 50_000, "budget_exhausted", 3)


def _budget_waiting_kommune_full(book: Book) -> None:
    fill_2023(book)
    assert accept(book, "E1", E) == Waitlist("E1", E, "2023", 50_000, "budget_exhausted", 1)
    accept(book, "E2", E, in_2022=True)
    accept(book, "E3", E, in_2022=True)  # E now holds both places
    assert accept(book, "K1", K) == Waitlist("K1", K, "2023", 50_000, "budget_exhausted", 2)


def _money_left_while_kommune_full(book: Book) -> None:
    _budget_waiting_kommune_full(book)
    assert withdraw(book, "L1") == [
        Release("L1", L, "2023", 100_000),
        Approve("K1", K, "2023", 50_000, promoted=True),
    ]  # E1 is skipped: E has no free place; 50,000 stay unused


def _budget_waiting_big_first(book: Book) -> None:
    fill_2023(book)
    assert accept(book, "K1", K, fee=200_000) == Waitlist("K1", K, "2023", 100_000, "budget_exhausted", 1)
    assert accept(book, "E1", E) == Waitlist("E1", E, "2023", 50_000, "budget_exhausted", 2)


def _quota_before_budget(book: Book) -> None:
    accept(book, "L1", L)
    accept(book, "L2", L)
    accept(book, "S1", S)  # 150,000 used
    assert accept(book, "K1", K) == Waitlist("K1", K, "2023", 50_000, "budget_exhausted", 1)
    assert accept(book, "L3", L) == Waitlist("L3", L, "2023", 50_000, "quota_exhausted", 1)


def _waitlisted_then_withdrawn(book: Book) -> None:
    _quota_waiting(book)
    assert withdraw(book, "E3") == [LeaveWaitlist("E3")]


SCENARIOS = [
    Scenario(
        "nothing waits: only the release",
        _one_approved,
        "E1",
        [Release("E1", E, "2023", 50_000)],
    ),
    Scenario("a waitlisted registration leaves the waitlist", _quota_waiting, "E3", [LeaveWaitlist("E3")]),
    Scenario(
        "the Kommune's earliest quota_exhausted is promoted",
        _quota_waiting,
        "E2",
        [Release("E2", E, "2023", 50_000), Approve("E3", E, "2023", 50_000, promoted=True)],
    ),
    Scenario(
        "a withdrawn waitlisted entry is skipped",
        _waitlisted_then_withdrawn,
        "E1",
        [Release("E1", E, "2023", 50_000), Approve("E4", E, "2023", 50_000, promoted=True)],
    ),
    Scenario(
        "a place freed in one period promotes in another",
        _quota_waiting_in_other_period,
        "E1",
        [Release("E1", E, "2021-2022", 50_000), Approve("E3", E, "2023", 50_000, promoted=True)],
    ),
    Scenario(
        "a place without money: the entry now waits for money",
        _quota_waiting_without_money,
        "E1",
        [
            Release("E1", E, "2021-2022", 50_000),
            Waitlist("E3", E, "2023", 50_000, "budget_exhausted", 1, requeued=True),
        ],
    ),
    Scenario(
        "money for two of three waiting for money",
        _budget_waiting,
        "L1",
        [
            Release("L1", L, "2023", 100_000),
            Approve("S2", S, "2023", 50_000, promoted=True),
            Approve("K1", K, "2023", 50_000, promoted=True),
        ],
    ),
    Scenario(
        "money skips a Kommune without a free place",
        _budget_waiting_kommune_full,
        "S1",
        [Release("S1", S, "2023", 50_000), Approve("K1", K, "2023", 50_000, promoted=True)],
    ),
    Scenario(
        "a place freed in one period unblocks the Kommune's entry waiting for money in another",
        _money_left_while_kommune_full,
        "E2",
        [Release("E2", E, "2021-2022", 50_000), Approve("E1", E, "2023", 50_000, promoted=True)],
    ),
    Scenario(
        "first come first served: a smaller later request does not overtake",
        _budget_waiting_big_first,
        "S1",
        [Release("S1", S, "2023", 50_000)],
    ),
    Scenario(
        "the Kommune's place goes first, then the money is gone",
        _quota_before_budget,
        "L1",
        [Release("L1", L, "2023", 50_000), Approve("L3", L, "2023", 50_000, promoted=True)],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_withdrawal(scenario: Scenario) -> None:
    book = new_book()
    scenario.setup(book)
    assert withdraw(book, scenario.withdrawn) == scenario.expected


def test_a_requeued_entry_is_promoted_when_money_comes_back() -> None:
    book = new_book()
    _quota_waiting_without_money(book)
    withdraw(book, "E1")
    assert withdraw(book, "S1") == [Release("S1", S, "2023", 50_000), Approve("E3", E, "2023", 50_000, True)]


@pytest.mark.parametrize("status_setup", ["declined", "released", "never decided"])
def test_withdrawing_what_holds_nothing_changes_nothing(status_setup: str) -> None:
    book = new_book()
    if status_setup == "declined":
        accept(book, "R1", "033595403002")
    elif status_setup == "released":
        accept(book, "R1", E)
        withdraw(book, "R1")
    before = dict(book.records)
    assert withdraw(book, "R1") == []
    assert book.records == before


def test_closing_a_period_declines_what_waits_in_it_and_later_registrations() -> None:
    book = new_book()
    _budget_waiting(book)
    assert accept(book, "L2", L) == Waitlist("L2", L, "2023", 50_000, "budget_exhausted", 4)
    accept(book, "E9", E, in_2022=True)
    assert book.close("2023") == [
        Decline(rid, key, "period_closed", "2023", first=False)
        for rid, key in [("S2", S), ("K1", K), ("E1", E), ("L2", L)]
    ]
    assert book.close("2023") == []
    assert accept(book, "K2", K) == Decline("K2", K, "period_closed", "2023")
    assert withdraw(book, "L1") == [Release("L1", L, "2023", 100_000)]
