"""Reading whole topics as they stand now: the source of truth for reports and progress."""

from __future__ import annotations

import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed event on the topic up to now, in log order per partition, once per event_id."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        events: list[dict[str, Any]] = []
        seen: set[str] = set()
        pending = {tp for tp in partitions if ends[tp] > 0}
        empty_polls = 0
        while pending and empty_polls < 10:
            batch = await consumer.getmany(*pending, timeout_ms=500)
            empty_polls = 0 if batch else empty_polls + 1
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        continue
                    event = json.loads(record.value)
                    if event.get("event_id") not in seen:
                        seen.add(event.get("event_id"))
                        events.append(event)
            for tp in list(pending):
                # Transaction markers take offsets, so "at or past the end" is the test.
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return events
    finally:
        await consumer.stop()


async def count_all(bootstrap: str, topic: str) -> int:
    return len(await read_all(bootstrap, topic))
