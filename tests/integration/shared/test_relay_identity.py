"""Relay markers bound to their database: a relay never takes the marker of another database, or
of an earlier life of its own database, as a record of its rows. Both reuse the same outbox ids."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.db import Connection, Pool, create_pool
from shared.outbox import OutboxRelay
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.integration.shared.outbox_support import migrated, until_all_published, write_outbox
from tests.support.kafka import header, read_topic

pytestmark = pytest.mark.integration

ROWS = 20


def make_relay(
    dsn: str, pool: Pool, kafka_bootstrap: str, topics: Topics, linger: float = 0.0
) -> OutboxRelay:
    return OutboxRelay(
        service="registration",
        dsn=dsn,
        pool=pool,
        bootstrap_servers=kafka_bootstrap,
        topics=topics,
        batch_size=100,
        poll_interval=0.1,
        linger=linger,
    )


async def relay_until_published(dsn: str, conn: Connection, kafka_bootstrap: str, topics: Topics) -> int:
    """Runs one relay of the service `relaytest` until its outbox is empty; returns what it sent."""
    pool = await create_pool(dsn, max_size=3)
    relay = make_relay(dsn, pool, kafka_bootstrap, topics)
    task = asyncio.create_task(relay.run())
    try:
        await until_all_published(conn)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
    return relay.published


@pytest.mark.parametrize("identity", ["another-database", "restored-copy"])
async def test_a_marker_of_other_rows_with_the_same_ids_does_not_mark_them(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, identity: str
) -> None:
    first_dsn, first = await migrated(make_database)
    target = topics.notification_events
    first_events = await write_outbox(first, target, ROWS, keys=3)
    assert await relay_until_published(first_dsn, first, kafka_bootstrap, topics) == ROWS

    # The same service's outbox with the same ids but other rows: a second deployment on the same
    # broker, or a restore of the first database taken before these rows were written.
    second_dsn, second = await migrated(make_database)
    if identity == "restored-copy":
        await second.execute(
            "UPDATE database_identity SET id = $1", await first.fetchval("SELECT id FROM database_identity")
        )
    second_events = await write_outbox(second, target, ROWS, keys=3)
    assert await second.fetchval("SELECT max(id) FROM outbox") == ROWS

    assert await relay_until_published(second_dsn, second, kafka_bootstrap, topics) == ROWS
    records = await read_topic(kafka_bootstrap, target, until=lambda r: len(r) >= 2 * ROWS, settle=1.0)
    assert sorted(header(r, "event_id") or "" for r in records) == sorted(first_events + second_events)
    await first.close()
    await second.close()


async def test_rows_committed_within_the_linger_share_one_kafka_transaction(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory
) -> None:
    """OUTBOX_LINGER_MS: woken for a row, the relay waits that long before it claims, so rows that
    follow soon leave in the same Kafka transaction (notification's relay lingers 250 ms)."""
    dsn, conn = await migrated(make_database)
    pool = await create_pool(dsn, max_size=3)
    relay = make_relay(dsn, pool, kafka_bootstrap, topics, linger=2.0)
    task = asyncio.create_task(relay.run())
    try:
        first = await write_outbox(conn, topics.notification_events, 1, keys=1)
        await until_all_published(conn)
        assert relay.transactions == 1
        # Two units of work, one after the other: the first wakes the relay, the second commits
        # while it lingers.
        later = await write_outbox(conn, topics.notification_events, 1, keys=1)
        later += await write_outbox(conn, topics.notification_events, 1, keys=1)
        await until_all_published(conn)
        assert relay.published == 3
        assert relay.transactions == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
    records = await read_topic(kafka_bootstrap, topics.notification_events, until=lambda got: len(got) >= 3)
    published = [header(r, "event_id") or "" for r in records]
    assert sorted(published) == sorted(first + later)
