"""What the Kubernetes deployment is made of: the topics of the contract and the services.

The topics are those of `shared/topics.py` plus the ones `../shared/INTERFACES.md` fixes beyond
today's contract (`operations.commands`, `operations.results`, `outbox.<service>.relay-state` and
their dead-letter topics). Where `shared/topics.py` already knows a topic, its partition count is
the one used here, so the cluster and the local stack never differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploy.local.config import DEFAULT_HTTP_PORTS
from shared.topics import (
    DEFAULT_PERSONAL_DATA_RETENTION_HOURS,
    FUNDING_DECISIONS,
    KOMMUNE_KEYED_PARTITIONS,
    NOTIFICATION_EVENTS,
    PORTAL_REGISTRATIONS,
    PORTAL_SEMINARS,
    REGISTRATION_EVENTS,
    SEMINAR_KEYED_PARTITIONS,
    all_topics,
    carries_personal_data,
    dlq_topic,
    relay_state_topic,
)

SERVICES = ("registration", "funding", "notification")

OPERATIONS_COMMANDS = "operations.commands"
OPERATIONS_RESULTS = "operations.results"
# One partition: the operators' commands keep one total order (what `lotse audit` lists), and
# their volume is that of people typing.
OPERATIONS_PARTITIONS = 1
# The relay reads its last marker back from partition 0.
RELAY_STATE_PARTITIONS = 1

# retention.ms of the topics without personal data: Kafka's default (7 days), which the local
# stack's broker applies to every topic it creates.
DEFAULT_RETENTION_HOURS = 168
# KAFKA_PERSONAL_DATA_RETENTION_HOURS of this deployment: retention.ms of every topic that carries
# personal data (shared/topics.py says which; the ConfigMap holds the same value and
# deploy/k8s/check.py compares them). Strimzi's Topic Operator applies a changed value to the
# existing topics.
PERSONAL_DATA_RETENTION_HOURS = DEFAULT_PERSONAL_DATA_RETENTION_HOURS


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    # Names, addresses, or (dead letters) anything a producer sent: kept only for the
    # personal-data retention.
    personal_data: bool

    @property
    def retention_hours(self) -> int:
        return PERSONAL_DATA_RETENTION_HOURS if self.personal_data else DEFAULT_RETENTION_HOURS


@dataclass(frozen=True)
class Service:
    name: str
    http_port: int
    consumes: tuple[str, ...]
    owns: tuple[str, ...]

    @property
    def consumer_group(self) -> str:
        return self.name

    @property
    def transactional_id(self) -> str:
        return f"{self.name}-outbox-relay"

    @property
    def relay_state_topic(self) -> str:
        return relay_state_topic(self.name)

    @property
    def dead_letter_topics(self) -> tuple[str, ...]:
        return tuple(dlq_topic(topic) for topic in self.consumes)


SERVICE_SPECS = (
    Service(
        "registration",
        DEFAULT_HTTP_PORTS["registration"],
        consumes=(PORTAL_SEMINARS, PORTAL_REGISTRATIONS, OPERATIONS_COMMANDS),
        owns=(REGISTRATION_EVENTS,),
    ),
    Service(
        "funding",
        DEFAULT_HTTP_PORTS["funding"],
        consumes=(REGISTRATION_EVENTS, OPERATIONS_COMMANDS),
        owns=(FUNDING_DECISIONS,),
    ),
    Service(
        "notification",
        DEFAULT_HTTP_PORTS["notification"],
        consumes=(REGISTRATION_EVENTS, FUNDING_DECISIONS, OPERATIONS_COMMANDS),
        owns=(NOTIFICATION_EVENTS,),
    ),
)


def service(name: str) -> Service:
    for spec in SERVICE_SPECS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def contract_topics() -> tuple[Topic, ...]:
    """Every topic the deployed system uses, dead-letter topics included, in a stable order."""
    partitions: dict[str, int] = {
        PORTAL_SEMINARS: SEMINAR_KEYED_PARTITIONS,
        PORTAL_REGISTRATIONS: KOMMUNE_KEYED_PARTITIONS,
        REGISTRATION_EVENTS: KOMMUNE_KEYED_PARTITIONS,
        FUNDING_DECISIONS: KOMMUNE_KEYED_PARTITIONS,
        NOTIFICATION_EVENTS: KOMMUNE_KEYED_PARTITIONS,
        OPERATIONS_COMMANDS: OPERATIONS_PARTITIONS,
        OPERATIONS_RESULTS: OPERATIONS_PARTITIONS,
    }
    for name in SERVICES:
        partitions[relay_state_topic(name)] = RELAY_STATE_PARTITIONS
    consumed = {topic for spec in SERVICE_SPECS for topic in spec.consumes}
    for name in sorted(consumed):
        partitions[dlq_topic(name)] = partitions[name]
    # The local stack's layout wins for every topic it already has.
    for spec in all_topics():
        partitions[spec.name] = spec.partitions
    return tuple(
        Topic(name, count, personal_data=carries_personal_data(name)) for name, count in partitions.items()
    )


def topic(name: str) -> Topic:
    for spec in contract_topics():
        if spec.name == name:
            return spec
    raise KeyError(name)
