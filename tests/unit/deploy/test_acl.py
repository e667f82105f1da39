"""deploy/acl.yaml, the one ACL declaration: least privilege as INTERFACES.md says, strict loading,
and the expansion for a topic prefix."""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from deploy.acl import (
    AclBinding,
    AclFile,
    Operation,
    PatternType,
    ResourceType,
    expand_for_prefix,
    load_acl,
    parse_acl,
)
from deploy.k8s.catalogue import (
    OPERATIONS_COMMANDS,
    OPERATIONS_RESULTS,
    SERVICE_SPECS,
    Service,
    contract_topics,
)
from shared.db import Pool
from shared.outbox import OutboxRelay
from shared.topics import Topics, dlq_topic, relay_state_topic

ACL = load_acl()
TOPICS = tuple(topic.name for topic in contract_topics())
READ, WRITE, DESCRIBE = Operation.READ, Operation.WRITE, Operation.DESCRIBE
TOPIC, GROUP, TXN, CLUSTER = (
    ResourceType.TOPIC,
    ResourceType.GROUP,
    ResourceType.TRANSACTIONAL_ID,
    ResourceType.CLUSTER,
)


def test_every_principal_of_interfaces_is_declared_and_only_admin_is_a_super_user() -> None:
    assert set(ACL.names) == {"admin", "portal", "registration", "funding", "notification", "operator"}
    assert ACL.super_users == ("admin",)


@pytest.mark.parametrize(
    ("principal", "operation", "resource", "name", "allowed"),
    [
        ("portal", WRITE, TOPIC, "portal.seminars", True),
        ("portal", WRITE, TOPIC, "portal.registrations", True),
        ("portal", READ, TOPIC, "funding.decisions", True),
        ("portal", READ, GROUP, "portal.crm", True),
        ("portal", WRITE, TOPIC, "funding.decisions", False),
        ("portal", READ, TOPIC, "portal.registrations", False),
        ("portal", READ, GROUP, "funding", False),
        ("portal", WRITE, TOPIC, OPERATIONS_COMMANDS, False),
        ("registration", READ, TOPIC, "portal.registrations", True),
        ("registration", WRITE, TOPIC, "registration.events", True),
        ("registration", WRITE, TOPIC, "portal.registrations.dlq", True),
        ("registration", WRITE, TOPIC, "outbox.registration.relay-state", True),
        ("registration", WRITE, TOPIC, "outbox.funding.relay-state", False),
        ("registration", WRITE, TXN, "registration-outbox-relay", True),
        ("registration", WRITE, TXN, "funding-outbox-relay", False),
        ("registration", READ, GROUP, "registration", True),
        ("registration", READ, GROUP, "funding", False),
        ("registration", READ, TOPIC, "funding.decisions", False),
        ("funding", READ, TOPIC, "registration.events", True),
        ("funding", WRITE, TOPIC, "registration.events", False),
        ("funding", WRITE, TOPIC, "funding.decisions", True),
        ("funding", WRITE, TOPIC, OPERATIONS_RESULTS, True),
        ("funding", READ, TOPIC, "portal.registrations", False),
        ("notification", READ, TOPIC, "portal.registrations", False),
        # decisions before letters: offsets of the decision path, never its records
        ("notification", DESCRIBE, TOPIC, "portal.registrations", True),
        ("notification", DESCRIBE, GROUP, "funding", True),
        ("notification", DESCRIBE, GROUP, "registration", True),
        ("notification", READ, GROUP, "funding", False),
        ("notification", READ, GROUP, "registration", False),
        ("notification", READ, TOPIC, "funding.decisions", True),
        ("notification", WRITE, TOPIC, "funding.decisions", False),
        ("notification", WRITE, TOPIC, "funding.decisions.dlq", True),
        ("operator", READ, TOPIC, "portal.registrations", True),
        ("operator", READ, TOPIC, "registration.events.dlq", True),
        ("operator", DESCRIBE, GROUP, "funding", True),
        ("operator", READ, GROUP, "funding", False),
        ("operator", WRITE, TOPIC, OPERATIONS_COMMANDS, True),
        ("operator", WRITE, TOPIC, "funding.decisions", False),
        ("operator", WRITE, TOPIC, "registration.events.dlq", False),
        ("operator", DESCRIBE, CLUSTER, "kafka-cluster", True),
        ("admin", WRITE, TOPIC, "funding.decisions", True),
        ("admin", Operation.ALTER, CLUSTER, "kafka-cluster", True),
    ],
)
def test_grants(
    principal: str, operation: Operation, resource: ResourceType, name: str, allowed: bool
) -> None:
    assert ACL.principal(principal).allows(operation, resource, name) is allowed


@pytest.mark.parametrize("topic", TOPICS)
def test_only_the_owners_and_admin_write_a_topic(topic: str) -> None:
    owners = {spec.name for spec in SERVICE_SPECS if topic in spec.owns or topic == spec.relay_state_topic}
    owners |= {spec.name for spec in SERVICE_SPECS if topic in spec.dead_letter_topics}
    if topic == OPERATIONS_RESULTS:
        owners |= {spec.name for spec in SERVICE_SPECS}
    if topic == OPERATIONS_COMMANDS:
        owners.add("operator")
    if topic in ("portal.seminars", "portal.registrations"):
        owners.add("portal")
    writers = {p.name for p in ACL.principals if p.allows(WRITE, TOPIC, topic)}
    assert writers == owners | {"admin"}


@pytest.mark.parametrize("service", SERVICE_SPECS, ids=lambda service: service.name)
def test_a_service_reads_what_it_consumes_its_dead_letters_and_its_relay_state_and_nothing_else(
    service: Service,
) -> None:
    principal = ACL.principal(service.name)
    readable = {topic for topic in TOPICS if principal.allows(READ, TOPIC, topic)}
    assert readable == {*service.consumes, *service.dead_letter_topics, service.relay_state_topic}
    assert principal.allows(READ, GROUP, service.consumer_group)
    assert principal.allows(WRITE, TXN, service.transactional_id)


