"""The transactional outbox and its relay.

Handlers write outbox rows in the transaction that changes their state. One relay per service
leads: the holder of a PostgreSQL session advisory lock, taken on the very session that claims
and marks the rows, so that leadership and the claim live and die together. It claims rows in id
order and publishes each batch in one Kafka transaction, together with a marker on its state
topic (`outbox.<service>.relay-state`) that names its database and the batch's rows. A relay
killed after the Kafka commit but before it marked the rows finds the marker on restart and
marks them instead of publishing them again: every row is published once, in order per key,
across any change of leader (docs/adr/0011-relay-leadership-and-recovery.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
import zlib
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from pydantic import SecretStr

from shared import tracing
from shared.db import Connection, Pool, SessionTimeouts, connect, is_transient
from shared.events import Envelope
from shared.kafka import KafkaSecurity, client_options, retry_concurrent_transactions_sooner
from shared.logging import get_logger
from shared.redaction import safe_error
from shared.topics import Topics

log = get_logger(__name__)
T = TypeVar("T")

NOTIFY_CHANNEL = "outbox"

# One round trip: the rows, and the wake-up of the relay (delivered on commit) if any row is new.
# A data-modifying WITH runs whether or not the outer query reads it.
INSERT_ROWS_AND_NOTIFY = """
WITH inserted AS (
    INSERT INTO outbox (topic, message_key, payload, headers, event_id, event_type)
    SELECT topic, message_key, payload, headers::jsonb, event_id, event_type
    FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[], $5::uuid[], $6::text[])
        AS batch (topic, message_key, payload, headers, event_id, event_type)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
)
SELECT pg_notify('outbox', '') WHERE EXISTS (SELECT FROM inserted)
"""
# No SKIP LOCKED: rows locked by anyone else are waited for (under lock_timeout), never passed,
# so no relay can publish a row ahead of an older one.
CLAIM_BATCH = """
SELECT id, event_id, topic, message_key, payload, headers::text AS headers
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE
"""
MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
)
ROWS_OF_MARKER = "SELECT id, event_id FROM outbox WHERE id = ANY($1::bigint[]) ORDER BY id"
DATABASE_IDENTITY = "SELECT id FROM database_identity"
TRY_LEAD = "SELECT pg_try_advisory_lock($1)"
# Whether this very session still holds the leadership lock (a bigint key shows as two halves).
STILL_LEADING = """
SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
      AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1
)
"""
# For readiness: the oldest row waiting, and when the last row before it was published (rows
# leave in id order, so that is the relay's last progress).
RELAY_PROGRESS = """
WITH oldest AS (
    SELECT id, created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1
)
SELECT
    (SELECT created_at FROM oldest) AS oldest_unpublished_at,
    (SELECT published_at FROM outbox
     WHERE id < (SELECT id FROM oldest) AND published_at IS NOT NULL
     ORDER BY id DESC LIMIT 1) AS last_published_at,
    now() AS now
"""


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class LeadershipLostError(Exception):
    """The session that holds the relay's lock no longer holds it: publish nothing more."""


@dataclass(frozen=True)
class OutboxMessage:
    topic: str
    key: str
    envelope: Envelope[Any]
    # The trace context of the work that caused the message (`traceparent`, `tracestate` pairs),
    # stored with the row so that the relay publishes it as the record's parent (ADR 0015).
    trace_headers: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def headers(self) -> list[list[str]]:
        return [
            ["content-type", "application/json"],
            ["event_type", self.envelope.event_type],
            ["event_id", str(self.envelope.event_id)],
            ["correlation_id", str(self.envelope.effective_correlation_id)],
            *([name, value] for name, value in self.trace_headers),
        ]

    def with_trace(self, pairs: Sequence[Sequence[str]]) -> OutboxMessage:
        """This message carrying the trace header pairs (e.g. `BatchSpans.outbox_headers_for_output`)."""
        if not pairs:
            return self
        return OutboxMessage(
            self.topic, self.key, self.envelope, tuple((name, value) for name, value in pairs)
        )


