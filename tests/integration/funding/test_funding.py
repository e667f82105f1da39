"""The funding service end to end, against the real Kafka broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.funding import operations
from shared.events import derived_event_id
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from shared.runtime import ServiceRuntime
from shared.topics import Topics
from tests.integration.funding.conftest import accepted, withdrawn
from tests.support.kafka import Record, publish, read_topic, values
from tests.support.service import ServiceFactory
from tests.support.waiting import wait_until
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    KREISFREIE_STADT,
    LANDKREIS,
    MITGLIEDSGEMEINDE,
    OUTSIDE_LAND,
    REGION_HANNOVER,
    SAMTGEMEINDE,
    UNKNOWN,
    directory,
)

pytestmark = pytest.mark.integration

Decision = dict[str, Any]


def count(n: int) -> Callable[[list[Record]], bool]:
    return lambda records: len(records) >= n


@dataclass(frozen=True)
class Bus:
    """The test's topics: registration.events in, funding.decisions out."""

    bootstrap: str
    topics: Topics

    async def registrations(self, *messages: tuple[str, dict[str, Any]]) -> None:
        await publish(self.bootstrap, self.topics.registration_events, list(messages))

    async def decisions(self, n: int, settle: float = 0.0) -> list[Decision]:
        """The first n messages on funding.decisions (waiting `settle` longer for any that must not come)."""
        return values(
            await read_topic(
                self.bootstrap, self.topics.funding_decisions, until=count(n), timeout=60, settle=settle
            )
        )


@pytest.fixture
def bus(kafka_bootstrap: str, topics: Topics) -> Bus:
    return Bus(kafka_bootstrap, topics)


async def figures_by_period(pool: asyncpg.Pool) -> dict[str, operations.BudgetFigures]:
    return {f.period_id: f for f in await operations.budget_figures(pool)}


def summary(decision: Decision) -> tuple[Any, ...]:
    data = decision["data"]
    detail = {
        "funding.approved": ("amount_cents", "promoted"),
        "funding.waitlisted": ("reason", "position"),
        "funding.declined": ("reason",),
        "funding.released": ("amount_cents",),
    }[decision["event_type"]]
    return (decision["event_type"], data["registration_id"], *(data[name] for name in detail))