def test_the_relay_transactional_ids_and_state_topics_are_the_ones_the_code_uses() -> None:
    for spec in SERVICE_SPECS:
        relay = OutboxRelay(
            service=spec.name,
            dsn="",
            pool=cast(Pool, None),  # built, never started: no connection is made
            bootstrap_servers="",
            topics=Topics("t1."),
        )
        assert relay._transactional_id == "t1." + spec.transactional_id
        assert spec.relay_state_topic == relay_state_topic(spec.name)


def test_every_topic_the_acl_names_is_a_contract_topic() -> None:
    assert ACL.topics() <= set(TOPICS)
    assert {dlq_topic(topic) for spec in SERVICE_SPECS for topic in spec.consumes} <= ACL.topics()


PREFIXES = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}\.", fullmatch=True)


@given(PREFIXES)
def test_a_prefix_grants_on_the_prefixed_names_what_the_file_grants_on_the_plain_ones(prefix: str) -> None:
    expanded = expand_for_prefix(ACL, prefix)
    for principal in ACL.principals:
        prefixed = expanded.principal(principal.name)
        for operation in (READ, WRITE, DESCRIBE):
            for topic in TOPICS:
                assert prefixed.allows(operation, TOPIC, prefix + topic) is principal.allows(
                    operation, TOPIC, topic
                )
                if not principal.super_user:
                    assert not prefixed.allows(operation, TOPIC, topic), "an unprefixed name stays ungranted"
    assert expanded.principal("operator").allows(READ, TOPIC, prefix + "anything")


def test_a_prefix_turns_the_wildcard_into_a_prefix_and_leaves_the_cluster_alone() -> None:
    operator = ACL.for_prefix("t9.").principal("operator")
    topics = [rule for rule in operator.acls if rule.resource is TOPIC and READ in rule.operations]
    assert [(rule.name, rule.pattern) for rule in topics] == [("t9.", PatternType.PREFIX)]
    cluster = [rule for rule in operator.acls if rule.resource is CLUSTER]
    assert [rule.name for rule in cluster] == ["kafka-cluster"]
    assert ACL.for_prefix("") == ACL


VALID_RULE = "{resource: topic, name: a, operations: [Read]}"


def one_principal(rules: str, extra: str = "") -> str:
    return f"version: 1\nprincipals: [{{name: p, description: d, acls: [{rules}]{extra}}}]"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (f"version: 2\nprincipals: [{{name: p, description: d, acls: [{VALID_RULE}]}}]", "version"),
        (f"version: 1\nprincipals: [{{name: p, description: d, acls: [{VALID_RULE}], x: 1}}]", "extra"),
        ("version: 1\nprincipals: [{name: p, description: d, acls: []}]", "at least 1"),
        (
            one_principal("{resource: topic, name: 7, operations: [Read]}"),
            "string",
        ),
        (
            one_principal("{resource: topic, name: a, operations: Read}"),
            "tuple",
        ),
        (
            one_principal("{resource: topic, name: a, operations: [Fly]}"),
            "Read",
        ),
        (
            one_principal("{resource: group, name: a, operations: [Write]}"),
            "do not apply",
        ),
        (
            one_principal("{resource: cluster, name: c, operations: [Describe]}"),
            "kafka-cluster",
        ),
        (
            one_principal("{resource: topic, name: '*', pattern: prefix, operations: [Read]}"),
            "stands alone",
        ),
        (
            one_principal("{resource: topic, name: a, operations: [Read, Read]}"),
            "twice",
        ),
        (f"version: 1\nprincipals: [{{name: P!, description: d, acls: [{VALID_RULE}]}}]", "pattern"),
        (
            f"version: 1\nprincipals: [{{name: p, description: d, acls: [{VALID_RULE}]}},"
            f" {{name: p, description: e, acls: [{VALID_RULE}]}}]",
            "declared twice",
        ),
        ("- a list", "mapping"),
    ],
)
def test_an_invalid_file_is_refused(text: str, complaint: str) -> None:
    with pytest.raises((ValidationError, ValueError)) as raised:
        parse_acl(text)
    assert complaint in str(raised.value)


def test_a_minimal_file_loads_into_the_typed_model() -> None:
    acl = parse_acl(f"version: 1\nprincipals: [{{name: p, description: d, acls: [{VALID_RULE}]}}]")
    assert isinstance(acl, AclFile)
    rule = acl.principal("p").acls[0]
    assert (rule.resource, rule.name, rule.pattern, rule.operations) == (
        TOPIC,
        "a",
        PatternType.LITERAL,
        (READ,),
    )
    with pytest.raises(KeyError):
        acl.principal("q")


def test_bindings_spell_the_rules_as_kafka_does() -> None:
    bindings = ACL.for_prefix("t1.").bindings()
    assert (
        AclBinding("User:funding", "TRANSACTIONAL_ID", "t1.funding-outbox-relay", "LITERAL", "WRITE")
        in bindings
    )
    assert AclBinding("User:operator", "TOPIC", "t1.", "PREFIXED", "DESCRIBE_CONFIGS") in bindings
    assert AclBinding("User:operator", "CLUSTER", "kafka-cluster", "LITERAL", "DESCRIBE") in bindings
    assert AclBinding("User:admin", "TOPIC", "t1.", "PREFIXED", "ALL") in bindings
    assert len(bindings) == sum(len(rule.operations) for p in ACL.principals for rule in p.acls)
    assert {b.principal for b in bindings} == {f"User:{name}" for name in ACL.names}
