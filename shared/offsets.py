"""Offset commits that do not hold up the next batch (docs/adr/0027-offsets-committed-behind-the-batch.md).

A subscriber's batch is applied in one PostgreSQL transaction, inbox rows included, before its
offsets are committed. FastStream's own acknowledgement awaited that commit, a broker round trip,
before it fetched the next batch: on every hop of the decision path. Here the subscriber hands
the applied records to an `OffsetCommitter`, which commits the next offset of each of their
partitions from a background task, one commit at a time and always the latest, while the
consumer goes on. The offsets are explicit, never the consumer's position, which is already past
a batch still being applied. A commit that never lands (a crash, a rebalance, a broker away)
only redelivers records that were applied, and the inbox drops them.
"""

from __future__ import annotations

import asyncio
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


class _Committing(Protocol):
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


def next_offsets(records: Iterable[_Record]) -> dict[TopicPartition, int]:
    """For each partition of the records, the offset after the last of them."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    return offsets


class OffsetCommitter:
    """The commits of one consumer: the applied offsets are merged, and a single task commits
    the newest of them until none is left."""

    def __init__(self, consumer: _Committing) -> None:
        self._consumer = consumer
        self._pending: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.committed: dict[TopicPartition, int] = {}

    def applied(self, records: Iterable[_Record]) -> None:
        """The records are applied: commit the offsets after them, soon."""
        for partition, offset in next_offsets(records).items():
            self._pending[partition] = max(offset, self._pending.get(partition, 0))
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._commit_pending(), name="offset-commits")

    async def flush(self) -> None:
        """Wait until what was applied so far has been committed (or failed to)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

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


class OffsetCommitters:
    """One committer per consumer object (a subscriber that restarts gets a new consumer)."""

    def __init__(self) -> None:
        self._by_consumer: dict[_Committing, OffsetCommitter] = {}

    def of(self, consumer: _Committing) -> OffsetCommitter:
        committer = self._by_consumer.get(consumer)
        if committer is None:
            committer = self._by_consumer[consumer] = OffsetCommitter(consumer)
        return committer

    async def flush(self) -> None:
        for committer in list(self._by_consumer.values()):
            await committer.flush()
