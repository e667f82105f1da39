"""Topic names and their layout: the single source for services, provisioning and tests."""

from __future__ import annotations

from dataclasses import dataclass

PORTAL_SEMINARS = "portal.seminars"
PORTAL_REGISTRATIONS = "portal.registrations"
REGISTRATION_EVENTS = "registration.events"
FUNDING_DECISIONS = "funding.decisions"
NOTIFICATION_EVENTS = "notification.events"

DLQ_SUFFIX = ".dlq"

# Kommune-keyed topics need enough partitions to spread load over several instances.
KOMMUNE_KEYED_PARTITIONS = 6
SEMINAR_KEYED_PARTITIONS = 3


def dlq_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def all_topics() -> list[TopicSpec]:
    """Every topic the system uses, including dead-letter topics for every consumed topic."""
    base = [
        TopicSpec(PORTAL_SEMINARS, SEMINAR_KEYED_PARTITIONS),
        TopicSpec(PORTAL_REGISTRATIONS, KOMMUNE_KEYED_PARTITIONS),
        TopicSpec(REGISTRATION_EVENTS, KOMMUNE_KEYED_PARTITIONS),
        TopicSpec(FUNDING_DECISIONS, KOMMUNE_KEYED_PARTITIONS),
        TopicSpec(NOTIFICATION_EVENTS, KOMMUNE_KEYED_PARTITIONS),
    ]
    consumed = {PORTAL_SEMINARS, PORTAL_REGISTRATIONS, REGISTRATION_EVENTS, FUNDING_DECISIONS}
    dlqs = [TopicSpec(dlq_topic(t.name), t.partitions) for t in base if t.name in consumed]
    return base + dlqs
