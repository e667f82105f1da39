"""Dead letters for operators: list them, and put them back on their topic after a fix.

Replaying cannot duplicate effects: a dead-lettered event never reached a service's inbox, and a
replayed event that was processed once is dropped by the inbox the next time. Replayed offsets are
committed under a consumer group of their own, so `replay` without ids takes only new letters.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from lotse.credentials import kafka_security
from lotse.log import topic_partitions
from shared.dlq import DLQ_HEADERS, HEADER_ERROR, HEADER_FAILED_AT, HEADER_SERVICE
from shared.kafka import client_options, make_producer
from shared.topics import dlq_topic

# Transitional: replaying writes into a domain topic, which only its owner may; until replay is a
# command that the owning service carries out, lotse reads and replays dead letters as admin.
DLQ_PRINCIPAL = "admin"


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


def replay_group(topic: str) -> str:
    return f"lotse-dlq-replay.{topic}"


async def read_dead_letters(bootstrap: str, topic: str, *, only_new: bool = False) -> list[DeadLetter]:
    dead = dlq_topic(topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_options(kafka_security(DLQ_PRINCIPAL)),
        group_id=replay_group(topic),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, dead)
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            committed = await consumer.committed(tp) if only_new else None
            consumer.seek(tp, committed or 0)
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


async def replay_dead_letters(bootstrap: str, topic: str, ids: list[str] | None = None) -> list[DeadLetter]:
    """Republish letters (all new ones, or those named `partition:offset`) with their original
    key, value and headers; returns what was replayed."""
    letters = await read_dead_letters(bootstrap, topic, only_new=not ids)
    if ids:
        wanted = set(ids)
        unknown = wanted - {letter.letter_id for letter in letters}
        if unknown:
            raise KeyError(f"no dead letter with id {', '.join(sorted(unknown))} on {dlq_topic(topic)}")
        letters = [letter for letter in letters if letter.letter_id in wanted]
    producer = make_producer(bootstrap, client_id="lotse-dlq-replay", security=kafka_security(DLQ_PRINCIPAL))
    await producer.start()
    try:
        for letter in letters:
            headers = [(k, v) for k, v in letter.record.headers if k not in DLQ_HEADERS]
            await producer.send_and_wait(topic, letter.record.value, key=letter.record.key, headers=headers)
    finally:
        await producer.stop()
    if not ids and letters:
        await _commit_replayed(bootstrap, topic, letters)
    return letters


async def _commit_replayed(bootstrap: str, topic: str, letters: list[DeadLetter]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=replay_group(topic),
        enable_auto_commit=False,
        **client_options(kafka_security(DLQ_PRINCIPAL)),
    )
    await consumer.start()
    try:
        last: dict[TopicPartition, int] = {}
        for letter in letters:
            tp = TopicPartition(dlq_topic(topic), letter.partition)
            last[tp] = max(last.get(tp, -1), letter.offset)
        consumer.assign(list(last))  # aiokafka commits only for assigned partitions
        await consumer.commit({tp: OffsetAndMetadata(offset + 1, "") for tp, offset in last.items()})
    finally:
        await consumer.stop()
