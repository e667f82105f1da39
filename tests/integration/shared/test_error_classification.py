"""Errors classified by what they are: a message whose handling fails deterministically is
dead-lettered, whatever raised it (the server or the driver); only a transient failure rewinds the
batch, and a batch retried however often sends each dead letter once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

import shared.consumer
from shared.consumer import BatchConsumer
from shared.db import Pool, create_pool
from shared.events import PORTAL_SEMINAR_EVENTS, Envelope, EventDecoder
from shared.kafka import make_producer
from shared.outbox import OutboxMessage
from shared.topics import Topics
from shared.unit_of_work import PostgresUnitOfWork
from tests.conftest import DatabaseFactory
from tests.integration.shared.outbox_support import migrated
from tests.support.kafka import Record, envelope, header, publish, read_topic

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE applied (seminar_id text PRIMARY KEY);
CREATE TABLE gate (id int PRIMARY KEY);
INSERT INTO gate VALUES (1);
"""


class FaultyApplier:
    """Records each seminar; some seminar ids fail, each in its own way."""

    async def apply_batch(
        self, uow: PostgresUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> list[OutboxMessage]:
        conn = uow.connection
        for event in events:
            seminar = event.data.seminar_id
            if seminar == "ENCODING":  # the driver cannot encode the value: asyncpg's DataError
                await conn.execute("SELECT $1::int", seminar)
            if seminar == "ARGUMENTS":  # the driver refuses the call: a plain InterfaceError
                await conn.execute("SELECT $1::int, $2::int", 1)
            if seminar == "POISON":  # the server: division_by_zero, class 22
                await conn.execute("SELECT 1 / 0")
            if seminar == "GATED":  # waits for a lock that the test holds: lock_not_available
                await conn.execute("SET LOCAL lock_timeout = '50ms'")
                await conn.execute("SELECT id FROM gate FOR UPDATE")
            # DUPLICATE violates the primary key (unique_violation, class 23) on its second insert.
            for _ in range(2 if seminar == "DUPLICATE" else 1):
                await conn.execute("INSERT INTO applied VALUES ($1)", seminar)
        return []


async def consumer_for(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, seminars: list[str | bytes]
) -> tuple[BatchConsumer[PostgresUnitOfWork], Pool, list[Record]]:
    dsn, conn = await migrated(make_database)
    await conn.execute(SCHEMA)
    await conn.close()
    messages: list[tuple[str, dict[str, Any] | bytes]] = []
    for seminar in seminars:
        if isinstance(seminar, bytes):  # breaks the contract; keyed by itself
            messages.append((seminar.decode(), seminar))
        else:
            messages.append((seminar, envelope("seminar.cancelled", {"seminar_id": seminar})))
    await publish(kafka_bootstrap, topics.portal_seminars, messages)
    records = await read_topic(
        kafka_bootstrap, topics.portal_seminars, until=lambda r: len(r) >= len(messages)
    )
    pool = await create_pool(dsn, max_size=3)
    producer = make_producer(kafka_bootstrap, client_id="classification-test")
    await producer.start()
    consumer = BatchConsumer(
        service="registration",
        decoder=EventDecoder(topics.portal_seminars, PORTAL_SEMINAR_EVENTS),
        applier=FaultyApplier(),
        unit_of_work=PostgresUnitOfWork,
        pool=pool,
        dead_letter_producer=producer,
        max_attempts=2,
        retry_base_seconds=0.01,
    )
    return consumer, pool, records


async def applied(pool: Pool) -> list[str]:
    return [row["seminar_id"] for row in await pool.fetch("SELECT seminar_id FROM applied ORDER BY 1")]


async def test_deterministic_errors_of_the_server_and_the_driver_dead_letter_their_message(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were any of them taken for transient, the batch would be rewound after this long.
    monkeypatch.setattr(shared.consumer, "TRANSIENT_GIVE_UP_SECONDS", 0.3)
    consumer, pool, records = await consumer_for(
        kafka_bootstrap, topics, make_database, ["S1", "ENCODING", "ARGUMENTS", "POISON", "DUPLICATE", "S2"]
    )
    try:
        await consumer.process(records)
        assert await applied(pool) == ["S1", "S2"]
        dead = await read_topic(
            kafka_bootstrap, topics.portal_seminars + ".dlq", until=lambda r: len(r) >= 4, settle=1.0
        )
        errors = {r.key: header(r, "x-dlq-error") or "" for r in dead}
        assert sorted(errors) == [b"ARGUMENTS", b"DUPLICATE", b"ENCODING", b"POISON"]
        assert "InterfaceError" in errors[b"ARGUMENTS"]
        assert "DataError" in errors[b"ENCODING"]
        assert "UniqueViolationError (23505)" in errors[b"DUPLICATE"]
        assert "DivisionByZeroError (22012)" in errors[b"POISON"]
    finally:
        await consumer._producer.stop()
        await pool.close()


async def test_a_batch_retried_after_transient_failures_sends_each_dead_letter_once(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared.consumer, "TRANSIENT_GIVE_UP_SECONDS", 0.3)
    consumer, pool, records = await consumer_for(
        kafka_bootstrap, topics, make_database, [b"{broken", "POISON", "GATED"]
    )
    holder = await pool.acquire()
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT id FROM gate FOR UPDATE")
        for _ in range(2):  # rewound twice: redelivered as the same records
            with pytest.raises(asyncpg.LockNotAvailableError):
                await consumer.process(records)
        await transaction.rollback()
        await consumer.process(records)
        assert await applied(pool) == ["GATED"]
        dead = await read_topic(
            kafka_bootstrap, topics.portal_seminars + ".dlq", until=lambda r: len(r) >= 2, settle=2.0
        )
        assert sorted(r.key for r in dead) == [b"POISON", b"{broken"]
    finally:
        await pool.release(holder)
        await consumer._producer.stop()
        await pool.close()
