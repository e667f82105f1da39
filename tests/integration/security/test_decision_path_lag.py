"""Notification reads the decision path's lag on the real broker, as its own principal: the
Describe grants of deploy/acl.yaml suffice, and the figure is what the groups left uncommitted."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from deploy.local.secrets import LocalSecrets
from services.notification.priority import DecisionPathLag
from shared.kafka import KafkaSecurity, client_options, make_producer
from shared.topics import Topics
from tests.integration.security.conftest import principal

pytestmark = pytest.mark.integration


async def publish(bootstrap: str, topic: str, partition: int, count: int) -> None:
    producer = make_producer(bootstrap, client_id="lag-test")
    await producer.start()
    try:
        for number in range(count):
            await producer.send(topic, b"{}", key=f"k{number}".encode(), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        **client_options(KafkaSecurity.from_environment()),
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
    finally:
        await consumer.stop()


async def test_the_lag_is_what_registration_and_funding_have_not_committed(
    secrets: LocalSecrets, kafka_bootstrap: str, topics: Topics
) -> None:
    portal, outcomes = topics.portal_registrations, topics.registration_events
    await publish(kafka_bootstrap, portal, 0, 30)
    await publish(kafka_bootstrap, portal, 1, 5)
    await publish(kafka_bootstrap, outcomes, 3, 20)
    registration, funding = topics.prefix + "registration", topics.prefix + "funding"
    lag = DecisionPathLag(
        kafka_bootstrap,
        [(registration, portal), (funding, outcomes)],
        security=principal(secrets, "notification"),
    )
    try:
        assert await lag.read() == 0  # neither group committed anything yet: nothing to yield to
        await commit(
            kafka_bootstrap, registration, {TopicPartition(portal, 0): 12, TopicPartition(portal, 1): 5}
        )
        await commit(kafka_bootstrap, funding, {TopicPartition(outcomes, 3): 15})
        assert await lag.read() == (30 - 12) + 0 + (20 - 15)
        await commit(kafka_bootstrap, funding, {TopicPartition(outcomes, 3): 20})
        assert await lag.read() == 30 - 12
    finally:
        await lag.stop()
