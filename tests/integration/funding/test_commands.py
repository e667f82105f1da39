"""command.close_period carried out by funding, against the real broker and PostgreSQL: its effect,
its result, and a command published twice (same command_id) carried out once."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from lotse.commands import new_command, send_command
from services.funding import operations
from shared.commands import CLOSE_PERIOD, command_envelope, command_key
from shared.topics import Topics
from tests.integration.funding.conftest import accepted
from tests.support.kafka import publish, read_topic, values
from tests.support.service import ServiceFactory
from tests.unit.funding.samples import EINHEITSGEMEINDE, KREISFREIE_STADT

pytestmark = pytest.mark.integration


async def test_close_period_declines_the_waitlisted_once_and_answers_with_its_result(
    kafka_bootstrap: str,
    topics: Topics,
    funding_service: ServiceFactory,
    funding_pool: asyncpg.Pool,
    small_budget_program: Path,
) -> None:
    e, k = EINHEITSGEMEINDE, KREISFREIE_STADT
    inputs = [accepted("E1", e), accepted("E2", e), accepted("E3", e), accepted("K1", k), accepted("K2", k)]
    async with funding_service(program_file=small_budget_program):
        await publish(kafka_bootstrap, topics.registration_events, inputs)
        await read_topic(kafka_bootstrap, topics.funding_decisions, until=lambda r: len(r) >= 5, timeout=60)

        command = new_command(CLOSE_PERIOD, "Förderjahr abgeschlossen", period_id="2023")
        closed = await send_command(kafka_bootstrap, topics, CLOSE_PERIOD, command)
        assert not closed.missing
        (result,) = closed.results.values()
        assert (result.service, result.outcome, result.detail) == ("funding", "done", {"declined": 2})

        # The same command again (a new event id, the same command_id): carried out before.
        again = command_envelope(CLOSE_PERIOD, command).model_dump(mode="json")
        await publish(kafka_bootstrap, topics.operations_commands, [(command_key(command), again)])
        # Commands are taken in order (one partition): once a later one is answered, the
        # repetition has been seen.
        closed_twice = new_command(CLOSE_PERIOD, "noch einmal", period_id="2023")
        refused = await send_command(kafka_bootstrap, topics, CLOSE_PERIOD, closed_twice)
        assert [(r.outcome, r.detail["error"]) for r in refused.results.values()] == [
            ("refused", "already_closed")
        ]
        unknown = await send_command(
            kafka_bootstrap, topics, CLOSE_PERIOD, new_command(CLOSE_PERIOD, "Tippfehler", period_id="1999")
        )
        assert [(r.outcome, r.detail) for r in unknown.results.values()] == [
            ("refused", {"error": "unknown_period"})
        ]

        results = values(
            await read_topic(kafka_bootstrap, topics.operations_results, until=lambda r: len(r) >= 3)
        )
        decisions = values(
            await read_topic(kafka_bootstrap, topics.funding_decisions, until=lambda r: len(r) >= 7)
        )
    assert [r["data"]["command_id"] for r in results].count(str(command.command_id)) == 1
    assert {r["event_type"] for r in results} == {"result.close_period"}
    assert all(r["correlation_id"] == r["data"]["command_id"] for r in results)
    declined = [d["data"]["registration_id"] for d in decisions if d["data"].get("reason") == "period_closed"]
    assert sorted(declined) == ["E3", "K2"]
    figures = {f.period_id: f for f in await operations.budget_figures(funding_pool)}
    assert figures["2023"].closed and figures["2023"].waitlisted == 0
