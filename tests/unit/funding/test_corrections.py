"""Issue 22's corrections as funding carries them out (FundingCommandsApplier over the in-memory
unit of work): `command.set_budget` (a raise promotes in the same transaction, a budget below what
is committed is refused with that amount), `command.reopen_period` (new registrations are decided
again, `period_closed` declines stay), and the rule a close-period dry run shares with the close."""

from __future__ import annotations

import uuid
from typing import Any

from services.funding.commands import FundingCommandsApplier
from services.funding.domain import Approve, Decline, Status, declines_at_closing
from shared.commands import (
    CLOSE_PERIOD,
    COMMANDS,
    REOPEN_PERIOD,
    SET_BUDGET,
    Command,
    CommandResult,
    carried_out_by,
    command_envelope,
    command_key,
)
from shared.events import derived_event_id
from shared.outbox import OutboxMessage
from shared.topics import Topics
from tests.unit.funding.fakes import InMemoryFundingService, completed
from tests.unit.funding.samples import EINHEITSGEMEINDE as E
from tests.unit.funding.samples import KREISFREIE_STADT as K
from tests.unit.funding.samples import LANDKREIS as L
from tests.unit.funding.samples import SAMTGEMEINDE as S
from tests.unit.funding.samples import application, directory, small_program

TOPICS = Topics()


def command(name: str, **fields: Any) -> Command:
    return COMMANDS[name](command_id=uuid.uuid4(), requested_by="operator1", reason="Korrektur", **fields)


def carry_out(funding: InMemoryFundingService, sent: Command, name: str) -> tuple[CommandResult, list[Any]]:
    """One command through the applier in one unit of work, as the consumer runs it: its result,
    and the funding.decisions messages it published."""
    applier = FundingCommandsApplier(TOPICS)

    async def apply() -> list[OutboxMessage]:
        async with funding.database.unit_of_work() as uow:
            before = len(uow.tables.outbox)
            await uow.enqueue(await applier.apply_batch(uow, [command_envelope(name, sent)]))
            return uow.tables.outbox[before:]

    published = completed(apply())
    (result,) = [m.envelope.data for m in published if m.topic == TOPICS.operations_results]
    assert isinstance(result, CommandResult)
    decisions = [m for m in published if m.topic == TOPICS.funding_decisions]
    return result, decisions


def money_waiting() -> InMemoryFundingService:
    """2023's 150,000 held by L1 (100,000) and S1 (50,000); E1, K1 and E2 wait for 50,000 each."""
    funding = InMemoryFundingService(small_program(), directory())
    for registration in (application("L1", L, fee_cents=200_000), application("S1", S)):
        funding.accept(registration)
    for registration in (application("E1", E), application("K1", K), application("E2", E)):
        funding.accept(registration)
    assert [f.registration_id for f in funding.tables.waiting("budget_exhausted")] == ["E1", "K1", "E2"]
    return funding


def test_the_corrections_are_funding_commands_keyed_by_their_period() -> None:
    for name, fields in ((SET_BUDGET, {"budget_cents": 1}), (REOPEN_PERIOD, {})):
        sent = command(name, period_id="2023", **fields)
        assert carried_out_by(name, sent) == ("funding",)
        assert command_key(sent) == "2023"


def test_a_raised_budget_promotes_from_the_money_waitlist_in_the_commands_transaction() -> None:
    funding = money_waiting()
    sent = command(SET_BUDGET, period_id="2023", budget_cents=250_000)
    result, decisions = carry_out(funding, sent, SET_BUDGET)
    assert (result.outcome, result.detail) == (
        "done",
        {"budget_cents": 250_000, "budget_cents_before": 150_000, "promoted": 2},
    )
    assert funding.tables.recorded[-2:] == [
        Approve("E1", E, "2023", 50_000, promoted=True),
        Approve("K1", K, "2023", 50_000, promoted=True),
    ]
    assert [(m.envelope.event_type, m.envelope.data.registration_id) for m in decisions] == [
        ("funding.approved", "E1"),
        ("funding.approved", "K1"),
    ]
    # Caused by the command: the same command gives the same event ids, correlated with it.
    assert all(m.envelope.correlation_id == sent.command_id for m in decisions)
    assert decisions[0].envelope.event_id == derived_event_id(sent.command_id, "funding.approved:E1")
    budget = funding.tables.budgets["2023"]
    assert (budget.budget_cents, budget.committed_cents, budget.set_by_operator) == (250_000, 250_000, True)
    # The operator's value wins over the file at the next start.
    assert funding.restart(small_program())[1] == []
    assert funding.tables.budgets["2023"].budget_cents == 250_000


