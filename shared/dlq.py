"""Dead letters: the original key, value and headers, plus why and where the message failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from shared.topics import dlq_topic

HEADER_ERROR = "x-dlq-error"
HEADER_SERVICE = "x-dlq-service"
HEADER_SOURCE_TOPIC = "x-dlq-source-topic"
HEADER_SOURCE_PARTITION = "x-dlq-source-partition"
HEADER_SOURCE_OFFSET = "x-dlq-source-offset"
HEADER_FAILED_AT = "x-dlq-failed-at"
DLQ_HEADERS = {
    HEADER_ERROR,
    HEADER_SERVICE,
    HEADER_SOURCE_TOPIC,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_OFFSET,
    HEADER_FAILED_AT,
}
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    error: str


def dead_letter_headers(letter: DeadLetter, service: str) -> list[tuple[str, bytes]]:
    record = letter.record
    original = [(name, value) for name, value in record.headers if name not in DLQ_HEADERS]
    return [
        *original,
        (HEADER_ERROR, letter.error[:MAX_ERROR_LENGTH].encode("utf-8", "replace")),
        (HEADER_SERVICE, service.encode()),
        (HEADER_SOURCE_TOPIC, record.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
        (HEADER_FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]


async def send_dead_letters(producer: AIOKafkaProducer, letters: list[DeadLetter], service: str) -> None:
    """Publish and wait for the broker's acknowledgement, before the source offset is committed."""
    futures = [
        await producer.send(
            dlq_topic(letter.record.topic),
            value=letter.record.value,
            key=letter.record.key,
            headers=dead_letter_headers(letter, service),
        )
        for letter in letters
    ]
    for future in futures:
        await future
