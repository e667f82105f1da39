"""Withdrawals, releases and every promotion path, as scenarios through the real applier over the
in-memory unit of work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from services.funding.domain import (
    Approve,
    Decline,
    Effect,
    LeaveWaitlist,
    Release,
    RememberWithdrawal,
    Status,
    Waitlist,
    WithdrawnBeforeAcceptance,
)
from tests.unit.funding.fakes import (
    InMemoryFundingService,
    accepted_event,
    money_heads,
    withdrawn_event,
)
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


def accept(
    funding: InMemoryFundingService,
    registration_id: str,
    key: str,
    *,
    in_2022: bool = False,
    fee: int = 100_000,
) -> Effect:
    starts_on = IN_2022 if in_2022 else IN_2023
    (decision,) = funding.accept(application(registration_id, key, starts_on=starts_on, fee_cents=fee))
    return decision


def withdraw(funding: InMemoryFundingService, registration_id: str) -> list[Effect]:
    return funding.withdraw(registration_id)


def new_funding() -> InMemoryFundingService:
    return InMemoryFundingService(small_program(), directory())


def fill_2023(funding: InMemoryFundingService) -> None:
    """Uses the whole 2023 budget (150,000) with L1 (100,000) and S1 (50,000)."""
    assert isinstance(accept(funding, "L1", L, fee=200_000), Approve)
    assert isinstance(accept(funding, "S1", S), Approve)


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[InMemoryFundingService], None]
    withdrawn: str
    expected: list[Effect]


def _one_approved(funding: InMemoryFundingService) -> None:
    assert accept(funding, "E1", E) == Approve("E1", E, "2023", 50_000)


def _quota_waiting(funding: InMemoryFundingService) -> None:
    assert accept(funding, "E1", E) == Approve("E1", E, "2023", 50_000)
    assert accept(funding, "E2", E) == Approve("E2", E, "2023", 50_000)
    assert accept(funding, "E3", E) == Waitlist("E3", E, "2023", 50_000, "quota_exhausted", 1)
    assert accept(funding, "E4", E) == Waitlist("E4", E, "2023", 50_000, "quota_exhausted", 2)


def _quota_waiting_in_other_period(funding: InMemoryFundingService) -> None:
    accept(funding, "E1", E, in_2022=True)
    accept(funding, "E2", E, in_2022=True)
    assert accept(funding, "E3", E) == Waitlist("E3", E, "2023", 50_000, "quota_exhausted", 1)


def _quota_waiting_without_money(funding: InMemoryFundingService) -> None:
    fill_2023(funding)
    accept(funding, "E1", E, in_2022=True)
    accept(funding, "E2", E, in_2022=True)
    assert accept(funding, "E3", E) == Waitlist("E3", E, "2023", 50_000, "quota_exhausted", 1)


def _budget_waiting(funding: InMemoryFundingService) -> None:
    fill_2023(funding)
    assert accept(funding, "S2", S) == Waitlist("S2", S, "2023", 50_000, "budget_exhausted", 1)
    assert accept(funding, "K1", K) == Waitlist("K1", K, "2023", 50_000, "budget_exhausted", 2)
    assert accept(funding, "E1", E) == Waitlist("E1", E, "2023", 50_000, "budget_exhausted", 3)


def _budget_waiting_kommune_full(funding: InMemoryFundingService) -> None:
    fill_2023(funding)
    assert accept(funding, "E1", E) == Waitlist("E1", E, "2023", 50_000, "budget_exhausted", 1)
    accept(funding, "E2", E, in_2022=True)
    accept(funding, "E3", E, in_2022=True)  # E now holds both places
    assert accept(funding, "K1", K) == Waitlist("K1", K, "2023", 50_000, "budget_exhausted", 2)


def _money_left_while_kommune_full(funding: InMemoryFundingService) -> None:
    _budget_waiting_kommune_full(funding)
    assert withdraw(funding, "L1") == [
        Release("L1", L, "2023", 100_000),
        Approve("K1", K, "2023", 50_000, promoted=True),
    ]  # E1 is skipped: E has no free place; 50,000 stay unused


def _budget_waiting_big_first(funding: InMemoryFundingService) -> None:
    fill_2023(funding)
    assert accept(funding, "K1", K, fee=200_000) == Waitlist("K1", K, "2023", 100_000, "budget_exhausted", 1)
    assert accept(funding, "E1", E) == Waitlist("E1", E, "2023", 50_000, "budget_exhausted", 2)


def _quota_before_budget(funding: InMemoryFundingService) -> None:
    accept(funding, "L1", L)
    accept(funding, "L2", L)
    accept(funding, "S1", S)  # 150,000 used
    assert accept(funding, "K1", K) == Waitlist("K1", K, "2023", 50_000, "budget_exhausted", 1)
    assert accept(funding, "L3", L) == Waitlist("L3", L, "2023", 50_000, "quota_exhausted", 1)


def _waitlisted_then_withdrawn(funding: InMemoryFundingService) -> None:
    _quota_waiting(funding)
    assert withdraw(funding, "E3") == [LeaveWaitlist("E3")]


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
    funding = new_funding()
    scenario.setup(funding)
    assert withdraw(funding, scenario.withdrawn) == scenario.expected


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_withdrawal_read_on_heads_of_one_entry(scenario: Scenario) -> None:
    """ADR 0025: a batch that reads one entry of each money waitlist, and more whenever a round
    needs more, decides what it decides on the whole waitlists."""
    funding = new_funding()
    scenario.setup(funding)
    with money_heads(1):
        assert withdraw(funding, scenario.withdrawn) == scenario.expected


def test_a_round_that_needs_more_than_the_head_reads_a_longer_one() -> None:
    """K1 (100,000) waits ahead of E1 (50,000) for money; S1's 50,000 do not fit K1, so the round
    ends there; once K1 leaves, E1 is approved, read only on a second head."""
    funding = new_funding()
    _budget_waiting_big_first(funding)
    with money_heads(1, growth=4):
        funding.database.money_heads_read.clear()
        assert withdraw(funding, "S1") == [Release("S1", S, "2023", 50_000)]
        assert funding.database.money_heads_read == [1]  # K1 ends the round: the head suffices
        funding.database.money_heads_read.clear()
        assert withdraw(funding, "K1") == [LeaveWaitlist("K1"), Approve("E1", E, "2023", 50_000, True)]
        assert funding.database.money_heads_read == [1, 4]  # K1 was the head: E1 behind it is read next


def test_a_requeued_entry_is_promoted_when_money_comes_back() -> None:
    funding = new_funding()
    _quota_waiting_without_money(funding)
    withdraw(funding, "E1")
    assert withdraw(funding, "S1") == [
        Release("S1", S, "2023", 50_000),
        Approve("E3", E, "2023", 50_000, True),
    ]


@pytest.mark.parametrize("status_setup", ["declined", "released"])
def test_withdrawing_what_holds_nothing_changes_nothing(status_setup: str) -> None:
    funding = new_funding()
    if status_setup == "declined":
        accept(funding, "R1", "033595403002")
    elif status_setup == "released":
        accept(funding, "R1", E)
        withdraw(funding, "R1")
    before = dict(funding.tables.fundings)
    assert withdraw(funding, "R1") == []
    assert funding.tables.fundings == before


def test_a_withdrawal_before_its_acceptance_is_remembered_and_the_acceptance_funded_with_nothing() -> None:
    """Issue 18: a dead letter replayed after the events behind it, or reordering."""
    funding = new_funding()
    assert withdraw(funding, "R1") == [RememberWithdrawal("R1", E)]
    assert withdraw(funding, "R1") == []  # remembered once
    assert funding.tables.fundings == {}
    assert accept(funding, "R1", E) == WithdrawnBeforeAcceptance("R1", E)
    assert funding.tables.fundings["R1"].status is Status.WITHDRAWN
    assert funding.tables.pending_withdrawals == {}
    assert funding.tables.quotas[E].held == 0
    assert funding.tables.budgets["2023"].committed_cents == 0
    assert funding.tables.outbox == []  # nothing published: registration told the Kommune already
    # The place and the money stay free for the next one; a later withdrawal changes nothing.
    assert accept(funding, "R2", E) == Approve("R2", E, "2023", 50_000)
    assert withdraw(funding, "R1") == []


def test_a_withdrawal_and_its_acceptance_later_in_one_batch() -> None:
    funding = new_funding()
    effects = funding.deliver(
        [
            withdrawn_event("R1", E, funding.next_event_id()),
            accepted_event(application("R1", E), funding.next_event_id()),
            accepted_event(application("R2", E), funding.next_event_id()),
        ]
    )
    assert effects == [
        RememberWithdrawal("R1", E),
        WithdrawnBeforeAcceptance("R1", E),
        Approve("R2", E, "2023", 50_000),
    ]
    assert [m.envelope.event_type for m in funding.tables.outbox] == ["funding.approved"]


def test_closing_a_period_declines_what_waits_in_it_and_later_registrations() -> None:
    funding = new_funding()
    _budget_waiting(funding)
    assert accept(funding, "L2", L) == Waitlist("L2", L, "2023", 50_000, "budget_exhausted", 4)
    accept(funding, "E9", E, in_2022=True)
    assert funding.close("2023") == [
        Decline(rid, key, "period_closed", "2023", first=False)
        for rid, key in [("S2", S), ("K1", K), ("E1", E), ("L2", L)]
    ]
    assert funding.close("2023") == []
    assert accept(funding, "K2", K) == Decline("K2", K, "period_closed", "2023")
    assert withdraw(funding, "L1") == [Release("L1", L, "2023", 100_000)]


def test_leaving_the_money_waitlist_promotes_the_next_one_that_fits() -> None:
    """No entry waits while there is room: when K1 (100,000) leaves, E1 (50,000) fits now."""
    funding = new_funding()
    _budget_waiting_big_first(funding)
    assert withdraw(funding, "S1") == [Release("S1", S, "2023", 50_000)]  # K1's 100,000 do not fit
    assert withdraw(funding, "K1") == [LeaveWaitlist("K1"), Approve("E1", E, "2023", 50_000, promoted=True)]
    assert funding.tables.fundings["E1"].status is Status.APPROVED
    assert withdraw(funding, "L1") == [Release("L1", L, "2023", 100_000)]


def test_leaving_the_place_waitlist_promotes_no_one() -> None:
    funding = new_funding()
    _quota_waiting(funding)
    assert withdraw(funding, "E3") == [LeaveWaitlist("E3")]
