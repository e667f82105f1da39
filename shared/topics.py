"""Topic names and their layout: the single source for services, provisioning and tests.

A prefix (KAFKA_TOPIC_PREFIX, empty in production) gives a test its own set of topics, so that
tests never see each other's messages, nor those of a running stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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

# Topics whose records carry personal data (docs/personal-data.md): the portals' registrations
# (names, addresses), registration's outcomes (the same), notification's results (the Kommune's
# address a letter went to), the operators' commands (every command carries its operator's login)
# and every dead-letter topic (a copy of whatever a producer sent).
# They keep their records for KAFKA_PERSONAL_DATA_RETENTION_HOURS only: that is how long an
# erased person's data may still be read on the topics.
PERSONAL_DATA_TOPICS = frozenset(
    {PORTAL_REGISTRATIONS, REGISTRATION_EVENTS, NOTIFICATION_EVENTS, OPERATIONS_COMMANDS}
)
PERSONAL_DATA_RETENTION_VARIABLE = "KAFKA_PERSONAL_DATA_RETENTION_HOURS"
# A week: a consumer may be down over a long weekend and a holiday, and an operator has the week
# to replay a dead letter, before its records are gone; an erased person's data is gone from the
# topics within the same week.
DEFAULT_PERSONAL_DATA_RETENTION_HOURS = 168
HOUR_MS = 3_600_000

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


def carries_personal_data(name: str) -> bool:
    """Whether a topic (without the prefix) carries personal data: dead-letter topics always."""
    return name in PERSONAL_DATA_TOPICS or name.endswith(DLQ_SUFFIX)


def personal_data_topic_config(hours: int) -> tuple[tuple[str, str], ...]:
    """retention.ms of the hours, and segment.ms of a seventh of them (at least an hour): Kafka
    deletes whole segments, and a segment is rolled only after segment.ms (default a week), so
    without it a record would outlive the retention by up to a week. A record is gone within
    the retention plus a seventh of it (plus the broker's 5-minute check)."""
    retention_ms = hours * HOUR_MS
    return (("retention.ms", str(retention_ms)), ("segment.ms", str(max(HOUR_MS, retention_ms // 7))))


def personal_data_retention_hours(environ: Mapping[str, str] = os.environ) -> int:
    """KAFKA_PERSONAL_DATA_RETENTION_HOURS, a whole number of hours of at least 1 (default 168)."""
    raw = environ.get(PERSONAL_DATA_RETENTION_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_PERSONAL_DATA_RETENTION_HOURS
    try:
        hours = int(raw)
    except ValueError:
        raise ValueError(
            f"{PERSONAL_DATA_RETENTION_VARIABLE} must be a whole number of hours, not {raw!r}"
        ) from None
    if hours < 1:
        raise ValueError(f"{PERSONAL_DATA_RETENTION_VARIABLE} must be at least 1 hour, not {hours}")
    return hours


def relay_state_topic(service: str) -> str:
    return f"outbox.{service}.relay-state"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    # Topic-level configuration set when the topic is created, and on an existing topic by
    # `shared.kafka.ensure_topics` (name, value).
    config: tuple[tuple[str, str], ...] = ()
    personal_data: bool = False


@dataclass(frozen=True)
class Topics:
    prefix: str = ""
    # retention of the topics with personal data; None: KAFKA_PERSONAL_DATA_RETENTION_HOURS.
    personal_data_retention_hours: int | None = None

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
        """Every topic the system uses, including a dead-letter topic for every consumed topic;
        those with personal data with their retention.ms."""
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
        retention = personal_data_topic_config(
            self.personal_data_retention_hours or personal_data_retention_hours()
        )
        return [
            TopicSpec(self.prefix + t.name, t.partitions, t.config + retention, personal_data=True)
            if carries_personal_data(t.name)
            else TopicSpec(self.prefix + t.name, t.partitions, t.config)
            for t in base + states + dlqs
        ]


def all_topics(prefix: str = "", personal_data_retention_hours: int | None = None) -> list[TopicSpec]:
    return Topics(prefix, personal_data_retention_hours).all()