def test_the_same_command_is_carried_out_once() -> None:
    funding = money_waiting()
    sent = command(SET_BUDGET, period_id="2023", budget_cents=200_000)
    carry_out(funding, sent, SET_BUDGET)
    applier = FundingCommandsApplier(TOPICS)

    async def again() -> list[OutboxMessage]:
        async with funding.database.unit_of_work() as uow:
            return list(await applier.apply_batch(uow, [command_envelope(SET_BUDGET, sent)]))

    assert completed(again()) == []
    assert funding.tables.fundings["K1"].status is Status.WAITLISTED


def test_a_budget_below_what_is_committed_is_refused_with_that_amount_and_changes_nothing() -> None:
    funding = money_waiting()
    before = funding.tables.copy()
    result, decisions = carry_out(
        funding, command(SET_BUDGET, period_id="2023", budget_cents=149_999), SET_BUDGET
    )
    assert (result.outcome, result.detail) == (
        "refused",
        {"error": "below_committed", "committed_cents": 150_000},
    )
    assert decisions == []
    assert funding.tables.budgets == before.budgets and funding.tables.fundings == before.fundings


def test_a_lower_budget_down_to_what_is_committed_is_done_and_promotes_no_one() -> None:
    funding = money_waiting()
    result, decisions = carry_out(
        funding, command(SET_BUDGET, period_id="2023", budget_cents=150_000), SET_BUDGET
    )
    assert (result.outcome, result.detail["promoted"], decisions) == ("done", 0, [])
    assert funding.tables.budgets["2023"].set_by_operator


def test_a_budget_of_an_unlimited_period_says_so_and_one_of_an_unknown_period_is_refused() -> None:
    funding = money_waiting()
    result, _ = carry_out(funding, command(SET_BUDGET, period_id="2021-2022", budget_cents=0), SET_BUDGET)
    assert result.detail == {"budget_cents": 0, "budget_cents_before": "unlimited", "promoted": 0}
    result, _ = carry_out(funding, command(SET_BUDGET, period_id="1999", budget_cents=1), SET_BUDGET)
    assert (result.outcome, result.detail) == ("refused", {"error": "unknown_period"})


def test_a_reopened_period_decides_new_registrations_again_and_its_closing_declines_stay() -> None:
    funding = money_waiting()
    closed, _ = carry_out(funding, command(CLOSE_PERIOD, period_id="2023"), CLOSE_PERIOD)
    assert closed.detail == {"declined": 3}
    assert funding.accept(application("late", K)) == [Decline("late", K, "period_closed", "2023")]

    result, decisions = carry_out(funding, command(REOPEN_PERIOD, period_id="2023"), REOPEN_PERIOD)
    assert (result.outcome, result.detail, decisions) == ("done", {"reopened": "2023"}, [])
    assert not funding.tables.budgets["2023"].closed
    # Decided again: no money is left, so it waits for money; with more money it is promoted.
    assert [type(e).__name__ for e in funding.accept(application("new", K))] == ["Waitlist"]
    carry_out(funding, command(SET_BUDGET, period_id="2023", budget_cents=200_000), SET_BUDGET)
    assert funding.tables.fundings["new"].status is Status.APPROVED
    for declined in ("E1", "K1", "E2", "late"):
        record = funding.tables.fundings[declined]
        assert (record.status, record.reason) == (Status.DECLINED, "period_closed")
    # It can be closed again; only what waits then is declined.
    assert funding.accept(application("waiting", E)) != []
    again, _ = carry_out(funding, command(CLOSE_PERIOD, period_id="2023"), CLOSE_PERIOD)
    assert (again.outcome, again.detail) == ("done", {"declined": 1})


def test_reopening_an_open_or_unknown_period_is_refused_and_changes_nothing() -> None:
    funding = money_waiting()
    before = funding.tables.copy()
    result, _ = carry_out(funding, command(REOPEN_PERIOD, period_id="2023"), REOPEN_PERIOD)
    assert (result.outcome, result.detail) == ("refused", {"error": "not_closed"})
    result, _ = carry_out(funding, command(REOPEN_PERIOD, period_id="1999"), REOPEN_PERIOD)
    assert (result.outcome, result.detail) == ("refused", {"error": "unknown_period"})
    assert funding.tables.budgets == before.budgets and funding.tables.fundings == before.fundings


def test_a_dry_run_and_the_close_decline_by_one_rule() -> None:
    funding = money_waiting()
    waiting = [f for f in funding.tables.fundings.values() if f.status is Status.WAITLISTED]
    previewed = declines_at_closing(waiting)
    assert funding.close("2023") == previewed
    assert [d.registration_id for d in previewed] == ["E1", "K1", "E2"]
