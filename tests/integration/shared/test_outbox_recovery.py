"""A relay that restarts finds its last committed batch on the shared state topic, however many
batches the other services' relays committed since."""

from __future__ import annotations

import json

import pytest

from shared.kafka import make_producer
from shared.outbox import last_committed_batch
from shared.topics import Topics

pytestmark = pytest.mark.integration


async def test_the_last_batch_is_found_behind_many_batches_of_other_relays(
    kafka_bootstrap: str, topics: Topics
) -> None:
    producer = make_producer(kafka_bootstrap, client_id="state-writer")
    await producer.start()
    try:
        state = topics.outbox_relay_state
        await producer.send_and_wait(state, json.dumps({"ids": [1, 2]}).encode(), key=b"registration")
        await producer.send_and_wait(state, json.dumps({"ids": [3, 4, 5]}).encode(), key=b"registration")
        # While the registration relay was down, the others went on: far more than one window.
        for batch in range(700):
            await producer.send(state, json.dumps({"ids": [batch]}).encode(), key=b"funding")
        await producer.send_and_wait(state, json.dumps({"ids": [9999]}).encode(), key=b"notification")
    finally:
        await producer.stop()

    assert await last_committed_batch(kafka_bootstrap, state, "registration") == [3, 4, 5]
    assert await last_committed_batch(kafka_bootstrap, state, "notification") == [9999]
    assert await last_committed_batch(kafka_bootstrap, state, "funding") == [699]
    assert await last_committed_batch(kafka_bootstrap, state, "never-ran") == []
