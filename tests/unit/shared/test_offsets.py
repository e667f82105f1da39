"""Offsets of applied batches are committed behind the consumer: merged, newest first, never lost
to a failed commit that a later batch can repeat."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from shared.offsets import OffsetCommitter, OffsetCommitters, applied_offsets, next_offsets
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    """Records each commit; a commit waits for `release` when `hold` is set."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.hold = False
        self.release = asyncio.Event()
        self.fail_next = 0
        self.positions: dict[TopicPartition, int] = {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.hold:
            await self.release.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the group has rebalanced")
        self.commits.append(dict(offsets))

    async def position(self, partition: TopicPartition) -> int:
        if partition not in self.positions:
            raise IllegalStateError(f"Partition {partition} is not assigned")
        return self.positions[partition]


A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


def test_the_next_offset_of_each_partition_follows_its_last_record() -> None:
    records = [Record("a", 0, 4), Record("a", 1, 9), Record("a", 0, 7), Record("a", 0, 5)]
    assert next_offsets(records) == {A0: 8, A1: 10}
    assert next_offsets([]) == {}


async def test_a_batch_commits_the_consumers_position_past_its_transaction_markers() -> None:
    consumer = FakeConsumer()
    # Records 0 and 1, then the commit marker at 2: the position is 3, and 3 is committed, so
    # the marker is not counted as lag.
    consumer.positions = {A0: 3, A1: 5}
    batch = [Record("a", 0, 0), Record("a", 0, 1), Record("a", 1, 4)]
    assert await applied_offsets(consumer, batch) == {A0: 3, A1: 5}


async def test_a_partition_taken_by_a_rebalance_is_not_committed() -> None:
    consumer = FakeConsumer()
    consumer.positions = {A1: 8}
    assert await applied_offsets(consumer, [Record("a", 0, 0), Record("a", 1, 7)]) == {A1: 8}


async def test_applied_records_are_committed_in_the_background() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter(consumer)
    committer.applied({A0: 2})
    assert consumer.commits == []  # the caller did not wait for the broker
    await committer.flush()
    assert consumer.commits == [{A0: 2}]
    assert committer.committed == {A0: 2}


async def test_batches_applied_during_a_commit_are_merged_into_the_next_one() -> None:
    consumer = FakeConsumer()
    consumer.hold = True
    committer = OffsetCommitter(consumer)
    committer.applied({A0: 1})
    await asyncio.sleep(0)  # the first commit is in flight
    committer.applied({A0: 2, A1: 4})
    committer.applied({A0: 3})
    consumer.release.set()
    await committer.flush()
    assert consumer.commits == [{A0: 1}, {A0: 3, A1: 4}]


async def test_a_failed_commit_is_logged_and_the_next_batch_commits_past_it() -> None:
    consumer = FakeConsumer()
    consumer.fail_next = 1
    committer = OffsetCommitter(consumer)
    committer.applied({A0: 1})
    await committer.flush()
    assert consumer.commits == [] and committer.committed == {}
    committer.applied({A0: 2})
    await committer.flush()
    assert consumer.commits == [{A0: 2}]


async def test_each_consumer_has_its_own_committer() -> None:
    committers = OffsetCommitters()
    first, second = FakeConsumer(), FakeConsumer()
    assert committers.of(first) is committers.of(first)
    assert committers.of(first) is not committers.of(second)
    committers.of(first).applied({A0: 6})
    committers.of(second).applied({A1: 1})
    await committers.flush()
    assert first.commits == [{A0: 6}] and second.commits == [{A1: 1}]


async def test_flush_survives_being_cancelled_without_cancelling_the_commit() -> None:
    consumer = FakeConsumer()
    consumer.hold = True
    committer = OffsetCommitter(consumer)
    committer.applied({A0: 1})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(committer.flush(), timeout=0.01)
    consumer.release.set()
    await committer.flush()
    assert consumer.commits == [{A0: 1}]


async def test_commits_within_the_interval_wait_and_are_merged() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter(consumer, interval_seconds=60)
    committer.applied({A0: 1})
    await wait_until(
        lambda: consumer.commits == [{A0: 1}], timeout=5, interval=0.001
    )  # after a quiet spell: at once
    committer.applied({A0: 2})
    committer.applied({A0: 3, A1: 1})
    await asyncio.sleep(0.05)
    assert consumer.commits == [{A0: 1}]  # held back for the interval
    await committer.flush()  # a flush does not wait it out
    assert consumer.commits == [{A0: 1}, {A0: 3, A1: 1}]


async def test_what_was_held_back_is_committed_once_the_interval_has_passed() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter(consumer, interval_seconds=0.02)
    committer.applied({A0: 1})
    await wait_until(lambda: len(consumer.commits) == 1, timeout=5, interval=0.001)
    committer.applied({A0: 2})
    await wait_until(lambda: len(consumer.commits) == 2, timeout=5, interval=0.001)
    assert consumer.commits == [{A0: 1}, {A0: 2}]


async def test_after_a_flush_the_interval_applies_again() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter(consumer, interval_seconds=60)
    committer.applied({A0: 1})
    await committer.flush()
    committer.applied({A0: 2})
    await wait_until(lambda: len(consumer.commits) == 2, timeout=5, interval=0.001)
    committer.applied({A0: 3})
    await asyncio.sleep(0.05)
    assert consumer.commits == [{A0: 1}, {A0: 2}]
    await committer.flush()
    assert consumer.commits == [{A0: 1}, {A0: 2}, {A0: 3}]