async def enqueue(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    """Write messages to the outbox in the caller's transaction; the relay wakes on commit."""
    if not messages:
        return
    await conn.execute(
        INSERT_ROWS_AND_NOTIFY,
        [m.topic for m in messages],
        [m.key.encode() for m in messages],
        [m.envelope.model_dump_json().encode() for m in messages],
        [json.dumps(m.headers()) for m in messages],
        [m.envelope.event_id for m in messages],
        [m.envelope.event_type for m in messages],
    )


@dataclass(frozen=True)
class RelayMarker:
    """What a relay writes in the Kafka transaction of a batch: whose rows, which rows."""

    database: uuid.UUID
    ids: tuple[int, ...]
    # Of the rows' (id, event_id) pairs: a database restored to before these rows were written
    # has the same identity and reuses the ids for other rows, which must not be taken as sent.
    digest: str

    def encode(self) -> bytes:
        return json.dumps(
            {"database": str(self.database), "ids": list(self.ids), "digest": self.digest}
        ).encode()


def rows_digest(rows: Sequence[tuple[int, uuid.UUID]]) -> str:
    """A digest of (id, event_id) pairs, in id order."""
    text = "\n".join(f"{row_id}:{event_id}" for row_id, event_id in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()


def parse_marker(value: bytes | None, database: uuid.UUID) -> RelayMarker | None:
    """The marker in a state record, if it is one of this database's; None for any other."""
    if value is None:
        return None
    try:
        fields = json.loads(value)
        marker = RelayMarker(
            uuid.UUID(fields["database"]), tuple(int(i) for i in fields["ids"]), str(fields["digest"])
        )
    except (ValueError, KeyError, TypeError):
        return None  # a marker of an older format, or no marker: it names no database
    return marker if marker.database == database else None


def relay_stalled(
    oldest_unpublished_at: datetime | None,
    last_published_at: datetime | None,
    now: datetime,
    stall_after: timedelta,
) -> bool:
    """True when rows have waited longer than `stall_after` and none left for as long."""
    if oldest_unpublished_at is None or now - oldest_unpublished_at <= stall_after:
        return False
    return last_published_at is None or now - last_published_at > stall_after


async def relay_is_stalled(conn: Connection, stall_after: timedelta) -> bool:
    row = await conn.fetchrow(RELAY_PROGRESS)
    assert row is not None
    return relay_stalled(row["oldest_unpublished_at"], row["last_published_at"], row["now"], stall_after)


def relay_lock_id(service: str) -> int:
    """The key of the advisory lock whose holder leads the service's relays."""
    return zlib.crc32(f"outbox-relay:{service}".encode())


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
        linger: float = 0.0,
        timeouts: SessionTimeouts | None = None,
        database_password: SecretStr | None = None,
        kafka_security: KafkaSecurity | None = None,
    ) -> None:
        self.service = service
        self._state_topic = topics.relay_state(service)
        self._transactional_id = f"{topics.prefix}{service}-outbox-relay"
        self._dsn = dsn
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._linger = linger
        self._timeouts = timeouts or SessionTimeouts()
        self._database_password = database_password
        self._kafka_security = kafka_security
        self._wake = asyncio.Event()
        self._lock_id = relay_lock_id(service)
        self.is_leader = False
        self.published = 0
        self.transactions = 0

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, publish, and start over after any failure."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _being_cancelled():
                    # Cleaning up after the cancellation failed (a rollback on a dead session):
                    # the relay still stops.
                    raise asyncio.CancelledError from exc
                if isinstance(exc, KafkaError | LeadershipLostError) or is_transient(exc):
                    log.warning("outbox relay interrupted", error=safe_error(exc))
                else:
                    # Never end silently: a dead relay would stop this service's events for good.
                    log.error("outbox relay failed, restarting it", error=safe_error(exc), exc_info=exc)
            finally:
                self.is_leader = False
            await asyncio.sleep(self._poll_interval)

    async def _lead(self) -> None:
        # The leader's own session: it holds the lock, claims, publishes and marks. If it dies,
        # its claim dies with it, and the next leader starts from the oldest unpublished row. A
        # stopped leader's session ends once it sits idle (idle_session_timeout) or idle inside
        # a transaction, which frees the lock.
        conn = await connect(
            self._dsn,
            timeouts=self._timeouts,
            idle_session_timeout=max(self._timeouts.idle_in_transaction, 5 * self._poll_interval),
            password=self._database_password,
        )
        try:
            while not await conn.fetchval(TRY_LEAD, self._lock_id):
                await asyncio.sleep(self._poll_interval)
            database: uuid.UUID = await conn.fetchval(DATABASE_IDENTITY)
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
            # start() registers the transactional id: it fences the producer of any earlier
            # leader and completes its open transaction (commits what was committing, aborts the
            # rest), so the recovery below reads a final state topic.
            try:
                await self._keeping_the_session(conn, producer.start())
                self.is_leader = True
                await self._recover(conn, database)
                log.info("outbox relay leading")
                while True:
                    published = await self._publish_batch(conn, producer, database)
                    if published < self._batch_size and await self._wait_for_work(conn) and self._linger:
                        # Woken for new rows: let those that follow soon share their Kafka
                        # transaction, which costs the broker five requests whatever it holds.
                        await asyncio.sleep(self._linger)
            except ProducerFenced:
                log.warning("outbox relay fenced by a newer relay")
            finally:
                await producer.stop()
        finally:
            await conn.close(timeout=2)

    async def _keeping_the_session(self, conn: Connection, operation: Awaitable[T]) -> T:
        """Await a Kafka operation (which may take seconds) while the leader's session confirms
        the lock every poll, so that the idle limit meant for a stopped leader does not end it."""
        task = asyncio.ensure_future(operation)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self._poll_interval)
                if not task.done():
                    await self._confirm_leadership(conn)
            return task.result()
        finally:
            task.cancel()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _wait_for_work(self, conn: Connection) -> bool:
        """Wait for a wake-up, at most a poll interval; True if woken."""
        woken = True
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
        except TimeoutError:
            woken = False
            # Idle: confirm the lock now and then, which also keeps the session from its idle
            # limit. Woken for rows, the batch confirms it before its Kafka commit anyway, and a
            # check here would cost every batch a round trip and a scan of pg_locks.
            await self._confirm_leadership(conn)
        self._wake.clear()
        return woken

    async def _publish_batch(self, conn: Connection, producer: AIOKafkaProducer, database: uuid.UUID) -> int:
        async with conn.transaction():
            rows = await conn.fetch(CLAIM_BATCH, self._batch_size)
            if not rows:
                return 0
            ids = [row["id"] for row in rows]
            marker = RelayMarker(database, tuple(ids), rows_digest([(r["id"], r["event_id"]) for r in rows]))
            async with producer.transaction():
                for row in rows:
                    row_headers = [(name, value.encode()) for name, value in json.loads(row["headers"])]
                    # The span continues the context stored with the row; the record carries the
                    # span's own context, which the next consumer continues.
                    with tracing.publish_span(
                        row["topic"], row_headers, attributes={"messaging.message.id": str(row["event_id"])}
                    ):
                        await producer.send(
                            row["topic"],
                            value=row["payload"],
                            key=row["message_key"],
                            headers=tracing.replace_trace_headers(row_headers),
                        )
                await producer.send(self._state_topic, key=self.service.encode(), value=marker.encode())
                # Still the leader, on the session that holds the claim? Otherwise the Kafka
                # transaction aborts. A leader that loses its session after this check is fenced
                # by its successor's producer, or committed before it (and is then recovered).
                await self._confirm_leadership(conn)
            await self._mark_published(conn, ids)
        self.published += len(ids)
        self.transactions += 1
        return len(ids)

    async def _confirm_leadership(self, conn: Connection) -> None:
        if not await conn.fetchval(STILL_LEADING, self._lock_id):
            raise LeadershipLostError(f"the session no longer holds the lock of the {self.service} relay")

    async def _mark_published(self, conn: Connection, ids: list[int]) -> None:
        await conn.execute(MARK_PUBLISHED, ids)

    async def _recover(self, conn: Connection, database: uuid.UUID) -> None:
        """Mark the rows of our last committed Kafka transaction, in case we died before marking them."""
        marker = await self._keeping_the_session(
            conn,
            last_committed_batch(
                self._bootstrap, self._state_topic, self.service, database, security=self._kafka_security
            ),
        )
        if marker is None:
            return
        rows = await conn.fetch(ROWS_OF_MARKER, list(marker.ids))
        if (
            len(rows) != len(marker.ids)
            or rows_digest([(r["id"], r["event_id"]) for r in rows]) != marker.digest
        ):
            # Same database, other rows: restored to before the marked rows were written.
            log.warning("outbox relay ignores a marker of other rows", rows=len(marker.ids))
            return
        marked = await conn.execute(MARK_PUBLISHED, list(marker.ids))
        log.info("outbox relay recovered last batch", rows=len(marker.ids), result=marked)


