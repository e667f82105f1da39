"""Issue 18: raising a period's budget or a Kommune's places promotes from the waitlists, from the
programme file at start or from an operator; an operator's budget survives later starts; a
database belongs to one programme. Through the real operations over the in-memory unit of work."""

from __future__ import annotations

import pytest

from services.funding.domain import (
    Approve,
    Budget,
    BudgetBelowCommittedError,
    PlacesBelowHeldError,
    is_raise,
    set_budget,
)
from services.funding.operations import BudgetRefusedError, UnknownPeriodError
from services.funding.unit_of_work import ProgramMismatchError
from shared.program import Program, parse_program
from tests.unit.funding.fakes import InMemoryFundingService
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE as E,
)
from tests.unit.funding.samples import (
    LANDKREIS as L,
)
from tests.unit.funding.samples import (
    SAMTGEMEINDE as S,
)
from tests.unit.funding.samples import (
    SMALL_BUDGET_TOML,
    application,
    directory,
    small_program,
)


def changed(budget: str = "150_000", places: int = 2, program_id: str = "small") -> Program:
    text = SMALL_BUDGET_TOML.replace("budget_cents = 150_000", f"budget_cents = {budget}")
    text = text.replace("places = 2", f"places = {places}").replace('id = "small"', f'id = "{program_id}"')
    return parse_program(text)


def budget_waiting() -> InMemoryFundingService:
    """2023's 150,000 used by L1 (100,000) and S1 (50,000); E1 and E2 wait for 50,000 each."""
    funding = InMemoryFundingService(small_program(), directory())
    funding.accept(application("L1", L, fee_cents=200_000))
    funding.accept(application("S1", S))
    funding.accept(application("E1", E))
    funding.accept(application("E2", E))
    assert [f.reason for f in funding.tables.waiting("budget_exhausted")] == ["budget_exhausted"] * 2
    return funding


def test_a_start_with_a_raised_budget_promotes_from_the_money_waitlist_through_the_outbox() -> None:
    funding = budget_waiting()
    published = len(funding.tables.outbox)
    result, effects = funding.restart(changed(budget="200_000"))
    assert effects == [Approve("E1", E, "2023", 50_000, promoted=True)]
    assert result.raised_periods == ["2023"] and result.promoted == ["E1"]
    assert funding.tables.budgets["2023"].budget_cents == 200_000
    (message,) = funding.tables.outbox[published:]
    assert message.envelope.event_type == "funding.approved"
    assert message.envelope.data.promoted is True
    # The same file again changes nothing and publishes nothing.
    assert funding.restart(changed(budget="200_000"))[1] == []


def test_a_start_with_an_unlimited_budget_promotes_everyone_waiting_for_money() -> None:
    funding = budget_waiting()
    text = SMALL_BUDGET_TOML.replace("budget_cents = 150_000\n", "")
    _, effects = funding.restart(parse_program(text))
    assert effects == [Approve(rid, E, "2023", 50_000, promoted=True) for rid in ("E1", "E2")]


def test_a_start_with_more_places_promotes_from_the_kommunes_place_waitlist() -> None:
    funding = InMemoryFundingService(small_program(), directory())
    for rid in ("E1", "E2", "E3"):
        funding.accept(application(rid, E))
    assert funding.tables.fundings["E3"].reason == "quota_exhausted"
    result, effects = funding.restart(changed(places=3))
    assert effects == [Approve("E3", E, "2023", 50_000, promoted=True)]
    assert E in result.raised_kommunen
    assert funding.tables.quotas[E].held == 3


def test_an_operators_budget_wins_over_the_file_at_later_starts() -> None:
    funding = budget_waiting()
    result, effects = funding.set_budget("2023", 250_000)
    assert effects == [Approve(rid, E, "2023", 50_000, promoted=True) for rid in ("E1", "E2")]
    assert result.budget_cents_before == 150_000 and result.promoted == ["E1", "E2"]
    assert funding.tables.budgets["2023"].set_by_operator
    # The file still says 150,000 (below the 250,000 committed): the start keeps the operator's value.
    assert funding.restart(small_program())[1] == []
    assert funding.tables.budgets["2023"].budget_cents == 250_000


def test_a_changed_file_budget_applies_where_no_operator_set_one() -> None:
    funding = InMemoryFundingService(small_program(), directory())
    funding.restart(changed(budget="120_000"))
    assert funding.tables.budgets["2023"].budget_cents == 120_000
    assert not funding.tables.budgets["2023"].set_by_operator


def test_an_operator_may_lower_a_budget_but_not_below_what_is_committed() -> None:
    funding = budget_waiting()
    assert funding.set_budget("2023", 150_000)[1] == []
    with pytest.raises(BudgetRefusedError, match="below the 150000 cents already committed"):
        funding.set_budget("2023", 149_999)
    with pytest.raises(UnknownPeriodError):
        funding.set_budget("1999", 1)


def test_a_file_that_lowers_a_limit_below_what_is_held_is_refused() -> None:
    funding = budget_waiting()
    with pytest.raises(BudgetBelowCommittedError):
        funding.restart(changed(budget="100_000"))
    with pytest.raises(PlacesBelowHeldError, match="below the 1 it holds"):
        funding.restart(changed(places=0))  # L1 holds one of Gifhorn's places


def test_a_database_keeps_the_programme_it_was_started_with() -> None:
    funding = InMemoryFundingService(small_program(), directory())
    with pytest.raises(ProgramMismatchError):
        funding.restart(changed(program_id="another"))


@pytest.mark.parametrize(
    ("before", "after", "raised"),
    [
        (100, 101, True),
        (100, 100, False),
        (100, 99, False),
        (100, None, True),
        (None, None, False),
        (None, 5, False),
    ],
)
def test_what_is_a_raise(before: int | None, after: int | None, raised: bool) -> None:
    assert is_raise(before, after) is raised


def test_set_budget_keeps_who_set_it() -> None:
    budget = Budget("2023", 100, approved_cents=80, released_cents=10)
    assert set_budget(budget, 70, by_operator=True) == Budget("2023", 70, 80, 10, set_by_operator=True)
    assert set_budget(budget, None, by_operator=False).budget_cents is None
    with pytest.raises(BudgetBelowCommittedError):
        set_budget(budget, 69, by_operator=True)
