"""The provisioned infrastructure itself: topics as declared, kcat works against the broker,
and each service's role is shut out of the other services' databases."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid

import asyncpg
import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.topics import KOMMUNE_KEYED_PARTITIONS, Topics, all_topics
from tests.support.infra import SERVICES, Infrastructure, with_database
from tests.support.kafka import admin_client, kcat_command

pytestmark = pytest.mark.integration


async def partitions_by_topic(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


async def test_every_topic_exists_with_its_partitions(kafka_bootstrap: str, topics: Topics) -> None:
    specs = topics.all()
    found = await partitions_by_topic(kafka_bootstrap, [spec.name for spec in specs])
    assert found == {spec.name: spec.partitions for spec in specs}
    kommune_keyed = [topics.portal_registrations, topics.registration_events, topics.funding_decisions]
    assert all(found[name] >= KOMMUNE_KEYED_PARTITIONS >= 6 for name in kommune_keyed)


def kcat(*args: str, stdin: str | None = None) -> str:
    binary = shutil.which("kcat")
    if binary is None:
        pytest.fail("kcat is not installed: .ci/run installs Debian's kcat package")
    done = subprocess.run(
        [*kcat_command(), *args], input=stdin, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


async def test_kcat_lists_topics_and_produces_and_consumes(kafka_bootstrap: str, topics: Topics) -> None:
    listing = await asyncio.to_thread(kcat, "-b", kafka_bootstrap, "-L", "-t", topics.portal_registrations)
    assert f'topic "{topics.portal_registrations}" with {KOMMUNE_KEYED_PARTITIONS} partitions:' in listing
    marker = uuid.uuid4().hex
    lines = "".join(f"03241|{marker}-{index}\n" for index in range(3))
    await asyncio.to_thread(
        kcat, "-b", kafka_bootstrap, "-P", "-t", topics.portal_registrations, "-K", "|", stdin=lines
    )
    consumed = await asyncio.to_thread(
        kcat, "-b", kafka_bootstrap, "-C", "-t", topics.portal_registrations,
        "-o", "beginning", "-c", "3", "-f", "%k %s\n",
    )  # fmt: skip
    # One key lands on one partition, so its messages come back in the order they were produced.
    assert consumed.splitlines() == [f"03241 {marker}-{index}" for index in range(3)]


def test_production_topic_layout_has_a_dead_letter_topic_per_consumed_topic() -> None:
    names = {spec.name for spec in all_topics()}
    for consumed in ("portal.seminars", "portal.registrations", "registration.events", "funding.decisions"):
        assert {consumed, f"{consumed}.dlq"} <= names


@pytest.mark.parametrize("own", SERVICES)
async def test_a_service_role_cannot_read_another_services_database(infra: Infrastructure, own: str) -> None:
    for other in SERVICES:
        if other == own:
            continue
        dsn = with_database(infra.service_dsns[own], other)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            conn = await asyncpg.connect(dsn)
            await conn.close()
    conn = await asyncpg.connect(infra.service_dsns[own])
    try:
        assert await conn.fetchval("SELECT current_user") == own
    finally:
        await conn.close()


async def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    # DescribeConfigsResponse: resources of (error, message, type, name, entries of (name, value, …)).
    return {entry[0]: entry[1] for response in responses for res in response.resources for entry in res[4]}


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_has_a_compacted_relay_state_topic_of_its_own(
    kafka_bootstrap: str, topics: Topics, service: str
) -> None:
    state = topics.relay_state(service)
    assert state == f"{topics.prefix}outbox.{service}.relay-state"
    assert (await partitions_by_topic(kafka_bootstrap, [state]))[state] == 1
    assert (await topic_config(kafka_bootstrap, state))["cleanup.policy"] == "compact"
    assert f"{topics.prefix}outbox.relay-state" not in {spec.name for spec in topics.all()}
