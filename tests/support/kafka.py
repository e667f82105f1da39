"""Publishing to and reading from the real broker in tests."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from shared.kafka import KafkaSecurity, client_options, make_admin

Record: TypeAlias = ConsumerRecord  # of bytes key and value


def kcat_command(principal: str = "admin") -> list[str]:
    """kcat as `principal`, with the stack's librdkafka config for it (`-F`), through
    deploy.local.kcat, which brings a librdkafka that logs in to Kafka 4 with SCRAM."""
    from deploy.local.config import var_dir
    from deploy.local.secrets import local_secrets

    config = local_secrets(var_dir()).kafka_config_file(principal)
    return [sys.executable, "-m", "deploy.local.kcat", "-F", str(config)]


def envelope(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    source: str = "test-portal",
    correlation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": source,
        "correlation_id": correlation_id,
        "data": data,
    }


def admin_client(
    bootstrap: str, *, security: KafkaSecurity | None = None, **options: Any
) -> AIOKafkaAdminClient:
    """An admin client of the tests: as the environment's principal (admin under `make test`)."""
    return make_admin(bootstrap, client_id="tests-admin", security=security, **options)


async def publish(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[str, dict[str, Any] | bytes]],
    *,
    security: KafkaSecurity | None = None,
) -> None:
    """Publish (key, value) pairs in order; a dict value is sent as JSON."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **client_options(security)
    )
    await producer.start()
    try:
        for key, value in messages:
            raw = value if isinstance(value, bytes) else json.dumps(value).encode()
            await producer.send_and_wait(topic, raw, key=key.encode())
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Record]], bool],
    timeout: float = 30.0,
    settle: float = 0.0,
    security: KafkaSecurity | None = None,
) -> list[Record]:
    """Read a topic from the beginning (committed messages only) until `until` holds.

    `settle` keeps reading that long after the condition holds, to catch messages that must NOT come.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client_options(security),
    )
    await consumer.start()
    records: list[Record] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        satisfied_at: float | None = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
            if satisfied_at is None and until(records):
                satisfied_at = loop.time()
            if satisfied_at is not None and loop.time() - satisfied_at >= settle:
                return records
        raise AssertionError(f"timed out reading {topic}: {len(records)} records, condition not met")
    finally:
        await consumer.stop()


def values(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records if r.value is not None]


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return bytes(value).decode()
    return None
