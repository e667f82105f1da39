"""Offset commits that do not hold up the next batch (docs/adr/0027-offsets-committed-behind-the-batch.md).

A subscriber's batch is applied in one PostgreSQL transaction, inbox rows included, before its
offsets are committed. FastStream's own acknowledgement awaited that commit, a broker round trip,
before it fetched the next batch: on every hop of the decision path. Here the subscriber reads,
right after the batch is applied and before the consumer fetches again, the position of each of
the batch's partitions (what FastStream committed), and hands those offsets to an
`OffsetCommitter`, which commits them from a background task, one commit at a time and always
the newest, while the consumer goes on. A commit that never lands (a crash, a rebalance, a
broker away) only redelivers records that were applied, and the inbox drops them.

After a commit the committer waits `CONSUMER_COMMIT_INTERVAL_MS` before the next one, merging
what is applied meanwhile: at 10 one-record batches a second, one commit per batch was a broker
request and a log append each, for offsets that only bound a redelivery the inbox makes harmless.
The first commit after a quiet spell goes at once, and a flush (shutdown) cuts the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Protocol

from aiokafka import TopicPartition

from shared.logging import get_logger
from shared.redaction import safe_error

log = get_logger(__name__)


class _Record(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class _Consumer(Protocol):
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...
    async def position(self, partition: TopicPartition) -> int: ...


def next_offsets(records: Iterable[_Record]) -> dict[TopicPartition, int]:
    """For each partition of the records, the offset after the last of them."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets


async def applied_offsets(consumer: _Consumer, records: Iterable[_Record]) -> dict[TopicPartition, int]:
    """What to commit for a batch just applied: for each of its partitions, the consumer's
    position, which is past the batch's transaction markers too (an offset after the last record
    would leave each marker counted as lag). Read before the consumer fetches again, the position
    is the batch's end: FastStream fetches the next batch only after the handler returns, and a
    known position is returned without waiting. A partition no longer assigned is left out."""
    offsets = {}
    for partition, after_last in next_offsets(records).items():
        try:
            offsets[partition] = max(after_last, await consumer.position(partition))
        except Exception:
            continue  # taken by a rebalance: its next owner starts from the last commit
    return offsets


class OffsetCommitter:
    """The commits of one consumer: the applied offsets are merged, and a single task commits
    the newest of them until none is left, at most one commit per `interval_seconds`."""

    def __init__(self, consumer: _Consumer, interval_seconds: float = 0.0) -> None:
        self._consumer = consumer
        self._interval_seconds = interval_seconds
        self._pending: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Event()
        self.committed: dict[TopicPartition, int] = {}

    def applied(self, offsets: dict[TopicPartition, int]) -> None:
        """A batch is applied: commit these offsets (`applied_offsets`), soon."""
        for partition, offset in offsets.items():
            self._pending[partition] = max(offset, self._pending.get(partition, 0))
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._commit_pending(), name="offset-commits")

    async def flush(self) -> None:
        """Wait until what was applied so far has been committed (or failed to)."""
        self._flushing.set()
        try:
            while self._task is not None and not self._task.done():
                await asyncio.shield(self._task)
        finally:
            self._flushing.clear()

    async def _commit_pending(self) -> None:
        while self._pending:
            offsets, self._pending = self._pending, {}
            try:
                await self._consumer.commit(offsets)
            except Exception as exc:
                # A rebalance took the partitions, or the consumer is stopping: whoever reads
                # them next starts at the last commit that landed and skips what the inbox knows.
                log.warning("offset commit failed; applied records may be redelivered", error=safe_error(exc))
                continue
            self.committed.update(offsets)
            await self._pause()

    async def _pause(self) -> None:
        if self._interval_seconds > 0 and not self._flushing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushing.wait(), self._interval_seconds)


class OffsetCommitters:
    """One committer per consumer object (a subscriber that restarts gets a new consumer)."""

    def __init__(self, interval_seconds: float = 0.0) -> None:
        self._interval_seconds = interval_seconds
        self._by_consumer: dict[_Consumer, OffsetCommitter] = {}

    def of(self, consumer: _Consumer) -> OffsetCommitter:
        committer = self._by_consumer.get(consumer)
        if committer is None:
            committer = self._by_consumer[consumer] = OffsetCommitter(consumer, self._interval_seconds)
        return committer

    async def flush(self) -> None:
        for committer in list(self._by_consumer.values()):
            await committer.flush()
