"""deploy/acl.yaml on the real broker: table-driven from the file, for a test's own prefix (the
`topics` fixture applies the file for it). For every principal, what it is granted works and what
it is not granted is refused with an authorisation error."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from deploy.acl import AclFile, Operation, ResourceType, load_acl
from deploy.local.secrets import LocalSecrets
from shared.kafka import client_options, make_admin
from shared.topics import Topics
from tests.integration.security.conftest import principal

pytestmark = pytest.mark.integration

ACL = load_acl()
TOPIC_AUTHORIZATION_FAILED = 29
PRINCIPALS = [p.name for p in ACL.principals if not p.super_user]


@dataclass(frozen=True)
class Case:
    principal: str
    operation: Operation
    topic: str  # without the prefix

    @property
    def id(self) -> str:
        return f"{self.principal}-{self.operation.value.lower()}-{self.topic}"


def allows(name: str, operation: Operation, topic: str) -> bool:
    """What the file grants."""
    return ACL.principal(name).allows(operation, ResourceType.TOPIC, topic)


def existing_topics() -> list[str]:
    return [spec.name for spec in Topics().all()]


def cases(acl: AclFile, *, granted: bool) -> list[Case]:
    """Every (principal, Read|Write, topic) over the topics that exist, granted or not per the file."""
    return [
        Case(name, operation, topic)
        for name in PRINCIPALS
        for operation in (Operation.READ, Operation.WRITE)
        for topic in existing_topics()
        if allows(name, operation, topic) is granted
    ]


GRANTED = cases(ACL, granted=True)
REFUSED = cases(ACL, granted=False)


def test_the_table_covers_every_principal_both_ways() -> None:
    assert {case.principal for case in GRANTED} == set(PRINCIPALS)
    assert {case.principal for case in REFUSED} == set(PRINCIPALS)
    # The examples of the issue are among the refusals.
    for example in (
        Case("portal", Operation.WRITE, "funding.decisions"),
        Case("notification", Operation.READ, "portal.registrations"),
        Case("funding", Operation.WRITE, "registration.events"),
        Case("operator", Operation.WRITE, "funding.decisions"),
    ):
        assert example in REFUSED


async def produce(secrets: LocalSecrets, bootstrap: str, name: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        **client_options(principal(secrets, name)),
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"probe": true}', key=b"acl-test")
    finally:
        await producer.stop()


async def topic_error(secrets: LocalSecrets, bootstrap: str, name: str, topic: str) -> int:
    """The broker's error code for the topic's metadata as `name` sees it (29: not authorised)."""
    admin = make_admin(bootstrap, security=principal(secrets, name))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return int(described[0]["error_code"])


async def read_from_start(secrets: LocalSecrets, bootstrap: str, name: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **client_options(principal(secrets, name)),
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        await consumer.getmany(partition, timeout_ms=500)
        return int(await consumer.position(partition))
    finally:
        await consumer.stop()


@pytest.mark.parametrize("case", GRANTED, ids=[case.id for case in GRANTED])
async def test_a_granted_operation_succeeds(
    case: Case, secrets: LocalSecrets, kafka_bootstrap: str, topics: Topics
) -> None:
    topic = topics.prefix + case.topic
    if case.operation is Operation.WRITE:
        await produce(secrets, kafka_bootstrap, case.principal, topic)
    else:
        assert await topic_error(secrets, kafka_bootstrap, case.principal, topic) == 0
        assert await read_from_start(secrets, kafka_bootstrap, case.principal, topic) >= 0


@pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
async def test_an_operation_not_granted_is_refused(
    case: Case, secrets: LocalSecrets, kafka_bootstrap: str, topics: Topics
) -> None:
    topic = topics.prefix + case.topic
    if case.operation is Operation.WRITE:
        with pytest.raises(TopicAuthorizationFailedError):
            await produce(secrets, kafka_bootstrap, case.principal, topic)
    elif not allows(case.principal, Operation.DESCRIBE, case.topic):
        assert (
            await topic_error(secrets, kafka_bootstrap, case.principal, topic) == TOPIC_AUTHORIZATION_FAILED
        )


@pytest.mark.parametrize("name", PRINCIPALS)
async def test_a_principal_commits_only_in_its_own_groups(
    name: str, secrets: LocalSecrets, kafka_bootstrap: str, topics: Topics
) -> None:
    rules = ACL.principal(name)
    readable = next(t for t in existing_topics() if rules.allows(Operation.READ, ResourceType.TOPIC, t))
    own = next(
        rule.name + ("probe" if rule.pattern.value == "prefix" else "")
        for rule in rules.acls
        if rule.resource is ResourceType.GROUP and rule.grants(Operation.READ)
    )
    foreign = f"someone-else.{uuid.uuid4().hex[:6]}"
    for group, allowed in ((own, True), (foreign, False)):
        consumer = AIOKafkaConsumer(
            topics.prefix + readable,
            bootstrap_servers=kafka_bootstrap,
            group_id=topics.prefix + group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(principal(secrets, name)),
        )
        try:
            if allowed:
                await consumer.start()
                await consumer.getmany(timeout_ms=1000)
                assert consumer.assignment()
            else:
                with pytest.raises(GroupAuthorizationFailedError):
                    await consumer.start()
                    await consumer.getmany(timeout_ms=5000)
        finally:
            await consumer.stop()


@pytest.mark.parametrize("forger", ["portal", "operator", "registration", "notification"])
async def test_a_forged_funding_decision_is_refused_and_reaches_no_one(
    forger: str, secrets: LocalSecrets, kafka_bootstrap: str, topics: Topics
) -> None:
    """The issue's attack: a hand-written funding.approved for a declined registration."""
    topic = topics.funding_decisions
    admin = make_admin(kafka_bootstrap)
    await admin.start()
    try:
        before = await admin.list_topics()
        assert topic in before
    finally:
        await admin.close()
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secrets, kafka_bootstrap, forger, topic)
    # Nothing reached the topic, so no consumer (the notification service) can act on it.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None, **client_options())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    assert partitions and all(offset == 0 for offset in ends.values())
