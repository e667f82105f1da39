"""Dead letters for operators: list them (as `operator`, who reads every topic).

Replaying is a command (`lotse dlq replay … --reason`, `command.replay_dead_letters`) that the
service owning the consumer carries out, feeding the letters through its own consumer
(shared.replay); lotse writes no domain topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from lotse.credentials import kafka_security
from lotse.log import topic_partitions
from shared.dlq import HEADER_ERROR, HEADER_FAILED_AT, HEADER_SERVICE
from shared.kafka import client_options
from shared.topics import dlq_topic


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str
    error: str
    service: str
    failed_at: str
    size: int
    record: ConsumerRecord[bytes, bytes]

    @property
    def letter_id(self) -> str:
        return f"{self.partition}:{self.offset}"


def _header_text(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    for key, value in record.headers:
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return ""


async def read_dead_letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    dead = dlq_topic(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_options(kafka_security()),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, dead)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        letters: list[DeadLetter] = []
        pending = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            if not batch:
                break
            for records in batch.values():
                letters.extend(
                    DeadLetter(
                        r.partition,
                        r.offset,
                        (r.key or b"").decode("utf-8", "replace"),
                        _header_text(r, HEADER_ERROR),
                        _header_text(r, HEADER_SERVICE),
                        _header_text(r, HEADER_FAILED_AT),
                        len(r.value or b""),
                        r,
                    )
                    for r in records
                )
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return sorted(letters, key=lambda letter: (letter.partition, letter.offset))
    finally:
        await consumer.stop()
