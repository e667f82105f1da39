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
# Where each outbox relay records the ids of its last committed Kafka transaction, inside that
# same transaction, so that a relay restarted after a crash never publishes a row twice.
OUTBOX_RELAY_STATE = "outbox.relay-state"

DLQ_SUFFIX = ".dlq"

# Kommune-keyed topics need enough partitions to spread load over several instances.
KOMMUNE_KEYED_PARTITIONS = 6
SEMINAR_KEYED_PARTITIONS = 3

_CONSUMED = (PORTAL_SEMINARS, PORTAL_REGISTRATIONS, REGISTRATION_EVENTS, FUNDING_DECISIONS)


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


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
    def outbox_relay_state(self) -> str:
        return self.prefix + OUTBOX_RELAY_STATE

    def all(self) -> list[TopicSpec]:
        """Every topic the system uses, including a dead-letter topic for every consumed topic."""
        base = [
            TopicSpec(PORTAL_SEMINARS, SEMINAR_KEYED_PARTITIONS),
            TopicSpec(PORTAL_REGISTRATIONS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(REGISTRATION_EVENTS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(FUNDING_DECISIONS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(NOTIFICATION_EVENTS, KOMMUNE_KEYED_PARTITIONS),
            TopicSpec(OUTBOX_RELAY_STATE, 1),
        ]
        dlqs = [TopicSpec(dlq_topic(t.name), t.partitions) for t in base if t.name in _CONSUMED]
        return [TopicSpec(self.prefix + t.name, t.partitions) for t in base + dlqs]


def all_topics(prefix: str = "") -> list[TopicSpec]:
    return Topics(prefix).all()