def by_registration(found: list[Decision]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for decision in found:
        grouped[decision["data"]["registration_id"]].append(summary(decision))
    return dict(grouped)


async def outbox_order(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    """What the service published, in the order it wrote it (the relay keeps this order per key)."""
    rows = await pool.fetch("SELECT event_type, payload FROM outbox ORDER BY id")
    return [(row["event_type"], json.loads(row["payload"])["data"]["registration_id"]) for row in rows]


async def test_eligibility_a_samtgemeinde_member_is_declined_while_its_samtgemeinde_is_approved(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool
) -> None:
    inputs = [
        accepted("R-SG", SAMTGEMEINDE),
        accepted("R-MG", MITGLIEDSGEMEINDE),
        accepted("R-UK", UNKNOWN),
        accepted("R-BY", OUTSIDE_LAND),
        accepted("R-2024", EINHEITSGEMEINDE, starts_on=date(2024, 1, 8)),
        accepted("R-RH", REGION_HANNOVER, starts_on=date(2021, 3, 4), fee_cents=123_457),
    ]
    async with funding_service():
        await bus.registrations(*inputs)
        found = await bus.decisions(len(inputs), settle=1)

    assert by_registration(found) == {
        "R-SG": [("funding.approved", "R-SG", 50_000, False)],
        "R-MG": [("funding.declined", "R-MG", "kommune_not_eligible")],
        "R-UK": [("funding.declined", "R-UK", "unknown_kommune")],
        "R-BY": [("funding.declined", "R-BY", "kommune_not_eligible")],
        "R-2024": [("funding.declined", "R-2024", "outside_funding_period")],
        "R-RH": [("funding.approved", "R-RH", 61_728, False)],
    }
    period = {d["data"]["registration_id"]: d["data"].get("period_id") for d in found}
    assert (period["R-SG"], period["R-RH"]) == ("2023", "2021-2022")
    causes = {value["data"]["registration_id"]: value for _, value in inputs}
    for decision in found:
        cause = causes[decision["data"]["registration_id"]]
        assert decision["source"] == "funding"
        assert decision["correlation_id"] == cause["event_id"]
        purpose = f"{decision['event_type']}:{decision['data']['registration_id']}"
        assert decision["event_id"] == str(derived_event_id(uuid.UUID(cause["event_id"]), purpose))
        assert decision["data"]["kommune_key"] == cause["data"]["kommune_key"]
    # The programme sync wrote one quota row per eligible Kommune of the 2022 directory.
    assert await funding_pool.fetchval("SELECT count(*) FROM quotas WHERE places = 2") == 440


async def test_budget_boundary_more_demand_than_money(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool, small_budget_program: Path
) -> None:
    keys = [SAMTGEMEINDE, LANDKREIS, REGION_HANNOVER, KREISFREIE_STADT, EINHEITSGEMEINDE]
    inputs = [accepted(f"R-{n}", key) for n, key in enumerate(keys)]
    async with funding_service(program_file=small_budget_program):
        await bus.registrations(*inputs)
        found = await bus.decisions(len(inputs), settle=1)

    outcomes = Counter(summary(d)[0] for d in found)
    assert outcomes == {"funding.approved": 3, "funding.waitlisted": 2}
    assert sum(d["data"]["amount_cents"] for d in found if d["event_type"] == "funding.approved") == 150_000
    waiting = sorted(
        (d["data"]["reason"], d["data"]["position"]) for d in found if d["event_type"] == "funding.waitlisted"
    )
    assert waiting == [("budget_exhausted", 1), ("budget_exhausted", 2)]
    figures = await figures_by_period(funding_pool)
    assert figures["2023"].committed_cents == 150_000
    assert figures["2023"].remaining_cents == 0
    assert figures["2023"].waitlisted == 2
    assert figures["2021-2022"].budget_cents is None and figures["2021-2022"].remaining_cents is None


def newer_than(records: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {record["event_id"] for record in earlier}
    return [record for record in records if record["event_id"] not in seen]


async def test_withdrawal_releases_then_promotes_in_order(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool, small_budget_program: Path
) -> None:
    e = EINHEITSGEMEINDE
    async with funding_service(program_file=small_budget_program):
        # The quota path: one Kommune, one partition, so the topic shows the order.
        await bus.registrations(accepted("E1", e), accepted("E2", e), accepted("E3", e), withdrawn("E1", e))
        found = await bus.decisions(5)
        assert [summary(d) for d in found] == [
            ("funding.approved", "E1", 50_000, False),
            ("funding.approved", "E2", 50_000, False),
            ("funding.waitlisted", "E3", "quota_exhausted", 1),
            ("funding.released", "E1", 50_000),
            ("funding.approved", "E3", 50_000, True),
        ]
        # The budget path: E2 and E3 hold 100,000 of 150,000; K1 takes the rest, L1 waits.
        await bus.registrations(accepted("K1", KREISFREIE_STADT))
        six = await bus.decisions(6)
        await bus.registrations(accepted("L1", LANDKREIS))
        seven = await bus.decisions(7)
        # A read from the start returns the partitions one after another, not in time order.
        assert [summary(d) for d in newer_than(seven, six)] == [
            ("funding.waitlisted", "L1", "budget_exhausted", 1)
        ]
        await bus.registrations(withdrawn("K1", KREISFREIE_STADT))
        found = newer_than(await bus.decisions(9, settle=1), seven)

    assert sorted(summary(d) for d in found) == [
        ("funding.approved", "L1", 50_000, True),
        ("funding.released", "K1", 50_000),
    ]
    assert (await outbox_order(funding_pool))[-2:] == [("funding.released", "K1"), ("funding.approved", "L1")]
    promoted = next(d for d in found if d["event_type"] == "funding.approved")
    release = next(d for d in found if d["event_type"] == "funding.released")
    assert promoted["correlation_id"] == release["correlation_id"]
    assert promoted["data"]["kommune_key"] == LANDKREIS
    assert (await operations.kommune_funding(funding_pool, e)).held == 2
    figures = await figures_by_period(funding_pool)
    assert (figures["2023"].approved_cents, figures["2023"].released_cents) == (250_000, 100_000)


async def test_duplicate_delivery_changes_nothing(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool
) -> None:
    first = accepted("R1", EINHEITSGEMEINDE)
    again_with_new_id = accepted("R1", EINHEITSGEMEINDE)
    withdrawal = withdrawn("R1", EINHEITSGEMEINDE)
    async with funding_service():
        await bus.registrations(first, first, again_with_new_id, withdrawal, withdrawal, first)
        found = await bus.decisions(2, settle=3)

    assert [summary(d) for d in found] == [
        ("funding.approved", "R1", 50_000, False),
        ("funding.released", "R1", 50_000),
    ]
    state = await operations.kommune_funding(funding_pool, EINHEITSGEMEINDE)
    assert (state.places, state.held) == (2, 0)
    assert [(r.registration_id, r.status) for r in state.registrations] == [("R1", "released")]
    assert await funding_pool.fetchval("SELECT count(*) FROM outbox") == 2


async def test_a_seat_waitlisted_registration_gets_its_decision_only_when_it_gets_a_seat(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool
) -> None:
    key, seat_waiting = accepted("R7", LANDKREIS)
    seat_waiting = {**seat_waiting, "event_type": "registration.waitlisted"}
    seat_waiting["data"] = {**seat_waiting["data"], "position": 1}
    withdrawn_from_seat_waitlist = withdrawn("R8", LANDKREIS)
    _, waits_then_leaves = accepted("R8", LANDKREIS)
    waits_then_leaves = {**waits_then_leaves, "event_type": "registration.waitlisted"}
    waits_then_leaves["data"] = {**waits_then_leaves["data"], "position": 2}
    async with funding_service():
        await bus.registrations((key, seat_waiting), (key, waits_then_leaves), withdrawn_from_seat_waitlist)
        await bus.registrations(accepted("R7", LANDKREIS))  # a seat freed up: now it is decided
        found = await bus.decisions(1, settle=3)

    assert [summary(d) for d in found] == [("funding.approved", "R7", 50_000, False)]
    state = await operations.kommune_funding(funding_pool, LANDKREIS)
    assert state.held == 1
    assert [r.registration_id for r in state.registrations] == ["R7"]


def first_eligible_keys(n: int) -> list[str]:
    program = load_program(DEFAULT_PROGRAM_FILE)
    return sorted(k.key for k in directory().in_land("03") if program.eligibility.admits(k))[:n]


def assigned_partitions(runtime: ServiceRuntime) -> set[int]:
    """The partitions of registration.events this instance holds (funding also consumes the
    one-partition operations.commands, with a subscriber of its own)."""
    subscribers: list[Any] = list(runtime.broker.subscribers)
    return {
        tp.partition
        for subscriber in subscribers
        if subscriber.consumer is not None
        for tp in subscriber.consumer.assignment()
        if tp.topic == runtime.topics.registration_events
    }


async def test_two_instances_share_one_burst_without_overdrawing(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool, small_budget_program: Path
) -> None:
    keys = first_eligible_keys(12)
    burst: list[tuple[str, dict[str, Any]]] = []
    accepted_ids: list[str] = []
    serial = itertools.count()
    for round_ in range(4):
        for key in keys:
            registration_id = f"R-{next(serial)}"
            starts_on = date(2023, 3, 1) if (round_ + len(burst)) % 3 else date(2022, 3, 1)
            burst.append(
                accepted(registration_id, key, starts_on=starts_on, fee_cents=60_000 + round_ * 20_000)
            )
            accepted_ids.append(registration_id)
            if round_ >= 2:  # withdraw this Kommune's first registration of round 0 or 1
                burst.append(withdrawn(f"R-{(round_ - 2) * len(keys) + keys.index(key)}", key))

    async with (
        funding_service(program_file=small_budget_program) as one,
        funding_service(program_file=small_budget_program) as two,
    ):

        async def both_assigned() -> bool:
            return bool(assigned_partitions(one) and assigned_partitions(two))

        await wait_until(
            both_assigned, timeout=60, interval=0.2, message="the two instances never shared the partitions"
        )
        await bus.registrations(*burst)

        async def settled() -> list[Decision]:
            while True:
                if await funding_pool.fetchval("SELECT count(*) FROM inbox") == len(burst):
                    return await bus.decisions(
                        await funding_pool.fetchval("SELECT count(*) FROM outbox"),
                        settle=1,
                    )
                await asyncio.sleep(0.2)

        found = await asyncio.wait_for(settled(), timeout=90)
        partitions_one, partitions_two = assigned_partitions(one), assigned_partitions(two)

    # Both instances consumed part of the burst: each holds partitions that carry its records.
    burst_partitions = {
        r.partition
        for r in await read_topic(bus.bootstrap, bus.topics.registration_events, until=count(len(burst)))
    }
    assert partitions_one & burst_partitions and partitions_two & burst_partitions
    # Exactly one first decision per accepted registration, and it comes first.
    history: dict[str, list[Decision]] = defaultdict(list)
    for decision in found:
        history[decision["data"]["registration_id"]].append(decision)
    assert sorted(history) == sorted(accepted_ids)
    for registration_id, events in history.items():
        assert [is_first_decision(d, events[:n]) for n, d in enumerate(events)].count(True) == 1, events
        assert is_first_decision(events[0], []), registration_id
    # Per Kommune (one partition, in order): never more than two funded at once.
    held: Counter[str] = Counter()
    for decision in found:
        key = decision["data"]["kommune_key"]
        if decision["event_type"] == "funding.approved":
            held[key] += 1
        elif decision["event_type"] == "funding.released":
            held[key] -= 1
        assert 0 <= held[key] <= 2, f"{key} holds {held[key]} after {summary(decision)}"
    # Per period: what was approved minus what was released stays within the budget.
    committed: Counter[str] = Counter()
    for decision in found:
        sign = {"funding.approved": 1, "funding.released": -1}.get(decision["event_type"], 0)
        committed[decision["data"].get("period_id", "")] += sign * decision["data"].get("amount_cents", 0)
    assert 0 < committed["2023"] <= 150_000
    figures = await figures_by_period(funding_pool)
    assert figures["2023"].committed_cents == committed["2023"]
    assert figures["2021-2022"].committed_cents == committed["2021-2022"]
    # The burst went through every path: both waitlists, releases and promotions.
    kinds = Counter((d["event_type"], d["data"].get("reason", d["data"].get("promoted"))) for d in found)
    assert kinds["funding.waitlisted", "quota_exhausted"] and kinds["funding.waitlisted", "budget_exhausted"]
    assert kinds["funding.approved", True] and kinds["funding.released", None]


def is_first_decision(decision: Decision, earlier: list[Decision]) -> bool:
    """Approved (not promoted), declined for a reason of its own, or waitlisted for the first time."""
    event_type, data = decision["event_type"], decision["data"]
    if event_type == "funding.approved":
        return data["promoted"] is False
    if event_type == "funding.declined":
        return bool(data["reason"] != "period_closed")
    return event_type == "funding.waitlisted" and not any(
        d["event_type"] == "funding.waitlisted" for d in earlier
    )


async def test_closing_a_period_declines_the_waitlisted(
    bus: Bus, funding_service: ServiceFactory, funding_pool: asyncpg.Pool, small_budget_program: Path
) -> None:
    e, k = EINHEITSGEMEINDE, KREISFREIE_STADT
    async with funding_service(program_file=small_budget_program):
        await bus.registrations(
            accepted("E1", e), accepted("E2", e), accepted("E3", e), accepted("K1", k), accepted("K2", k)
        )
        await bus.decisions(5)
        waiting = await operations.waitlist(funding_pool, "2023")
        assert sorted((w.registration_id, w.reason, w.position) for w in waiting) == [
            ("E3", "quota_exhausted", 1),
            ("K2", "budget_exhausted", 1),
        ]

        closed = await operations.close_period(funding_pool, "2023", bus.topics)
        assert sorted(closed.declined) == ["E3", "K2"] and not closed.already_closed
        again = await operations.close_period(funding_pool, "2023", bus.topics)
        assert again.declined == [] and again.already_closed
        with pytest.raises(operations.UnknownPeriodError):
            await operations.close_period(funding_pool, "1999", bus.topics)

        await bus.registrations(accepted("L1", LANDKREIS))
        found = await bus.decisions(8, settle=1)

    # Decisions are keyed by Kommune, so the topic orders them only within a Kommune's partition.
    assert sorted(summary(d) for d in found if d["event_type"] == "funding.declined") == [
        ("funding.declined", "E3", "period_closed"),
        ("funding.declined", "K2", "period_closed"),
        ("funding.declined", "L1", "period_closed"),
    ]
    assert len(found) == 8
    assert await operations.waitlist(funding_pool) == []
    figures = await figures_by_period(funding_pool)
    assert figures["2023"].closed and figures["2023"].waitlisted == 0
