"""Issue 22's corrections carried out by funding against the real broker and PostgreSQL:
`command.set_budget` (a raise promotes through the outbox, below committed is refused with the
committed amount, a restart keeps the operator's budget), `command.reopen_period` (a new
registration is decided again, the `period_closed` declines stay) and the close-period dry run
(exactly what a later close declines; it changes nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lotse.commands import CommandOutcome, new_command, send_command
from services.funding import operations
from shared.commands import CLOSE_PERIOD, REOPEN_PERIOD, SET_BUDGET
from shared.topics import Topics
from tests.integration.funding.conftest import accepted
from tests.support.kafka import publish, read_topic, values
from tests.support.service import ServiceFactory
from tests.unit.funding.samples import EINHEITSGEMEINDE as E
from tests.unit.funding.samples import KREISFREIE_STADT as K
from tests.unit.funding.samples import LANDKREIS as L
from tests.unit.funding.samples import SAMTGEMEINDE as S

pytestmark = pytest.mark.integration


class Funding:
    """Feeds registration.events one group at a time (decisions depend on the order funding sees
    them, and Kafka orders only within a partition) and carries out commands. funding.decisions
    is read back partition by partition: its order across Kommunen says nothing."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.bootstrap, self.topics = bootstrap, topics
        self.decided = 0

    async def accept(self, *registrations: tuple[str, str]) -> list[dict[str, Any]]:
        """Publish the acceptances; wait for their decisions; the decisions so far."""
        await publish(
            self.bootstrap,
            self.topics.registration_events,
            [accepted(rid, key) for rid, key in registrations],
        )
        return await self.decisions(self.decided + len(registrations))

    async def decisions(self, count: int) -> list[dict[str, Any]]:
        records = await read_topic(
            self.bootstrap, self.topics.funding_decisions, until=lambda r: len(r) >= count, timeout=60
        )
        self.decided = len(records)
        return values(records)

    async def command(self, name: str, reason: str, **fields: Any) -> CommandOutcome:
        outcome = await send_command(self.bootstrap, self.topics, name, new_command(name, reason, **fields))
        assert not outcome.missing
        return outcome


def decided(decisions: list[dict[str, Any]], registration_id: str) -> list[tuple[str, Any, Any]]:
    """A registration's decisions: (event type, reason, promoted), in order."""
    return [
        (d["event_type"], d["data"].get("reason"), d["data"].get("promoted"))
        for d in decisions
        if d["data"]["registration_id"] == registration_id
    ]


def answer(outcome: CommandOutcome) -> tuple[str, dict[str, int | str]]:
    (result,) = outcome.results.values()
    assert result.service == "funding"
    return result.outcome, result.detail


async def budget_of(pool: asyncpg.Pool, period_id: str) -> operations.BudgetFigures:
    return {f.period_id: f for f in await operations.budget_figures(pool)}[period_id]


async def test_a_raise_promotes_a_lower_budget_is_refused_and_a_restart_keeps_the_operators_value(
    kafka_bootstrap: str,
    topics: Topics,
    funding_service: ServiceFactory,
    funding_pool: asyncpg.Pool,
    small_budget_program: Path,
) -> None:
    funding = Funding(kafka_bootstrap, topics)
    async with funding_service(program_file=small_budget_program):
        await funding.accept(("E1", E), ("E2", E))
        await funding.accept(("K1", K))  # 150,000 committed: the 2023 budget is spent
        await funding.accept(("K2", K))
        decisions = await funding.accept(("L1", L))
        for waiting in ("K2", "L1"):
            assert decided(decisions, waiting) == [("funding.waitlisted", "budget_exhausted", None)]

        raised = await funding.command(
            SET_BUDGET, "Nachtragshaushalt", period_id="2023", budget_cents=200_000
        )
        assert answer(raised) == (
            "done",
            {"budget_cents": 200_000, "budget_cents_before": 150_000, "promoted": 1},
        )
        decisions = await funding.decisions(6)
        (promoted,) = [d for d in decisions if d["data"].get("promoted")]
        assert (promoted["event_type"], promoted["data"]["registration_id"]) == ("funding.approved", "K2")
        assert promoted["correlation_id"] == str(raised.command.command_id)

        lowered = await funding.command(SET_BUDGET, "Kürzung", period_id="2023", budget_cents=100_000)
        assert answer(lowered) == ("refused", {"error": "below_committed", "committed_cents": 200_000})
        unknown = await funding.command(SET_BUDGET, "Tippfehler", period_id="1999", budget_cents=1)
        assert answer(unknown) == ("refused", {"error": "unknown_period"})

    figures = await budget_of(funding_pool, "2023")
    assert (figures.budget_cents, figures.committed_cents, figures.waitlisted) == (200_000, 200_000, 1)
    # A restart with the same file (150,000) keeps the operator's budget; and raising it again
    # after the restart still promotes.
    async with funding_service(program_file=small_budget_program):
        assert (await budget_of(funding_pool, "2023")).budget_cents == 200_000
        again = await funding.command(SET_BUDGET, "Restmittel", period_id="2023", budget_cents=250_000)
        assert answer(again)[1]["promoted"] == 1
        assert decided(await funding.decisions(7), "L1") == [
            ("funding.waitlisted", "budget_exhausted", None),
            ("funding.approved", None, True),
        ]
    assert (await budget_of(funding_pool, "2023")).budget_cents == 250_000
    results = values(
        await read_topic(kafka_bootstrap, topics.operations_results, until=lambda r: len(r) >= 4)
    )
    assert {r["event_type"] for r in results} == {"result.set_budget"}