async def last_committed_batch(
    bootstrap_servers: str,
    state_topic: str,
    service: str,
    database: uuid.UUID,
    window: int = 200,
    *,
    security: KafkaSecurity | None = None,
) -> RelayMarker | None:
    """This database's last committed marker on the service's state topic, if any.

    Relays of other databases may write there too (a second deployment on the same broker), so
    our last marker may lie further back: the search widens backwards until it finds one, or
    reaches the start of the topic.
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
            marker = await _last_marker_between(
                consumer, partition=partition, service=service, database=database, start=start, stop=stop
            )
            if marker is not None:
                return marker
            stop, window = start, window * 2
        return None
    finally:
        await consumer.stop()


async def _last_marker_between(
    consumer: AIOKafkaConsumer,
    *,
    partition: TopicPartition,
    service: str,
    database: uuid.UUID,
    start: int,
    stop: int,
) -> RelayMarker | None:
    consumer.seek(partition, start)
    found: RelayMarker | None = None
    empty_polls = 0
    # Transaction markers take offsets too, so `stop` may never be "reached" by a record.
    while await consumer.position(partition) < stop and empty_polls < 3:
        batch = await consumer.getmany(partition, timeout_ms=500)
        empty_polls = 0 if batch else empty_polls + 1
        for record in batch.get(partition, []):
            if record.offset < stop and record.key == service.encode():
                found = parse_marker(record.value, database) or found
    return found
