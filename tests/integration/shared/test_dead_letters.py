"""A dead letter always fits: an original near the size limit is kept as its size and digest."""

from __future__ import annotations

import hashlib

import pytest
from aiokafka.structs import ConsumerRecord

from shared.dlq import (
    HEADER_ERROR,
    HEADER_ORIGINAL_SHA256,
    HEADER_ORIGINAL_SIZE,
    DeadLetter,
    send_dead_letters,
)
from shared.kafka import make_producer
from shared.topics import Topics, dlq_topic
from tests.support.kafka import header, read_topic

pytestmark = pytest.mark.integration


def record(topic: str, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"03241",
        value=value,
        checksum=None,
        serialized_key_size=5,
        serialized_value_size=len(value),
        headers=[("content-type", b"application/json")],
    )


async def test_an_original_that_fits_only_without_our_headers_is_kept_as_size_and_digest(
    kafka_bootstrap: str, topics: Topics
) -> None:
    source = topics.portal_registrations
    near_limit = b"{" + b"x" * 1_047_000  # accepted by the broker, too large with 2 KB of headers
    small = b'{"not": "an envelope"}'
    producer = make_producer(kafka_bootstrap, client_id="dlq-test")
    await producer.start()
    try:
        await send_dead_letters(
            producer,
            [
                DeadLetter(record(source, 7, near_limit), "e" * 2000),
                DeadLetter(record(source, 8, small), "bad"),
            ],
            "registration",
        )
    finally:
        await producer.stop()

    letters = await read_topic(kafka_bootstrap, dlq_topic(source), until=lambda found: len(found) >= 2)
    by_error = {header(letter, HEADER_ERROR): letter for letter in letters}
    large = by_error["e" * 2000]
    assert large.value is None
    assert header(large, HEADER_ORIGINAL_SIZE) == str(len(near_limit))
    assert header(large, HEADER_ORIGINAL_SHA256) == hashlib.sha256(near_limit).hexdigest()
    assert large.key == b"03241"
    assert by_error["bad"].value == small  # an ordinary letter keeps its value byte for byte
