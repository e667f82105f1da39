"""Decisions before letters: when letter work waits for the decision path, and for how long."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from aiokafka import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from services.notification import store
from services.notification.priority import DecisionsFirst, YieldRule, total_lag
from services.notification.sender import Sender
from services.notification.settings import NotificationSettings
from shared.db import Pool
from shared.topics import Topics

TP = TopicPartition


@pytest.mark.parametrize(
    ("threshold", "decision_lag", "holds_back"),
    [
        (200, 0, False),
        (200, 199, False),
        (200, 200, True),
        (200, 50_000, True),
        (200, None, False),  # unreadable: letters go on
        (0, 50_000, False),  # 0: never yield
        (1, 1, True),
    ],
)
def test_letters_wait_from_the_threshold_on(
    threshold: int, decision_lag: int | None, holds_back: bool
) -> None:
    assert YieldRule(threshold, 5.0).holds_back(decision_lag) is holds_back


@pytest.mark.parametrize(
    ("ends", "committed", "lag"),
    [
        ({TP("a", 0): 10, TP("a", 1): 5}, {TP("a", 0): 4, TP("a", 1): 5}, 6),
        ({TP("a", 0): 10, TP("b", 0): 7}, {TP("a", 0): 10, TP("b", 0): 0}, 7),
        # a partition the group never committed: no decision path to yield to
        ({TP("a", 0): 10, TP("a", 1): 90}, {TP("a", 0): 8}, 2),
        ({TP("a", 0): 10}, {TP("a", 0): None}, 0),
        ({TP("a", 0): 10}, {}, 0),
        # a commit past the end (a topic recreated): never a negative lag
        ({TP("a", 0): 3}, {TP("a", 0): 9}, 0),
    ],
)
def test_the_lag_sums_what_each_group_has_not_committed(
    ends: dict[TopicPartition, int], committed: dict[TopicPartition, int | None], lag: int
) -> None:
    assert total_lag(ends, committed) == lag


@given(st.dictionaries(st.integers(0, 11), st.tuples(st.integers(0, 10_000), st.integers(0, 10_000))))
def test_the_lag_is_never_negative_and_at_most_the_records_on_the_topic(
    partitions: dict[int, tuple[int, int]],
) -> None:
    ends = {TP("t", p): end for p, (end, _) in partitions.items()}
    committed: dict[TopicPartition, int | None] = {TP("t", p): done for p, (_, done) in partitions.items()}
    assert 0 <= total_lag(ends, committed) <= sum(ends.values())


async def no_lag() -> int:
    return 0


async def test_an_open_gate_lets_letters_through_at_once() -> None:
    gate = DecisionsFirst(YieldRule(10, 60.0), no_lag, check_seconds=1)
    gate.observe(9)
    await asyncio.wait_for(gate.turn(), timeout=1)
    assert not gate.holding_back
    assert gate.waited_seconds == 0


async def test_letters_wait_until_the_decision_path_caught_up() -> None:
    gate = DecisionsFirst(YieldRule(10, 60.0), no_lag, check_seconds=1)
    gate.observe(10)
    assert gate.holding_back
    waiting = asyncio.create_task(gate.turn())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.observe(3)
    await asyncio.wait_for(waiting, timeout=1)
    assert not gate.holding_back


async def test_letters_wait_no_longer_than_the_longest_wait_however_far_behind_the_decisions_are() -> None:
    gate = DecisionsFirst(YieldRule(10, 0.05), no_lag, check_seconds=1)
    gate.observe(1_000_000)
    await asyncio.wait_for(gate.turn(), timeout=5)  # returns after 0.05 s, still behind
    assert gate.holding_back
    assert gate.waited_seconds > 0


async def test_the_watch_follows_the_lag_and_opens_when_it_cannot_read_it() -> None:
    readings: asyncio.Queue[int | Exception] = asyncio.Queue()
    taken = asyncio.Event()

    async def read_lag() -> int:
        reading = await readings.get()
        taken.set()
        if isinstance(reading, Exception):
            raise reading
        return reading

    gate = DecisionsFirst(YieldRule(100, 60.0), read_lag, check_seconds=0)
    watching = asyncio.create_task(gate.watch())

    async def after(reading: int | Exception) -> tuple[bool, int | None]:
        taken.clear()
        await readings.put(reading)
        await asyncio.wait_for(taken.wait(), timeout=1)
        await asyncio.sleep(0)  # the watch observes what it read
        return gate.holding_back, gate.decision_lag

    try:
        assert await after(500) == (True, 500)
        assert await after(RuntimeError("broker away")) == (False, None)
        assert await after(150) == (True, 150)
        assert await after(99) == (False, 99)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


async def test_the_sender_claims_no_round_before_its_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    claims = 0
    turn_given = asyncio.Event()

    async def claim_due(*_: object, **__: object) -> list[store.ClaimedEmail]:
        nonlocal claims
        claims += 1
        return []

    async def turn() -> None:
        await turn_given.wait()

    monkeypatch.setattr(store, "claim_due", claim_due)
    settings = NotificationSettings(sender_poll_interval_seconds=0.01)
    sender = Sender(pool=lambda: cast(Pool, object()), settings=settings, topics=Topics(), turn=turn)
    monkeypatch.setattr(sender, "_listen", no_listening)
    await sender.start()
    try:
        await asyncio.sleep(0.1)
        assert claims == 0
        turn_given.set()
        for _ in range(100):
            if claims:
                break
            await asyncio.sleep(0.01)
        assert claims > 0
    finally:
        await sender.stop()


async def no_listening() -> None:
    return None
