"""`lotse budget [set]`, `lotse reopen-period` and `lotse close-period --dry-run` on the command
line: a bad amount or a missing reason is refused before anything is sent (exit 2); a refusal is
explained in euros (exit 1); the old `lotse budget` table stays the group's default; a dry run
sends nothing and exits 1 where the close would be refused."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from typer.testing import CliRunner

import lotse.cli
import lotse.commands
from lotse.cli import app
from lotse.commands import CommandOutcome
from services.funding import operations
from services.funding.operations import ClosingEntry, ClosingPreview
from shared.commands import SET_BUDGET, Command, CommandResult, SetBudget

runner = CliRunner()


class Sent:
    """Stands in for the broker: records the commands and answers each with `detail`."""

    def __init__(self, outcome: Literal["done", "refused"], detail: dict[str, int | str]) -> None:
        self.commands: list[tuple[str, Command]] = []
        self._outcome = outcome
        self._detail = detail

    async def __call__(
        self, bootstrap: str, topics: Any, name: str, command: Command, **_: Any
    ) -> CommandOutcome:
        self.commands.append((name, command))
        result = CommandResult(
            command_id=command.command_id, service="funding", outcome=self._outcome, detail=self._detail
        )
        return CommandOutcome(command, ("funding",), {"funding": result})


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    answer = Sent("done", {"budget_cents": 20_000_050, "budget_cents_before": 15_000_000, "promoted": 2})
    monkeypatch.setattr(lotse.commands, "send_command", answer)
    return answer


@pytest.mark.parametrize("amount", ["2.50", "200.00", "-5", "zweihundert", "1.000.000.001"])
def test_a_bad_amount_is_refused_and_nothing_is_sent(sent: Sent, amount: str) -> None:
    result = runner.invoke(app, ["budget", "set", "2023", amount, "--reason", "Nachtragshaushalt"])
    assert result.exit_code == 2
    assert sent.commands == []


@pytest.mark.parametrize(
    "arguments", [["budget", "set", "2023", "200.000"], ["reopen-period", "2023"], ["close-period", "2023"]]
)
def test_a_correction_without_a_reason_is_refused_and_nothing_is_sent(
    sent: Sent, arguments: list[str]
) -> None:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert "--reason" in result.output
    assert sent.commands == []


def test_budget_set_sends_the_amount_in_cents_and_prints_the_result(sent: Sent) -> None:
    result = runner.invoke(app, ["budget", "set", "2023", "200000,50", "--reason", "Nachtragshaushalt"])
    assert result.exit_code == 0, result.output
    ((name, command),) = sent.commands
    assert name == SET_BUDGET and isinstance(command, SetBudget)
    assert (command.period_id, command.budget_cents, command.reason) == (
        "2023",
        20_000_050,
        "Nachtragshaushalt",
    )
    assert "budget 200.000,50 € (was 150.000,00 €); 2 registration(s) promoted" in result.output


def test_a_budget_below_what_is_committed_is_explained_in_euros(monkeypatch: pytest.MonkeyPatch) -> None:
    refusal = Sent("refused", {"error": "below_committed", "committed_cents": 15_000_000})
    monkeypatch.setattr(lotse.commands, "send_command", refusal)
    result = runner.invoke(app, ["budget", "set", "2023", "100.000", "--reason", "Kürzung"])
    assert result.exit_code == 1
    assert "the period has 150.000,00 € committed" in " ".join(result.output.split())


def test_reopen_period_sends_its_command(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = Sent("done", {"reopened": "2023"})
    monkeypatch.setattr(lotse.commands, "send_command", answer)
    result = runner.invoke(app, ["reopen-period", "2023", "--reason", "Restmittel"])
    assert result.exit_code == 0, result.output
    assert [(name, command.model_dump()["period_id"]) for name, command in answer.commands] == [
        ("reopen_period", "2023")
    ]
    assert "Period 2023 is open again" in result.output


def test_budget_is_a_group_whose_default_is_the_table() -> None:
    result = runner.invoke(app, ["budget", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Per funding period: the budget" in result.output
    assert "set  Set a funding period's budget" in result.output


def preview_of(found: ClosingPreview | None) -> Callable[..., Awaitable[ClosingPreview]]:
    """Stands in for the funding database the dry run reads (None: an unknown period)."""

    async def read(dsn: str, action: Callable[[Any], Awaitable[ClosingPreview]]) -> ClosingPreview:
        if found is None:
            raise operations.UnknownPeriodError("no funding period '1999'")
        return found

    return read


def test_a_dry_run_lists_whom_closing_would_decline_needs_no_reason_and_sends_nothing(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [
        ClosingEntry("REG-1", "031590016016", "quota_exhausted", 50_000),
        ClosingEntry("REG-2", "03151", "budget_exhausted", 25_000),
    ]
    monkeypatch.setattr(lotse.cli, "with_pool", preview_of(ClosingPreview("2023", False, entries)))
    result = runner.invoke(app, ["close-period", "2023", "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "REG-1" in result.output and "a place (quota_exhausted)" in result.output
    assert "REG-2" in result.output and "money (budget_exhausted)" in result.output
    assert "2 registration(s) would be declined; nothing was changed" in result.output
    assert sent.commands == []


@pytest.mark.parametrize(
    ("found", "says"),
    [(ClosingPreview("2023", True, []), "closed already"), (None, "no funding period")],
)
def test_a_dry_run_of_a_close_that_would_be_refused_exits_1(
    sent: Sent, monkeypatch: pytest.MonkeyPatch, found: ClosingPreview | None, says: str
) -> None:
    monkeypatch.setattr(lotse.cli, "with_pool", preview_of(found))
    result = runner.invoke(app, ["close-period", "2023", "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert says in result.output
    assert sent.commands == []
