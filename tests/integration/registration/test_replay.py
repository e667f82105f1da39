"""command.replay_dead_letters carried out by registration, against the real broker and
PostgreSQL: the service feeds its own dead letters through its consumer again, never writing
into the domain topic; without ids only letters not replayed before; unknown ids are refused."""

from __future__ import annotations

import json

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from lotse.commands import new_command, send_command
from shared.commands import REPLAY_DEAD_LETTERS
from shared.dlq import HEADER_SERVICE, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION
from shared.kafka import KafkaSecurity, client_options
from shared.topics import Topics, dlq_topic
from tests.integration.registration.portal import seminar, send
from tests.support.kafka import read_topic
from tests.support.service import ServiceFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_registration_replays_its_dead_letters_through_its_own_consumer(
    kafka_bootstrap: str,
    topics: Topics,
    registration_service: ServiceFactory,
    registration_db: asyncpg.Connection,
) -> None:
    dead = dlq_topic(topics.portal_seminars)

    async def replay(*ids: str) -> list[tuple[str, str, dict[str, int | str]]]:
        command = new_command(REPLAY_DEAD_LETTERS, "Fehler behoben", topic="portal.seminars", letter_ids=ids)
        outcome = await send_command(kafka_bootstrap, topics, REPLAY_DEAD_LETTERS, command)
        assert not outcome.missing
        return [(r.service, r.outcome, r.detail) for r in outcome.results.values()]

    async with registration_service():
        await send(kafka_bootstrap, topics.portal_seminars, ("S-0", b"not json"))
        (broken,) = await read_topic(kafka_bootstrap, dead, until=lambda r: len(r) >= 1)
        # A letter whose message is fine now (it failed for a reason since fixed), as the
        # service wrote it: its source's place and the service in the headers.
        key, fixed = seminar("S-1", 12)
        headers = [
            (HEADER_SERVICE, b"registration"),
            (HEADER_SOURCE_PARTITION, b"0"),
            (HEADER_SOURCE_OFFSET, b"4711"),
        ]
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, **client_options(KafkaSecurity.from_environment())
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                dead, json.dumps(fixed).encode(), key=key.encode(), headers=headers, partition=0
            )
        finally:
            await producer.stop()

        assert await replay() == [("registration", "done", {"replayed": 2})]

        async def stored() -> bool:
            found = await registration_db.fetchval("SELECT capacity FROM seminars WHERE seminar_id = 'S-1'")
            return bool(found == 12)

        await wait_until(stored)
        assert await replay() == [("registration", "done", {"replayed": 0})]
        broken_id = f"{broken.partition}:{broken.offset}"
        assert await replay(broken_id) == [("registration", "done", {"replayed": 1})]
        assert await replay("0:99999") == [
            ("registration", "refused", {"error": "unknown_letters", "unknown": 1})
        ]
        letters = await read_topic(kafka_bootstrap, dead, until=lambda r: len(r) >= 2, settle=1)
        on_source = await read_topic(kafka_bootstrap, topics.portal_seminars, until=lambda r: len(r) >= 1)
    # The broken message failed again and was not dead-lettered a second time; nothing was
    # written onto the domain topic.
    assert len(letters) == 2
    assert len(on_source) == 1
