"""The metric objects and the functions services call to set them, read back through the registry
/metrics serves."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from shared import metrics
from shared.metrics import (
    EMAIL_STATES,
    OutboxBacklog,
    OutboxBacklogProbe,
    PeriodFigures,
    consumer_lag,
    email_state,
    record_consumer_lag,
    record_dead_letters,
    record_emails,
    record_outbox_backlog,
    record_programme,
    record_readiness,
    sample_consumer_lag,
)


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_consumers_counters_keep_their_names_and_are_the_ones_exported_here() -> None:
    assert {metrics.EVENTS, metrics.BATCH_SECONDS} <= set(metrics.LOTSE_METRICS)
    assert {"lotse_events_total", "lotse_batch_seconds_count"} <= metrics.lotse_metric_names()


def test_importing_the_metrics_imports_no_consumer() -> None:
    # shared.kafka imports this module; the consumer imports shared.kafka (through the outbox).
    probe = "import sys, shared.metrics; print('shared.consumer' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_names_follow_the_conventions() -> None:
    names = metrics.lotse_metric_names()
    assert all(name.startswith("lotse_") for name in names)
    for metric in metrics.LOTSE_METRICS:
        for family in metric.describe():
            if family.type == "counter":
                assert f"{family.name}_total" in names
            assert not family.name.endswith(("_ms", "_milliseconds", "_cents")), family.name


@pytest.mark.parametrize(
    ("end_offsets", "committed", "expected"),
    [
        ({0: 10, 1: 5}, {0: 10, 1: 2}, {0: 0, 1: 3}),
        ({0: 7}, {0: None}, {0: 7}),  # never committed: everything since offset 0
        ({0: 7}, {}, {0: 7}),
        ({0: 3}, {0: 5}, {0: 0}),  # a commit ahead of a stale end offset is no negative lag
    ],
)
def test_consumer_lag_per_partition(
    end_offsets: dict[int, int], committed: dict[int, int | None], expected: dict[int, int]
) -> None:
    assert consumer_lag(end_offsets, committed) == expected


def lag(group: str, topic: str, partition: int) -> float | None:
    return value("lotse_consumer_lag_messages", group=group, topic=topic, partition=str(partition))


def test_lag_of_partitions_moved_to_another_instance_is_dropped() -> None:
    record_consumer_lag("g-lag", "registration.events", {0: 4, 1: 9})
    assert lag("g-lag", "registration.events", 1) == 9
    record_consumer_lag("g-lag", "registration.events", {0: 2})
    assert lag("g-lag", "registration.events", 0) == 2
    assert lag("g-lag", "registration.events", 1) is None


@dataclass(frozen=True)
class FakePartition:
    topic: str
    partition: int


class AssignedConsumer:
    """The three calls of an aiokafka consumer that sample_consumer_lag makes."""

    def __init__(self, ends: dict[FakePartition, int], committed: dict[FakePartition, int | None]) -> None:
        self.ends = ends
        self.commits = committed

    def assignment(self) -> set[FakePartition]:
        return set(self.ends)

    async def end_offsets(self, partitions: list[FakePartition]) -> dict[FakePartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def committed(self, tp: FakePartition) -> int | None:
        return self.commits[tp]


async def test_sample_consumer_lag_records_every_assigned_partition_and_forgets_revoked_ones() -> None:
    a0, a1, b0 = FakePartition("a", 0), FakePartition("a", 1), FakePartition("b", 0)
    held: Any = AssignedConsumer({a0: 10, a1: 4, b0: 3}, {a0: 6, a1: None, b0: 3})
    assert await sample_consumer_lag(held, "g-sample") == {"a": {0: 4, 1: 4}, "b": {0: 0}}
    assert lag("g-sample", "a", 1) == 4

    revoked: Any = AssignedConsumer({}, {})
    assert await sample_consumer_lag(revoked, "g-sample") == {"a": {}, "b": {}}
    assert lag("g-sample", "a", 0) is None
    assert lag("g-sample", "b", 0) is None


def test_outbox_backlog_and_the_age_of_its_oldest_row() -> None:
    record_outbox_backlog("svc-outbox", 12, 42.5)
    assert value("lotse_outbox_backlog_rows", service="svc-outbox") == 12
    assert value("lotse_outbox_oldest_unpublished_age_seconds", service="svc-outbox") == 42.5
    record_outbox_backlog("svc-outbox", 0, 42.5)  # an empty outbox has no oldest row
    assert value("lotse_outbox_oldest_unpublished_age_seconds", service="svc-outbox") == 0


async def test_the_outbox_probe_records_what_its_query_returns() -> None:
    answers = [OutboxBacklog(rows=3, oldest_age_seconds=7.0), OutboxBacklog(rows=0, oldest_age_seconds=0.0)]

    async def query() -> OutboxBacklog:
        return answers.pop(0)

    probe = OutboxBacklogProbe("svc-probe", query)
    assert await probe.sample() == OutboxBacklog(3, 7.0)
    assert value("lotse_outbox_backlog_rows", service="svc-probe") == 3
    assert value("lotse_outbox_oldest_unpublished_age_seconds", service="svc-probe") == 7
    await probe.sample()
    assert value("lotse_outbox_backlog_rows", service="svc-probe") == 0


@pytest.mark.parametrize(
    ("status", "attempts", "state"),
    [
        ("pending", 0, "pending"),
        ("pending", 3, "failed"),
        ("parked", 1, "parked"),
        ("sent", 1, None),
    ],
)
def test_email_state_of_a_row(status: str, attempts: int, state: str | None) -> None:
    assert email_state(status, attempts) == state


def test_emails_by_state_set_every_state() -> None:
    record_emails({"pending": 5, "parked": 2})
    assert [value("lotse_notification_emails", state=s) for s in EMAIL_STATES] == [5, 0, 2]
    with pytest.raises(ValueError, match="unknown email states"):
        record_emails({"sent": 1})


def test_dead_letter_series_exist_from_the_start() -> None:
    metrics.init_dead_letters("svc-init", ["portal.seminars", "portal.registrations"])
    assert value("lotse_dead_letters_total", service="svc-init", topic="portal.seminars") == 0
    record_dead_letters("svc-init", "portal.seminars")
    metrics.init_dead_letters("svc-init", ["portal.seminars"])  # again, after a rebalance: keeps the count
    assert value("lotse_dead_letters_total", service="svc-init", topic="portal.seminars") == 1


def test_dead_letters_count_per_source_topic() -> None:
    before = value("lotse_dead_letters_total", service="svc-dlq", topic="portal.registrations") or 0
    record_dead_letters("svc-dlq", "portal.registrations", 2)
    record_dead_letters("svc-dlq", "portal.registrations")
    record_dead_letters("svc-dlq", "portal.registrations", 0)
    assert value("lotse_dead_letters_total", service="svc-dlq", topic="portal.registrations") == before + 3


def test_programme_figures_in_euros() -> None:
    record_programme(
        [
            PeriodFigures("p-2023", budget_cents=20_000_000, approved_cents=1_250_050, released_cents=50),
            PeriodFigures("p-open", budget_cents=None, approved_cents=9_999, released_cents=0),
        ],
        {("p-2023", "budget"): 4, ("p-open", "quota"): 1},
        funded_kommunen=37,
    )
    assert value("lotse_funding_budget_euros", period="p-2023") == 200_000.0
    assert value("lotse_funding_budget_remaining_euros", period="p-2023") == 187_500.0
    # A period without a limit has no budget series: "nearly spent" cannot fire for it.
    assert value("lotse_funding_budget_remaining_euros", period="p-open") is None
    assert value("lotse_funding_waitlist_registrations", period="p-2023", kind="budget") == 4
    assert value("lotse_funding_waitlist_registrations", period="p-2023", kind="quota") == 0
    assert value("lotse_funding_waitlist_registrations", period="p-open", kind="quota") == 1
    assert value("lotse_funding_funded_kommunen") == 37


@given(
    budget=st.integers(0, 10**12),
    approved=st.integers(0, 10**12),
    released=st.integers(0, 10**12),
)
def test_remaining_is_budget_minus_approved_plus_released(budget: int, approved: int, released: int) -> None:
    figures = PeriodFigures("p", budget, approved, released)
    assert figures.remaining_cents == budget - approved + released
    assert PeriodFigures("p", None, approved, released).remaining_cents is None


@pytest.mark.parametrize(
    ("checks", "ready"),
    [
        ({"broker": True, "database": True}, True),
        ({"broker": True, "database": False}, False),
        ({}, False),  # nothing checked is not ready
    ],
)
def test_readiness_gauge(checks: dict[str, bool], ready: bool) -> None:
    assert record_readiness("svc-ready", checks) is ready
    assert value("lotse_service_ready", service="svc-ready") == (1 if ready else 0)


def test_faststream_middleware_writes_into_the_given_registry_under_the_service_name() -> None:
    registry = CollectorRegistry()
    middleware = metrics.prometheus_middleware("funding", registry)
    assert type(middleware).__name__ == "KafkaPrometheusMiddleware"
    exposition = generate_latest(registry).decode()
    assert "faststream_received_messages_total" in exposition
    assert "faststream_received_messages_total" in metrics.faststream_metric_names()
    assert "faststream_published_messages_total" in metrics.faststream_metric_names()


def test_a_scrape_shows_the_metrics() -> None:
    record_outbox_backlog("svc-scrape", 1, 1.0)
    exposition = generate_latest(REGISTRY).decode()
    assert 'lotse_outbox_backlog_rows{service="svc-scrape"} 1.0' in exposition
    assert "# TYPE lotse_dead_letters_total counter" in exposition


def test_the_consumers_series_exist_at_zero_from_the_start() -> None:
    metrics.init_events("svc-init", ["t.init"])
    for outcome in metrics.EVENT_OUTCOMES:
        assert value("lotse_events_total", service="svc-init", topic="t.init", outcome=outcome) == 0
    assert value("lotse_batch_seconds_count", service="svc-init", topic="t.init") == 0
