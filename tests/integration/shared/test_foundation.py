"""The foundation against the real broker and database: round trip, outbox, inbox, migrations."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.consumer import BatchConsumer
from shared.db import Connection
from shared.events import PORTAL_SEMINAR_EVENTS, Envelope, EventDecoder, SeminarCancelled
from shared.inbox import claim_new_events
from shared.kafka import make_producer
from shared.migrations import SHARED_MIGRATIONS, MigrationError, apply_migrations
from shared.outbox import OutboxMessage, OutboxRelay
from shared.topics import Topics
from shared.unit_of_work import PostgresUnitOfWork
from tests.conftest import DatabaseFactory
from tests.integration.shared.outbox_support import REPO, assert_exactly_once_in_order, migrated, write_outbox
from tests.support.kafka import envelope, header, publish, read_topic

pytestmark = pytest.mark.integration


async def test_round_trip_through_kafka(kafka_bootstrap: str, topics: Topics) -> None:
    message = envelope("seminar.cancelled", {"seminar_id": "NSI-1"})
    await publish(kafka_bootstrap, topics.portal_seminars, [("NSI-1", message)])
    records = await read_topic(kafka_bootstrap, topics.portal_seminars, until=lambda r: len(r) >= 1)
    assert records[0].key == b"NSI-1"
    decoded = EventDecoder(topics.portal_seminars, PORTAL_SEMINAR_EVENTS).decode(records[0].value)
    assert str(decoded.event_id) == message["event_id"]
    assert decoded.data == SeminarCancelled(seminar_id="NSI-1")


async def test_outbox_relay_publishes_each_row_once_across_sigkill(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory
) -> None:
    dsn, conn = await migrated(make_database)
    target = topics.notification_events
    event_ids = await write_outbox(conn, target, 3000, keys=12)
    command = [sys.executable, "-m", "tests.support.relay_process", dsn, kafka_bootstrap, topics.prefix, "50"]
    kills = 0
    while True:
        relay = subprocess.Popen(command, cwd=REPO, env=os.environ.copy())  # noqa: ASYNC220 - killed, not awaited
        try:
            # Kill it while it is somewhere in the middle of the stream, twice; then let it finish.
            published_before = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
            )
            while kills < 2:
                await asyncio.sleep(0.05)
                done = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                if done > published_before + 200:
                    relay.send_signal(signal.SIGKILL)
                    relay.wait()
                    kills += 1
                    break
            if relay.poll() is not None:
                continue
            for _ in range(600):
                if not await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
                    break
                await asyncio.sleep(0.1)
            break
        finally:
            if relay.poll() is None:
                relay.terminate()
                relay.wait(timeout=10)
    assert kills == 2
    records = await read_topic(kafka_bootstrap, target, until=lambda r: len(r) >= 3000, settle=2.0)
    assert_exactly_once_in_order(records, event_ids)
    await conn.close()


class CrashAfterKafkaCommit(OutboxRelay):
    """Dies in the window between the Kafka commit and marking the rows in PostgreSQL."""

    async def _mark_published(self, conn: Connection, ids: list[int]) -> None:
        raise asyncpg.PostgresConnectionError("simulated crash after the Kafka commit")


async def test_relay_recovers_a_batch_committed_to_kafka_but_not_marked(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory
) -> None:
    dsn, conn = await migrated(make_database)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    event_ids = await write_outbox(conn, topics.notification_events, 20, keys=3)
    common = dict(
        service="registration", dsn=dsn, pool=pool, bootstrap_servers=kafka_bootstrap, topics=topics
    )
    crashing = CrashAfterKafkaCommit(**common, batch_size=100, poll_interval=0.1)  # type: ignore[arg-type]
    task = asyncio.create_task(crashing.run())
    records = await read_topic(kafka_bootstrap, topics.notification_events, until=lambda r: len(r) >= 20)
    task.cancel()
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 20
    healthy = OutboxRelay(**common, batch_size=100, poll_interval=0.1)  # type: ignore[arg-type]
    task = asyncio.create_task(healthy.run())
    for _ in range(100):
        if not await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
            break
        await asyncio.sleep(0.1)
    task.cancel()
    records = await read_topic(
        kafka_bootstrap, topics.notification_events, until=lambda r: len(r) >= 20, settle=1.5
    )
    assert_exactly_once_in_order(records, event_ids)
    assert healthy.published == 0, "the recovered batch was marked, not sent again"
    await pool.close()
    await conn.close()


async def test_inbox_drops_a_redelivered_event(make_database: DatabaseFactory) -> None:
    _, conn = await migrated(make_database)
    first, second = uuid.uuid4(), uuid.uuid4()
    async with conn.transaction():
        assert await claim_new_events(conn, "t", [first]) == {first}
    async with conn.transaction():
        assert await claim_new_events(conn, "t", [first, second, second]) == {second}
    # A rolled-back claim is forgotten: the event will be processed when it comes again.
    third = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await claim_new_events(conn, "t", [third])
            raise RuntimeError("handler failed")
    async with conn.transaction():
        assert await claim_new_events(conn, "t", [third]) == {third}
    await conn.close()


class RecordingApplier:
    def __init__(self) -> None:
        self.applied: list[str] = []

    async def apply_batch(
        self, uow: PostgresUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> list[OutboxMessage]:
        self.applied.extend(str(event.event_id) for event in events)
        return []


async def test_batch_consumer_skips_redelivered_events_and_dead_letters_bad_ones(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory
) -> None:
    dsn, conn = await migrated(make_database)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = make_producer(kafka_bootstrap, client_id="test")
    await producer.start()
    good = envelope("seminar.cancelled", {"seminar_id": "S1"})
    await publish(
        kafka_bootstrap,
        topics.portal_seminars,
        [("S1", good), ("S2", b"{broken"), ("S1", good)],
    )
    records = await read_topic(kafka_bootstrap, topics.portal_seminars, until=lambda r: len(r) >= 3)
    applier = RecordingApplier()
    consumer = BatchConsumer(
        service="relaytest",
        decoder=EventDecoder(topics.portal_seminars, PORTAL_SEMINAR_EVENTS),
        applier=applier,
        unit_of_work=PostgresUnitOfWork,
        pool=pool,
        dead_letter_producer=producer,
    )
    await consumer.process(records)
    await consumer.process(records)  # the whole batch redelivered
    assert applier.applied == [good["event_id"]]
    dead = await read_topic(
        kafka_bootstrap, topics.portal_seminars + ".dlq", until=lambda r: len(r) >= 1, settle=1.5
    )
    assert [r.value for r in dead] == [b"{broken"], "dead-lettered once, however often redelivered"
    assert dead[0].key == b"S2"
    assert header(dead[0], "x-dlq-source-topic") == topics.portal_seminars
    assert header(dead[0], "x-dlq-service") == "relaytest"
    assert "not a valid envelope" in (header(dead[0], "x-dlq-error") or "")
    broken = next(r for r in records if r.value == b"{broken")
    assert header(dead[0], "x-dlq-source-offset") == str(broken.offset)
    assert header(dead[0], "x-dlq-source-partition") == str(broken.partition)
    await producer.stop()
    await pool.close()
    await conn.close()


async def schema_of(conn: Connection) -> str:
    rows = await conn.fetch(
        """
        SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL
        SELECT tablename, indexname, indexdef, '', '' FROM pg_indexes WHERE schemaname = 'public'
        ORDER BY 1, 2
        """
    )
    return json.dumps([list(r) for r in rows])


async def test_migrations_applied_twice_change_nothing(
    make_database: DatabaseFactory, tmp_path: Path
) -> None:
    dsn = await make_database("registration")
    conn = await asyncpg.connect(dsn)
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    first = await apply_migrations(conn, tmp_path, "svc")
    shared = sorted(SHARED_MIGRATIONS.glob("*.sql"))
    assert [(m.namespace, m.version) for m in first] == [
        *(("shared", version) for version in range(1, len(shared) + 1)),
        ("svc", 1),
    ]
    before = await schema_of(conn)
    assert await apply_migrations(conn, tmp_path, "svc") == []
    assert await schema_of(conn) == before
    assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(shared) + 1
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(conn, tmp_path, "svc")
    await conn.close()
