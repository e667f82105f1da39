"""Offsets of applied batches are committed behind the consumer: merged, newest first, never lost
to a failed commit that a later batch can repeat."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition

from shared.offsets import OffsetCommitter, OffsetCommitters, next_offsets


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

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.hold:
            await self.release.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the group has rebalanced")
        self.commits.append(dict(offsets))


A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


def test_the_next_offset_of_each_partition_follows_its_last_record() -> None:
    records = [Record("a", 0, 4), Record("a", 1, 9), Record("a", 0, 7), Record("a", 0, 5)]
    assert next_offsets(records) == {A0: 8, A1: 10}
    assert next_offsets([]) == {}


async def test_applied_records_are_committed_in_the_background() -> None:
    consumer = FakeConsumer()
    committer = OffsetCommitter(consumer)
    committer.applied([Record("a", 0, 0), Record("a", 0, 1)])
    assert consumer.commits == []  # the caller did not wait for the broker
    await committer.flush()
    assert consumer.commits == [{A0: 2}]
    assert committer.committed == {A0: 2}


async def test_batches_applied_during_a_commit_are_merged_into_the_next_one() -> None:
    consumer = FakeConsumer()
    consumer.hold = True
    committer = OffsetCommitter(consumer)
    committer.applied([Record("a", 0, 0)])
    await asyncio.sleep(0)  # the first commit is in flight
    committer.applied([Record("a", 0, 1), Record("a", 1, 3)])
    committer.applied([Record("a", 0, 2)])
    consumer.release.set()
    await committer.flush()
    assert consumer.commits == [{A0: 1}, {A0: 3, A1: 4}]


async def test_a_failed_commit_is_logged_and_the_next_batch_commits_past_it() -> None:
    consumer = FakeConsumer()
    consumer.fail_next = 1
    committer = OffsetCommitter(consumer)
    committer.applied([Record("a", 0, 0)])
    await committer.flush()
    assert consumer.commits == [] and committer.committed == {}
    committer.applied([Record("a", 0, 1)])
    await committer.flush()
    assert consumer.commits == [{A0: 2}]


async def test_each_consumer_has_its_own_committer() -> None:
    committers = OffsetCommitters()
    first, second = FakeConsumer(), FakeConsumer()
    assert committers.of(first) is committers.of(first)
    assert committers.of(first) is not committers.of(second)
    committers.of(first).applied([Record("a", 0, 5)])
    committers.of(second).applied([Record("a", 1, 0)])
    await committers.flush()
    assert first.commits == [{A0: 6}] and second.commits == [{A1: 1}]


async def test_flush_survives_being_cancelled_without_cancelling_the_commit() -> None:
    consumer = FakeConsumer()
    consumer.hold = True
    committer = OffsetCommitter(consumer)
    committer.applied([Record("a", 0, 0)])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(committer.flush(), timeout=0.01)
    consumer.release.set()
    await committer.flush()
    assert consumer.commits == [{A0: 1}]
