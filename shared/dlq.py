"""Dead letters: the original key, value and headers, plus why and where the message failed.

Each consumed record is dead-lettered once, however often its batch is retried or redelivered:
the records already sent are kept in `dead_letters_sent` (topic, partition, offset), written
after the broker acknowledged their copies. A crash between the two sends a copy twice at worst.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from shared.db import Pool
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

SENT_BEFORE = """
SELECT sent.topic, sent."partition", sent."offset"
FROM dead_letters_sent AS sent
JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS wanted (topic, "partition", "offset")
    USING (topic, "partition", "offset")
"""
RECORD_SENT = """
INSERT INTO dead_letters_sent (topic, "partition", "offset")
SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
ON CONFLICT DO NOTHING
"""


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


def _source(record: ConsumerRecord[bytes, bytes]) -> tuple[str, int, int]:
    return record.topic, record.partition, record.offset


def _columns(sources: list[tuple[str, int, int]]) -> tuple[list[str], list[int], list[int]]:
    return [s[0] for s in sources], [s[1] for s in sources], [s[2] for s in sources]


async def send_dead_letters_once(
    pool: Pool, producer: AIOKafkaProducer, letters: list[DeadLetter], service: str
) -> int:
    """Send the letters whose records were not dead-lettered before; returns how many were sent."""
    if not letters:
        return 0
    wanted = [_source(letter.record) for letter in letters]
    sent_before = {
        (row["topic"], row["partition"], row["offset"])
        for row in await pool.fetch(SENT_BEFORE, *_columns(wanted))
    }
    fresh = [letter for letter in letters if _source(letter.record) not in sent_before]
    if fresh:
        await send_dead_letters(producer, fresh, service)
        await pool.execute(RECORD_SENT, *_columns([_source(letter.record) for letter in fresh]))
    return len(fresh)
