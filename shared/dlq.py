"""Dead letters: the original key, value and headers, plus why and where the message failed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from shared.topics import dlq_topic

HEADER_ERROR = "x-dlq-error"
HEADER_SERVICE = "x-dlq-service"
HEADER_SOURCE_TOPIC = "x-dlq-source-topic"
HEADER_SOURCE_PARTITION = "x-dlq-source-partition"
HEADER_SOURCE_OFFSET = "x-dlq-source-offset"
HEADER_FAILED_AT = "x-dlq-failed-at"
# Set instead of the value when the original value plus our headers exceeds the size limit.
HEADER_ORIGINAL_SIZE = "x-dlq-original-size"
HEADER_ORIGINAL_SHA256 = "x-dlq-original-sha256"
DLQ_HEADERS = {
    HEADER_ORIGINAL_SIZE,
    HEADER_ORIGINAL_SHA256,
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
    futures = []
    for letter in letters:
        headers = dead_letter_headers(letter, service)
        topic = dlq_topic(letter.record.topic)
        try:
            futures.append(
                await producer.send(topic, value=letter.record.value, key=letter.record.key, headers=headers)
            )
        except MessageSizeTooLargeError:
            # The original fitted the broker's limit, but not with our headers: keep a letter that
            # says what was there, so that the partition moves on instead of failing forever.
            value = letter.record.value or b""
            headers += [
                (HEADER_ORIGINAL_SIZE, str(len(value)).encode()),
                (HEADER_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
            ]
            futures.append(await producer.send(topic, value=None, key=letter.record.key, headers=headers))
    for future in futures:
        await future