async def test_a_dry_run_shows_what_closing_declines_and_a_reopened_period_decides_again(
    kafka_bootstrap: str,
    topics: Topics,
    funding_service: ServiceFactory,
    funding_pool: asyncpg.Pool,
    small_budget_program: Path,
) -> None:
    funding = Funding(kafka_bootstrap, topics)
    async with funding_service(program_file=small_budget_program):
        await funding.accept(("E1", E), ("E2", E))
        await funding.accept(("E3", E))  # Göttingen's two places are held: waits for a place
        await funding.accept(("K1", K))
        await funding.accept(("K2", K))  # the budget is spent: waits for money

        figures_before = await operations.budget_figures(funding_pool)
        waitlist_before = await operations.waitlist(funding_pool)
        preview = await operations.closing_preview(funding_pool, "2023")
        assert not preview.already_closed
        assert [(e.registration_id, e.kommune_key, e.waitlist_reason) for e in preview.declined] == [
            ("E3", E, "quota_exhausted"),
            ("K2", K, "budget_exhausted"),
        ]
        # The dry run changed nothing.
        assert await operations.budget_figures(funding_pool) == figures_before
        assert await operations.waitlist(funding_pool) == waitlist_before

        closed = await funding.command(CLOSE_PERIOD, "Förderjahr abgeschlossen", period_id="2023")
        assert answer(closed) == ("done", {"declined": 2})
        declined = [d for d in await funding.decisions(7) if d["event_type"] == "funding.declined"]
        assert sorted(d["data"]["registration_id"] for d in declined) == sorted(
            e.registration_id for e in preview.declined
        )
        assert {d["data"]["reason"] for d in declined} == {"period_closed"}
        assert (await operations.closing_preview(funding_pool, "2023")).already_closed

        late = await funding.accept(("S1", S))
        assert decided(late, "S1") == [("funding.declined", "period_closed", None)]

        reopened = await funding.command(REOPEN_PERIOD, "Restmittel verfügbar", period_id="2023")
        assert answer(reopened) == ("done", {"reopened": "2023"})
        twice = await funding.command(REOPEN_PERIOD, "noch einmal", period_id="2023")
        assert answer(twice) == ("refused", {"error": "not_closed"})
        assert not (await budget_of(funding_pool, "2023")).closed

        # Money for one more: the next registration is decided again, and approved.
        await funding.command(SET_BUDGET, "Restmittel", period_id="2023", budget_cents=200_000)
        new = await funding.accept(("L1", L))
        assert decided(new, "L1") == [("funding.approved", None, False)]
    # Nothing more was published (the raise found no one waiting), and the closing's declines stay.
    assert funding.decided == 9
    rows = await funding_pool.fetch(
        "SELECT registration_id, status, reason FROM fundings WHERE registration_id = ANY($1::text[])",
        ["E3", "K2", "S1"],
    )
    assert {tuple(row.values()) for row in rows} == {
        ("E3", "declined", "period_closed"),
        ("K2", "declined", "period_closed"),
        ("S1", "declined", "period_closed"),
    }
