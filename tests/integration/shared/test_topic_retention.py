"""Topics with personal data keep it for KAFKA_PERSONAL_DATA_RETENTION_HOURS only, on the real
broker: as created, and on topics that existed before with another retention."""

from __future__ import annotations

import uuid

import pytest

from shared.kafka import delete_topics, ensure_topics, make_admin, topic_configs
from shared.topics import (
    DEFAULT_PERSONAL_DATA_RETENTION_HOURS,
    HOUR_MS,
    OPERATIONS_COMMANDS,
    PORTAL_REGISTRATIONS,
    REGISTRATION_EVENTS,
    Topics,
    TopicSpec,
    all_topics,
    dlq_topic,
)

pytestmark = pytest.mark.integration


async def configs_on_the_broker(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    admin = make_admin(bootstrap, client_id="retention-test")
    await admin.start()
    try:
        return await topic_configs(admin, names)
    finally:
        await admin.close()


async def test_every_topic_with_personal_data_is_created_with_the_personal_data_retention(
    kafka_bootstrap: str, topics: Topics
) -> None:
    specs = topics.all()
    found = await configs_on_the_broker(kafka_bootstrap, [spec.name for spec in specs])
    personal = {spec.name for spec in specs if spec.personal_data}
    # The topics the issue names, each dead-letter topic and the operators' commands among them.
    assert {
        topics.prefix + name
        for name in (
            PORTAL_REGISTRATIONS,
            REGISTRATION_EVENTS,
            OPERATIONS_COMMANDS,
            dlq_topic(PORTAL_REGISTRATIONS),
        )
    } <= personal
    assert {spec.name for spec in specs if spec.name.endswith(".dlq")} <= personal
    week = str(DEFAULT_PERSONAL_DATA_RETENTION_HOURS * HOUR_MS)
    assert {name: found[name].get("retention.ms") for name in personal} == {name: week for name in personal}
    day = str(24 * HOUR_MS)
    assert {name: found[name].get("segment.ms") for name in personal} == {name: day for name in personal}
    # The others keep the broker's retention (nothing set on the topic).
    assert all("retention.ms" not in found[spec.name] for spec in specs if not spec.personal_data)


async def test_an_existing_topic_gets_a_shorter_retention_and_keeps_its_other_settings(
    kafka_bootstrap: str,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    name = prefix + PORTAL_REGISTRATIONS
    # As an earlier version made it: no retention of its own, and an operator's own setting.
    await ensure_topics(kafka_bootstrap, [TopicSpec(name, 1, (("max.message.bytes", "2000000"),))])
    try:
        shorter = [
            spec for spec in Topics(prefix, personal_data_retention_hours=2).all() if spec.name == name
        ]
        created = await ensure_topics(kafka_bootstrap, shorter)
        assert created == []
        found = (await configs_on_the_broker(kafka_bootstrap, [name]))[name]
        assert found["retention.ms"] == str(2 * HOUR_MS)
        assert found["max.message.bytes"] == "2000000"
        # Again: nothing left to change.
        await ensure_topics(kafka_bootstrap, shorter)
        assert (await configs_on_the_broker(kafka_bootstrap, [name]))[name]["retention.ms"] == str(
            2 * HOUR_MS
        )
    finally:
        await delete_topics(kafka_bootstrap, [name])


async def test_the_stacks_own_topics_have_the_personal_data_retention(kafka_bootstrap: str) -> None:
    # The unprefixed topics, as `make up` / `make test` provisioned them (deploy/local/stack.py).
    specs = all_topics()
    found = await configs_on_the_broker(kafka_bootstrap, [spec.name for spec in specs])
    for spec in specs:
        assert found[spec.name].get("retention.ms") == dict(spec.config).get("retention.ms"), spec.name
