"""Kafka plumbing: the broker factory and an idempotent raw producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiokafka.producer.sender as aiokafka_sender
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from shared.topics import TopicSpec

# Subscribers process a batch, then commit; an error that survives the retries rewinds the batch
# so nothing is committed past an unprocessed message.
SUBSCRIBER_ACK_POLICY = AckPolicy.NACK_ON_ERROR

Headers = Sequence[tuple[str, bytes]]

# A transaction begun right after a commit is often refused with CONCURRENT_TRANSACTIONS: the
# broker is still writing the last one's markers (KAFKA-5477). aiokafka then retries after a
# fixed 20 ms that no option sets, and a relay that commits back to back paid it on most batches
# (`python -m bench.transactions`: p90 25 ms, 6-7 ms with 2 ms retries). Each retry costs the
# broker one small request.
CONCURRENT_TRANSACTIONS_RETRY_SECONDS = 0.002


def retry_concurrent_transactions_sooner() -> None:
    """Set aiokafka's retry delay for CONCURRENT_TRANSACTIONS (a module constant it reads on each
    retry) to CONCURRENT_TRANSACTIONS_RETRY_SECONDS. Fails loudly if an upgrade removed it."""
    if not isinstance(getattr(aiokafka_sender, "BACKOFF_OVERRIDE", None), float):
        raise RuntimeError("aiokafka.producer.sender.BACKOFF_OVERRIDE is gone: see shared/kafka.py")
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_RETRY_SECONDS


def make_broker(bootstrap_servers: str, *, client_id: str) -> KafkaBroker:
    """One broker per service process; its producer waits for all replicas and never duplicates."""
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        ack_policy=SUBSCRIBER_ACK_POLICY,
        allow_auto_create_topics=False,
        graceful_timeout=15.0,
    )


def make_producer(bootstrap_servers: str, *, client_id: str, linger_ms: int = 5) -> AIOKafkaProducer:
    """A raw producer for bytes that must stay byte-exact (dead letters, portal replays)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
    )


async def ensure_topics(bootstrap_servers: str, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that don't exist yet; returns the names created. Idempotent."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lotse-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, topic_configs=dict(s.config))
            for s in specs
            if s.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: that is what we wanted
            await _wait_until_visible(admin, [topic.name for topic in missing])
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def _wait_until_visible(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    # CreateTopics returns before every listener's metadata knows the partitions; a client that
    # asks too early (kcat, a fresh consumer) would see an unknown topic.
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        if all(topic["error_code"] == 0 and topic["partitions"] for topic in described):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics not visible after {timeout:.0f} s: {names}")
        await asyncio.sleep(0.1)


async def delete_topics(bootstrap_servers: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lotse-topics")
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
