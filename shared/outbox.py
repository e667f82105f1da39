"""The transactional outbox and its relay.

Handlers write outbox rows in the transaction that changes their state. One relay per service
(the holder of a PostgreSQL advisory lock) claims rows in id order with FOR UPDATE SKIP LOCKED and
publishes each batch in one Kafka transaction, together with a marker of the batch's row ids on
`outbox.relay-state`. A relay killed after the Kafka commit but before it marked the rows finds the
marker on restart and marks them instead of publishing them again: every row is published once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from pydantic import SecretStr

from shared.db import TRANSIENT_ERRORS, Connection, Pool
from shared.events import ContractModel, Envelope
from shared.kafka import KafkaSecurity, client_options, retry_concurrent_transactions_sooner
from shared.logging import get_logger
from shared.topics import Topics

log = get_logger(__name__)

NOTIFY_CHANNEL = "outbox"

INSERT_ROWS = """
INSERT INTO outbox (topic, message_key, payload, headers, event_id, event_type)
SELECT topic, message_key, payload, headers::jsonb, event_id, event_type
FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::uuid[], $6::text[])
    AS batch (topic, message_key, payload, headers, event_id, event_type)
ON CONFLICT (event_id) DO NOTHING
"""
NOTIFY = "SELECT pg_notify('outbox', '')"
CLAIM_BATCH = """
SELECT id, topic, message_key, payload, headers::text AS headers
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
)


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: str
    envelope: Envelope[Any]

    def headers(self) -> list[list[str]]:
        return [
            ["content-type", "application/json"],
            ["event_type", self.envelope.event_type],
            ["event_id", str(self.envelope.event_id)],
            ["correlation_id", str(self.envelope.effective_correlation_id)],
        ]


def outbox_message(topic: str, key: str, envelope: Envelope[ContractModel]) -> OutboxMessage:
    return OutboxMessage(topic, key, envelope)


async def enqueue(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    """Write messages to the outbox in the caller's transaction; the relay wakes on commit."""
    if not messages:
        return
    await conn.execute(
        INSERT_ROWS,
        [m.topic for m in messages],
        [m.key.encode() for m in messages],
        [m.envelope.model_dump_json().encode() for m in messages],
        [json.dumps(m.headers()) for m in messages],
        [m.envelope.event_id for m in messages],
        [m.envelope.event_type for m in messages],
    )
    await conn.execute(NOTIFY)


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        dsn: str,
        pool: Pool,
        bootstrap_servers: str,
        topics: Topics,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        database_password: SecretStr | None = None,
        kafka_security: KafkaSecurity | None = None,
    ) -> None:
        self.service = service
        self._database_password = database_password
        self._kafka_security = kafka_security
        self._state_topic = topics.outbox_relay_state
        self._transactional_id = f"{topics.prefix}{service}-outbox-relay"
        self._dsn = dsn
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._lock_id = zlib.crc32(f"outbox-relay:{service}".encode())
        self.is_leader = False
        self.published = 0

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, publish, and start over after any failure."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except (*TRANSIENT_ERRORS, KafkaError) as exc:
                log.warning("outbox relay interrupted", error=repr(exc))
            except Exception as exc:
                # Never end silently: a dead relay would stop this service's events for good.
                log.error("outbox relay failed, restarting it", error=repr(exc), exc_info=True)
            finally:
                self.is_leader = False
            await asyncio.sleep(self._poll_interval)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(
            self._dsn,
            password=self._database_password.get_secret_value() if self._database_password else None,
        )
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_id):
                await asyncio.sleep(self._poll_interval)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            retry_concurrent_transactions_sooner()
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                **client_options(self._kafka_security),
                transactional_id=self._transactional_id,
                enable_idempotence=True,
                acks="all",
                # A batch's sends are queued before the sender task runs, and the commit waits
                # for them: a linger would only delay every commit.
                linger_ms=0,
            )
            await producer.start()
            try:
                self.is_leader = True
                await self._recover()
                log.info("outbox relay leading")
                while True:
                    published = await self._publish_batch(producer)
                    if published < self._batch_size:
                        await self._wait_for_work(conn)
            except ProducerFenced:
                log.warning("outbox relay fenced by a newer relay")
            finally:
                await producer.stop()
        finally:
            await conn.close(timeout=2)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self, conn: Connection) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
        self._wake.clear()
        # Also proves the leadership connection (and so the advisory lock) is still alive.
        await conn.fetchval("SELECT 1")

    async def _publish_batch(self, producer: AIOKafkaProducer) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(CLAIM_BATCH, self._batch_size)
            if not rows:
                return 0
            ids = [row["id"] for row in rows]
            async with producer.transaction():
                for row in rows:
                    await producer.send(
                        row["topic"],
                        value=row["payload"],
                        key=row["message_key"],
                        headers=[(name, value.encode()) for name, value in json.loads(row["headers"])],
                    )
                await producer.send(
                    self._state_topic,
                    key=self.service.encode(),
                    value=json.dumps({"ids": ids, "batch": str(uuid.uuid4())}).encode(),
                )
            await self._mark_published(conn, ids)
        self.published += len(ids)
        return len(ids)

    async def _mark_published(self, conn: Connection, ids: list[int]) -> None:
        await conn.execute(MARK_PUBLISHED, ids)

    async def _recover(self) -> None:
        """Mark the rows of our last committed Kafka transaction, in case we died before marking them."""
        ids = await last_committed_batch(
            self._bootstrap, self._state_topic, self.service, security=self._kafka_security
        )
        if ids:
            async with self._pool.acquire() as conn:
                marked = await conn.execute(MARK_PUBLISHED, ids)
            log.info("outbox relay recovered last batch", rows=len(ids), result=marked)


async def last_committed_batch(
    bootstrap_servers: str,
    state_topic: str,
    service: str,
    window: int = 200,
    *,
    security: KafkaSecurity | None = None,
) -> list[int]:
    """The row ids of this service's last committed batch, from the shared state topic.

    The relays of all services write there, so this service's last marker may lie far back (its
    relay was down while the others kept publishing): the search widens backwards until it finds
    one, or reaches the start of the topic.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        **client_options(security),
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        partition = TopicPartition(state_topic, 0)
        consumer.assign([partition])
        begin = (await consumer.beginning_offsets([partition]))[partition]
        stop = (await consumer.end_offsets([partition]))[partition]
        while stop > begin:
            start = max(begin, stop - window)
            ids = await _last_batch_between(consumer, partition, service, start, stop)
            if ids is not None:
                return ids
            stop, window = start, window * 2
        return []
    finally:
        await consumer.stop()


async def _last_batch_between(
    consumer: AIOKafkaConsumer, partition: TopicPartition, service: str, start: int, stop: int
) -> list[int] | None:
    consumer.seek(partition, start)
    ids: list[int] | None = None
    empty_polls = 0
    # Transaction markers take offsets too, so `stop` may never be "reached" by a record.
    while await consumer.position(partition) < stop and empty_polls < 3:
        batch = await consumer.getmany(partition, timeout_ms=500)
        empty_polls = 0 if batch else empty_polls + 1
        for record in batch.get(partition, []):
            if record.offset < stop and record.key == service.encode() and record.value is not None:
                ids = list(json.loads(record.value)["ids"])
    return ids
