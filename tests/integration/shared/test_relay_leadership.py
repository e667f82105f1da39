"""A relay that loses its leadership in the middle of a batch: the next leader publishes every
row once, and in order per key, whether the old leader notices before its Kafka commit or not."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.db import Connection, SessionTimeouts, create_pool
from shared.outbox import OutboxRelay
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.integration.shared.outbox_support import (
    assert_exactly_once_in_order,
    migrated,
    until_all_published,
    write_outbox,
)
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

ROWS, BATCH = 60, 20
ADVISORY_HOLDER = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class PausesInItsFirstBatch(OutboxRelay):
    """Stops inside its first Kafka transaction, with the batch sent but not committed, until
    the test lets it go on: before it confirms its leadership, or after."""

    def __init__(self, *, pause_after_confirming: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.pause_after_confirming = pause_after_confirming
        self.paused = asyncio.Event()
        self.resume = asyncio.Event()

    async def _confirm_leadership(self, conn: Connection) -> None:
        if self.pause_after_confirming:
            await super()._confirm_leadership(conn)
        if not self.paused.is_set():
            self.paused.set()
            await self.resume.wait()
        if not self.pause_after_confirming:
            await super()._confirm_leadership(conn)


@pytest.mark.parametrize("pause_after_confirming", [False, True], ids=["before-check", "after-check"])
async def test_a_leader_whose_lock_session_dies_mid_batch_is_followed_in_order(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, pause_after_confirming: bool
) -> None:
    dsn, conn = await migrated(make_database)
    target = topics.notification_events
    event_ids = await write_outbox(conn, target, ROWS, keys=4)
    pools = [await create_pool(dsn, max_size=3) for _ in range(2)]
    common = dict(service="registration", dsn=dsn, bootstrap_servers=kafka_bootstrap, topics=topics)
    old = PausesInItsFirstBatch(
        pause_after_confirming=pause_after_confirming,
        pool=pools[0],
        batch_size=BATCH,
        poll_interval=0.1,
        **common,
    )
    new = OutboxRelay(pool=pools[1], batch_size=BATCH, poll_interval=0.1, **common)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(old.run())]
    try:
        await asyncio.wait_for(old.paused.wait(), timeout=30)
        tasks.append(asyncio.create_task(new.run()))
        holder = await conn.fetchval(ADVISORY_HOLDER)
        assert holder is not None, "the paused relay leads"
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", holder)
        for _ in range(300):
            if new.published:
                break
            await asyncio.sleep(0.1)
        assert new.published, "the second relay took over"
        old.resume.set()
        await until_all_published(conn)
        records = await read_topic(kafka_bootstrap, target, until=lambda r: len(r) >= ROWS, settle=2.0)
        assert_exactly_once_in_order(records, event_ids)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in pools:
            await pool.close()
        await conn.close()


class StopsForGood(OutboxRelay):
    """A leader that stops (a paused process) after its first batch is sent to Kafka, before its
    commit; or between batches, after its first batch."""

    def __init__(self, *, inside_the_claim: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.inside_the_claim = inside_the_claim
        self.stopped = asyncio.Event()

    async def _confirm_leadership(self, conn: Connection) -> None:
        if self.inside_the_claim:
            await self._stop_for_good()
        await super()._confirm_leadership(conn)

    async def _wait_for_work(self, conn: Connection) -> bool:
        await self._stop_for_good()
        return False

    async def _stop_for_good(self) -> None:
        self.stopped.set()
        await asyncio.Event().wait()


@pytest.mark.parametrize("inside_the_claim", [True, False], ids=["inside-the-claim", "between-batches"])
async def test_a_stopped_leader_loses_its_lock_and_the_next_publishes_in_order(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, inside_the_claim: bool
) -> None:
    dsn, conn = await migrated(make_database)
    target = topics.notification_events
    event_ids = await write_outbox(conn, target, BATCH // 2, keys=4)
    pools = [await create_pool(dsn, max_size=3) for _ in range(2)]
    # A short idle limit, so that the server ends the stopped leader's session soon.
    common = dict(
        service="registration",
        dsn=dsn,
        bootstrap_servers=kafka_bootstrap,
        topics=topics,
        batch_size=BATCH,
        poll_interval=0.1,
        timeouts=SessionTimeouts(lock_timeout=5.0, statement_timeout=10.0, idle_in_transaction=1.0),
    )
    stopped = StopsForGood(inside_the_claim=inside_the_claim, pool=pools[0], **common)
    new = OutboxRelay(pool=pools[1], **common)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(stopped.run())]
    try:
        await asyncio.wait_for(stopped.stopped.wait(), timeout=30)
        tasks.append(asyncio.create_task(new.run()))
        event_ids += await write_outbox(conn, target, ROWS, keys=4)  # written while it is stopped
        await until_all_published(conn)
        assert new.is_leader
        records = await read_topic(
            kafka_bootstrap, target, until=lambda r: len(r) >= len(event_ids), settle=2.0
        )
        assert_exactly_once_in_order(records, event_ids)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in pools:
            await pool.close()
        await conn.close()
