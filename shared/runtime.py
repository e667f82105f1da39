"""The life of one service process: pool, migrations, broker, outbox relay, health endpoint.

Each service builds a `ServiceRuntime`, registers its consumers on its KafkaRouter, and runs
`runtime.app`, a FastStream application.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from faststream import ContextRepo, FastStream
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.message import KafkaMessage
from faststream.message import StreamMessage
from faststream.types import DecodedMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from pydantic import WithJsonSchema

from shared import metrics, tracing
from shared.consumer import BatchConsumer
from shared.db import Pool, create_pool, retry_transient, session_timeouts, without_timeouts
from shared.events import ContractModel, EventDecoder, topic_json_schema
from shared.health import HealthServer
from shared.kafka import SUBSCRIBER_ACK_POLICY, KafkaSecurity, make_broker, make_producer
from shared.logging import configure_logging, get_logger
from shared.migrations import apply_migrations
from shared.offsets import OffsetCommitters, applied_offsets
from shared.outbox import OutboxRelay, relay_is_stalled
from shared.redaction import safe_error
from shared.settings import CommonSettings
from shared.topics import Topics
from shared.unit_of_work import BatchApplier, UnitOfWorkFactory, UnitOfWorkT

log = get_logger(__name__)


class ServiceRuntime:
    def __init__(
        self,
        *,
        name: str,
        settings: CommonSettings,
        database_url: str,
        http_port: int,
        migrations: Path,
    ) -> None:
        self.name = name
        self.settings = settings
        self.database_url = database_url
        self.http_port = http_port
        self.migrations = migrations
        self.topics = Topics(settings.kafka_topic_prefix)
        self.group_id = settings.kafka_topic_prefix + name
        self.kafka_security = KafkaSecurity.from_settings(settings)
        self.broker: KafkaBroker = make_broker(
            settings.kafka_bootstrap_servers, client_id=name, security=self.kafka_security, service=name
        )
        self.router = KafkaRouter()
        self.app = FastStream(self.broker)
        self.app.on_startup(self._start)
        self.app.on_shutdown(self._flush_commits)
        self.app.after_shutdown(self._stop)
        self._commits = OffsetCommitters(settings.consumer_commit_interval_ms / 1000)
        self._pool: Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumers: dict[str, BatchConsumer[Any]] = {}
        self._appliers: dict[str, tuple[EventDecoder, BatchApplier[Any], UnitOfWorkFactory[Any]]] = {}
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._health: HealthServer | None = None
        self._observability = Observability(self)

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the service has not started")
        return self._pool

    def consume(
        self,
        topic: str,
        event_models: dict[str, type[ContractModel]],
        applier: BatchApplier[UnitOfWorkT],
        unit_of_work: UnitOfWorkFactory[UnitOfWorkT],
        *,
        title: str | None = None,
        description: str | None = None,
        before_batch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Subscribe the applier to a topic, in batches, with the service's consumer group; each
        batch is applied in one unit of work made with the service's pool. `before_batch` is
        awaited before each batch's unit of work begins (notification: its turn after the
        decisions)."""
        decoder = EventDecoder(topic, event_models)
        self._appliers[topic] = (decoder, applier, unit_of_work)

        async def handle_batch(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
            if before_batch is not None:
                await before_batch()
            await self._consumers[topic].process(records)

        schema = topic_json_schema(topic.removeprefix(self.topics.prefix), event_models)
        self.router.subscriber(
            topic,
            group_id=self.group_id,
            batch=True,
            ack_policy=SUBSCRIBER_ACK_POLICY,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            group_instance_id=self._group_instance_id(topic),
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            max_records=self.settings.consumer_max_records,
            batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
            decoder=_values_undecoded,
            title=title or f"{self.name}:{topic}",
            description=description,
        )(
            _raw_records_handler(
                handle_batch, self._commits, schema, f"{self.name}_{topic}", self.broker.context
            )
        )

    def every(self, seconds: float, sample: Callable[[], Awaitable[object]], *, name: str) -> None:
        """Run `sample` every `seconds` from after start-up (the pool exists) until stop; a
        transient database error only skips a round (`metrics.sample_periodically`)."""
        self._observability.periodic.append((name, seconds, sample))

    async def refeed(self, topic: str, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Feed records through this service's consumer of `topic`, as if they had just arrived
        (a dead-letter replay, shared.replay)."""
        await self._consumers[topic].process(records)

    def _group_instance_id(self, topic: str) -> str | None:
        """The static member id of this instance's consumer of a topic: one per consumer, as each
        subscriber is its own member of the service's group (docs/adr/0017)."""
        instance = self.settings.service_instance
        return None if instance is None else f"{self.name}-{instance}-{topic}"

    def publishes(self, topic: str, event_models: dict[str, type[ContractModel]], description: str) -> None:
        """Declare what the outbox relay publishes to a topic, for the AsyncAPI document."""
        schema = topic_json_schema(topic.removeprefix(self.topics.prefix), event_models)
        self.router.publisher(
            topic,
            title=f"{self.name}:{topic}",
            description=description,
            schema=Annotated[dict[str, Any], WithJsonSchema(schema)],
        )

    def finish_setup(self) -> FastStream:
        self.broker.include_router(self.router)
        return self.app

    async def _start(self) -> None:
        configure_logging(self.name, self.settings.log_level, self.settings.log_format)
        self._observability.start_tracing()
        pool = await retry_transient(
            lambda: create_pool(
                self.database_url,
                max_size=self.settings.db_pool_max_size,
                timeouts=session_timeouts(self.settings),
                password=self.settings.database_password,
            ),
            give_up_after=60,
        )
        self._pool = pool
        # A migration may rewrite a large table, and waits for the instance that migrates first:
        # neither is a stuck session.
        async with pool.acquire() as conn, without_timeouts(conn):
            applied = await apply_migrations(conn, self.migrations, self.name)
        log.info("migrations applied", count=len(applied))
        self._producer = make_producer(
            self.settings.kafka_bootstrap_servers, client_id=f"{self.name}-dlq", security=self.kafka_security
        )
        await self._producer.start()
        for topic, (decoder, applier, unit_of_work) in self._appliers.items():
            self._consumers[topic] = BatchConsumer(
                service=self.name,
                decoder=decoder,
                applier=applier,
                unit_of_work=unit_of_work,
                pool=self._pool,
                dead_letter_producer=self._producer,
                max_attempts=self.settings.handler_max_attempts,
                retry_base_seconds=self.settings.handler_retry_base_seconds,
            )
        self._relay = OutboxRelay(
            service=self.name,
            dsn=self.database_url,
            pool=self._pool,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            database_password=self.settings.database_password,
            kafka_security=self.kafka_security,
            topics=self.topics,
            batch_size=self.settings.outbox_batch_size,
            poll_interval=self.settings.outbox_poll_interval_seconds,
            linger=self.settings.outbox_linger_ms / 1000,
            timeouts=session_timeouts(self.settings),
        )
        self._relay_task = asyncio.create_task(self._relay.run(), name=f"{self.name}-outbox-relay")
        self._health = HealthServer(self.settings.http_host, self.http_port, self.health)
        await self._health.start()
        self._observability.start_sampling()
        log.info("service started")

    async def _flush_commits(self) -> None:
        # Before the broker stops its consumers: the offsets of applied batches, so that a
        # restart redelivers as little as it can.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._commits.flush(), timeout=5)

    async def _stop(self) -> None:
        await self._observability.stop_sampling()
        if self._health is not None:
            await self._health.stop()
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self._producer is not None:
            await self._producer.stop()
        if self._pool is not None:
            await self._pool.close()
        self._observability.stop_tracing()
        log.info("service stopped")

    async def health(self) -> dict[str, bool]:
        """Readiness: the broker and the database answer, and no consumer and not the relay
        has had work for `READINESS_STALL_SECONDS` without progress."""
        stall_after = self.settings.readiness_stall_seconds
        checks = {"database": False, "kafka": False}
        relay_stalled = True
        try:
            async with asyncio.timeout(2), self.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                checks["database"] = True
                # Judged from the outbox, not from this instance: the leader may be another.
                relay_stalled = await relay_is_stalled(conn, timedelta(seconds=stall_after))
        except Exception:
            log.warning("health: database unreachable")
        with contextlib.suppress(Exception):
            checks["kafka"] = await self.broker.ping(timeout=2)
        for topic, consumer in self._consumers.items():
            checks[f"consumer:{topic}"] = not consumer.progress.stalled(stall_after)
        relay_running = self._relay_task is not None and not self._relay_task.done()
        checks["outbox_relay"] = relay_running and not relay_stalled
        metrics.record_readiness(self.name, checks)
        return checks


class Observability:
    """A runtime's tracer provider and metric samplers (ADR 0015): the outbox backlog, the lag of
    every subscriber's partitions, and what a service adds with `ServiceRuntime.every`."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self._runtime = runtime
        self.periodic: list[tuple[str, float, Callable[[], Awaitable[object]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._provider: SdkTracerProvider | None = None

    def start_tracing(self) -> None:
        # The provider is the process's: a second runtime in one process (tests) keeps the first's.
        if not isinstance(trace.get_tracer_provider(), SdkTracerProvider):
            self._provider = tracing.configure_tracing(self._runtime.name)

    def stop_tracing(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # flushes the last spans

    def start_sampling(self) -> None:
        runtime = self._runtime
        metrics.init_dead_letters(runtime.name, runtime._appliers)
        metrics.init_events(runtime.name, runtime._appliers)
        interval = metrics.SAMPLE_INTERVAL_SECONDS
        samplers: list[tuple[str, float, Callable[[], Awaitable[object]]]] = [
            (
                "outbox backlog",
                interval,
                metrics.OutboxBacklogProbe(runtime.name, self._query_backlog).sample,
            ),
            ("consumer lag", interval, self._sample_lag),
            # Also when nobody asks /readyz, so that the gauge (and its alert) stays current.
            ("readiness", interval, runtime.health),
            *self.periodic,
        ]
        for name, seconds, sample in samplers:
            self._tasks.append(
                asyncio.create_task(
                    metrics.sample_periodically(name, sample, interval_seconds=seconds),
                    name=f"{runtime.name}-metrics-{name}",
                )
            )

    async def stop_sampling(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _query_backlog(self) -> metrics.OutboxBacklog:
        async with self._runtime.pool.acquire() as conn:
            return await metrics.query_outbox_backlog(conn)

    async def _sample_lag(self) -> None:
        runtime = self._runtime
        for subscriber in runtime.broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:  # not started yet, or stopping
                continue
            topics = [topic.name for topic in getattr(subscriber, "topics", ())]
            group = getattr(subscriber, "group_id", None) or runtime.group_id
            try:
                await metrics.sample_consumer_lag(consumer, group, topics)
            except KafkaError as exc:  # a broker that is away only delays the figure
                log.warning("metrics sample failed", probe="consumer lag", error=safe_error(exc))


async def _values_undecoded(message: StreamMessage[Any]) -> DecodedMessage:
    """A batch's body as the records' bytes: the handler decodes them itself (EventDecoder), so
    FastStream's JSON decoding of every record (about 23 µs each) would be thrown away."""
    body: DecodedMessage = message.body
    return body


def _raw_records_handler(
    process: Any, commits: OffsetCommitters, schema: dict[str, Any], name: str, context: ContextRepo
) -> Any:
    """A FastStream handler that hands the batch's raw records to our own decoder, and then
    commits their offsets itself (shared.offsets), so the next batch need not wait for that.

    Decoding stays ours so that a message that breaks the contract is dead-lettered with its
    original bytes, instead of failing inside the framework. The body parameter is typed `Any`
    for that reason; its JSON schema documents the contract in the AsyncAPI document.

    The message is read from the broker's context, not asked for as a `KafkaMessage` parameter:
    FastDepends resolves such a context field by a synchronous call, which it runs in a worker
    thread, one thread hand-off per batch (3-5 % of a service's CPU at 100 registrations/s,
    py-spy).
    """

    async def handler(body: Any) -> None:
        message: KafkaMessage | None = context.get_local("message")
        if message is None:
            raise RuntimeError(f"{name}: FastStream's context holds no message")
        records: Sequence[ConsumerRecord[bytes, bytes]] = message.raw_message
        try:
            await process(records)
        except Exception:
            # The retries are spent: rewind each partition to the batch's first record, so the
            # batch comes again and nothing after it is committed (FastStream's nack).
            await message.nack()
            raise
        consumer = message.consumer
        if isinstance(consumer, AIOKafkaConsumer):
            commits.of(consumer).applied(await applied_offsets(consumer, records))
        else:  # FastStream's in-memory test consumer commits nothing anyway
            await message.ack()

    # Real objects, not strings: the schema is local, so a postponed annotation could not resolve.
    handler.__annotations__ = {
        "body": Annotated[list[Any], WithJsonSchema({"type": "array", "items": schema})],
        "return": None,
    }
    handler.__name__ = handler.__qualname__ = name.replace(".", "_").replace("-", "_")
    return handler
