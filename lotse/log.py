"""Reading whole topics as they stand now: the source of truth for reports and progress."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from lotse.credentials import kafka_security
from shared.kafka import client_options


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, fetching metadata first if the consumer has not seen the topic yet."""
    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer._client.force_metadata_update()  # first use of a topic
        found = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(found or set())]


async def read_history(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed event on the topic up to now, in log order per partition, copies included."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_options(kafka_security()),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[dict[str, Any]] = []
        pending = {tp for tp in partitions if ends[tp] > 0}
        empty_polls = 0
        while pending and empty_polls < 10:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            empty_polls = 0 if batch else empty_polls + 1
            for records in batch.values():
                events.extend(json.loads(record.value) for record in records if record.value is not None)
            for tp in list(pending):
                # Transaction markers take offsets, so "at or past the end" is the test.
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return events
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed event on the topic up to now, in log order per partition, once per event_id."""
    seen: set[Any] = set()
    events = []
    for event in await read_history(bootstrap, topic):
        if event.get("event_id") not in seen:
            seen.add(event.get("event_id"))
            events.append(event)
    return events
