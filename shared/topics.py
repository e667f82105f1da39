"""Topic names and their layout: the single source for services, provisioning and tests.

A prefix (KAFKA_TOPIC_PREFIX, empty in production) gives a test its own set of topics, so that
tests never see each other's messages, nor those of a running stack.
"""

from __future__ import annotations

from dataclasses import dataclass

PORTAL_SEMINARS = "portal.seminars"
PORTAL_REGISTRATIONS = "portal.registrations"
REGISTRATION_EVENTS = "registration.events"
FUNDING_DECISIONS = "funding.decisions"
NOTIFICATION_EVENTS = "notification.events"
# Operators' commands (written by `lotse` as `operator`) and the services' results.
OPERATIONS_COMMANDS = "operations.commands"
OPERATIONS_RESULTS = "operations.results"
# Services whose outbox relays publish; each relay has its own state topic.
RELAY_SERVICES = ("registration", "funding", "notification")
# Where a relay records the rows of its last committed Kafka transaction, inside that same
# transaction, so that a relay restarted after a crash never publishes a row twice. Compacted:
# only the last record per key (the service) matters, and it must outlive any retention.
RELAY_STATE_CONFIG = (("cleanup.policy", "compact"),)

DLQ_SUFFIX = ".dlq"

# Kommune-keyed topics need enough partitions to spread load over several instances.
KOMMUNE_KEYED_PARTITIONS = 6
SEMINAR_KEYED_PARTITIONS = 3
# One partition: the commands keep one total order (what `lotse audit` lists), and their volume
# is that of people typing.
OPERATIONS_PARTITIONS = 1

_CONSUMED = (
    PORTAL_SEMINARS,
    PORTAL_REGISTRATIONS,
    REGISTRATION_EVENTS,
    FUNDING_DECISIONS,
    OPERATIONS_COMMANDS,
)


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


def relay_state_topic(service: str) -> str:
    return f"outbox.{service}.relay-state"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    # Topic-level configuration set when the topic is created (name, value).
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @property
    def portal_seminars(self) -> str:
        return self.prefix + PORTAL_SEMINARS

    @property
    def portal_registrations(self) -> str:
        return self.prefix + PORTAL_REGISTRATIONS

    @property
    def registration_events(self) -> str:
        return self.prefix + REGISTRATION_EVENTS

    @property
    def funding_decisions(self) -> str:
        return self.prefix + FUNDING_DECISIONS

    @property
    def notification_events(self) -> str:
        return self.prefix + NOTIFICATION_EVENTS

    @property
    def operations_commands(self) -> str:
        return self.prefix + OPERATIONS_COMMANDS

    @property
    def operations_results(self) -> str:
        return self.prefix + OPERATIONS_RESULTS

    def relay_state(self, service: str) -> str:
        """The topic of a service's outbox relay state (`outbox.<service>.relay-state`)."""
        return self.prefix + relay_state_topic(service)

    def all(self) -> list[TopicSpec]:
        """Every topic the system uses, including a dead-letter topic for every consumed topic."""
        base = [
            TopicSpec(PORTAL_SEMINARS, SEMINAR_KEYED_PARTITIONS),
            TopicSpec(PORTAL_REGISTRATIONS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(REGISTRATION_EVENTS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(FUNDING_DECISIONS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(NOTIFICATION_EVENTS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(OPERATIONS_COMMANDS, OPERATIONS_PARTITIONS),
            TopicSpec(OPERATIONS_RESULTS, OPERATIONS_PARTITIONS),
        ]
        states = [TopicSpec(relay_state_topic(s), 1, RELAY_STATE_CONFIG) for s in RELAY_SERVICES]
        dlqs = [TopicSpec(dlq_topic(t.name), t.partitions) for t in base if t.name in _CONSUMED]
        return [TopicSpec(self.prefix + t.name, t.partitions, t.config) for t in base + states + dlqs]


def all_topics(prefix: str = "") -> list[TopicSpec]:
    return Topics(prefix).all()
