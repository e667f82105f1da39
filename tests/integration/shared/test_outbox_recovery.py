"""A relay that restarts finds its database's last committed batch on its state topic, however
many markers of other databases (a second deployment on the same broker) came after it."""

from __future__ import annotations

import uuid

import pytest

from shared.kafka import make_producer
from shared.outbox import RelayMarker, last_committed_batch
from shared.topics import Topics

pytestmark = pytest.mark.integration


def marker(database: uuid.UUID, *ids: int) -> RelayMarker:
    return RelayMarker(database, ids, f"digest-of-{ids}")


async def test_the_last_batch_of_this_database_is_found_behind_many_of_others(
    kafka_bootstrap: str, topics: Topics
) -> None:
    ours, theirs, silent = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    state = topics.relay_state("registration")
    producer = make_producer(kafka_bootstrap, client_id="state-writer")
    await producer.start()
    try:
        await producer.send_and_wait(state, marker(ours, 1, 2).encode(), key=b"registration")
        await producer.send_and_wait(state, marker(ours, 3, 4, 5).encode(), key=b"registration")
        # While our relay was down, another database's relay went on: far more than one window.
        for batch in range(700):
            await producer.send(state, marker(theirs, batch).encode(), key=b"registration")
        await producer.send_and_wait(state, b'{"ids": [9999]}', key=b"registration")  # names no database
    finally:
        await producer.stop()

    assert await last_committed_batch(kafka_bootstrap, state, "registration", ours) == marker(ours, 3, 4, 5)
    assert await last_committed_batch(kafka_bootstrap, state, "registration", theirs) == marker(theirs, 699)
    assert await last_committed_batch(kafka_bootstrap, state, "registration", silent) is None
    empty = topics.relay_state("funding")
    assert await last_committed_batch(kafka_bootstrap, empty, "funding", ours) is None
