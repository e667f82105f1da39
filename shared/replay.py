"""A service replays its own dead letters on an operator's command (`command.replay_dead_letters`).

The service reads the dead-letter topic of a topic it consumes, takes the letters it wrote itself
(`x-dlq-service`), and feeds their original records through its own consumer of that topic, as
if they had just arrived: decoded, deduplicated by the inbox, applied in their own unit of work.
No principal but a domain topic's owner writes it (ADR 0013, ADR 0016).

Without letter ids, only letters not replayed before are taken: the replay records each letter in
the command's unit of work (the inbox, by a key derived from the letter), so a letter is replayed
once even when the command is redelivered. Replaying an event twice would do no harm either: the
inbox drops it the second time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.commands import ReplayDeadLetters, result_message
from shared.dlq import DLQ_HEADERS, HEADER_SERVICE, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION
from shared.events import Envelope
from shared.kafka import KafkaSecurity, client_options
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.topics import Topics, dlq_topic
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

_REPLAYED = uuid.UUID("2d1f6a4e-7c3b-4f0e-8b9a-5e6d7c8b9a01")

Records = Sequence[ConsumerRecord[bytes, bytes]]
Refeed = Callable[[str, Records], Awaitable[None]]


def _header(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    for key, value in record.headers:
        if key == name:
            return bytes(value).decode("utf-8", "replace")
    return ""


def letter_id(record: ConsumerRecord[bytes, bytes]) -> str:
    return f"{record.partition}:{record.offset}"


def replayed_claim(dead_letter_topic: str, record: ConsumerRecord[bytes, bytes]) -> uuid.UUID:
    return uuid.uuid5(_REPLAYED, f"{dead_letter_topic}:{letter_id(record)}")


def original_record(source_topic: str, letter: ConsumerRecord[bytes, bytes]) -> ConsumerRecord[bytes, bytes]:
    """The record as it was on its source topic (its place there, its own headers)."""
    partition = _header(letter, HEADER_SOURCE_PARTITION)
    offset = _header(letter, HEADER_SOURCE_OFFSET)
    return ConsumerRecord(
        topic=source_topic,
        partition=int(partition) if partition.isdigit() else letter.partition,
        offset=int(offset) if offset.isdigit() else letter.offset,
        timestamp=letter.timestamp,
        timestamp_type=letter.timestamp_type,
        key=letter.key,
        value=letter.value,
        checksum=None,
        serialized_key_size=letter.serialized_key_size,
        serialized_value_size=letter.serialized_value_size,
        headers=tuple((k, v) for k, v in letter.headers if k not in DLQ_HEADERS),
    )


@dataclass(frozen=True)
class DeadLetterReplayer:
    service: str
    topics: Topics
    consumed: tuple[str, ...]  # the topics this service consumes (prefixed)
    bootstrap: str
    security: KafkaSecurity | None
    refeed: Refeed

    async def handler(self, uow: UnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        """Replay the letters the command names (or the new ones), if the topic is one this
        service consumes; the result for the outbox."""
        command: ReplayDeadLetters = event.data
        source = self.topics.prefix + command.topic
        if source not in self.consumed:
            return []  # another service's consumer
        return [await self._replay(uow, event, command, source)]

    async def _replay(
        self, uow: UnitOfWork, event: Envelope[Any], command: ReplayDeadLetters, source: str
    ) -> OutboxMessage:
        dead = dlq_topic(source)
        every = await self._read(dead)
        letters = [r for r in every if _header(r, HEADER_SERVICE) == self.service]
        results = self.topics.operations_results
        if command.letter_ids:
            # An id of another service's letter is that service's to replay (and to report).
            unknown = set(command.letter_ids) - {letter_id(r) for r in every}
            if unknown:
                detail: dict[str, int | str] = {"error": "unknown_letters", "unknown": len(unknown)}
                return result_message(results, event, self.service, "refused", detail)
            wanted = set(command.letter_ids)
            chosen = [r for r in letters if letter_id(r) in wanted]
            await uow.claim_new_events(dead, [replayed_claim(dead, r) for r in chosen])
        else:
            new = await uow.claim_new_events(dead, [replayed_claim(dead, r) for r in letters])
            chosen = [r for r in letters if replayed_claim(dead, r) in new]
        for record in chosen:
            # One at a time, in the order they failed: each in its own unit of work.
            await self.refeed(source, [original_record(source, record)])
        log.info("dead letters replayed", topic=command.topic, replayed=len(chosen))
        return result_message(results, event, self.service, "done", {"replayed": len(chosen)})

    async def _read(self, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            **client_options(self.security),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(topic)
            partitions = [TopicPartition(topic, p) for p in sorted(found or set())]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            letters: list[ConsumerRecord[bytes, bytes]] = []
            pending = {tp for tp in partitions if ends[tp] > 0}
            while pending:
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                if not batch:
                    break
                for records in batch.values():
                    letters.extend(records)
                pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
            return sorted(letters, key=lambda r: (r.timestamp, r.partition, r.offset))
        finally:
            await consumer.stop()


class _Runtime(Protocol):
    """What a replayer needs of a service's runtime (shared.runtime.ServiceRuntime)."""

    name: str
    topics: Topics
    kafka_security: KafkaSecurity

    async def refeed(self, topic: str, records: Records) -> None: ...


def replayer_of(runtime: _Runtime, bootstrap: str, consumed: Sequence[str]) -> DeadLetterReplayer:
    """The replayer of a service's runtime, for the (prefixed) topics it consumes."""
    return DeadLetterReplayer(
        service=runtime.name,
        topics=runtime.topics,
        consumed=tuple(consumed),
        bootstrap=bootstrap,
        security=runtime.kafka_security,
        refeed=runtime.refeed,
    )
