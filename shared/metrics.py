"""The metrics every service exports on /metrics, and the small functions that set them.

Names follow the Prometheus conventions: prefix `lotse_`, base units in the name (`_seconds`,
`_messages`, `_rows`), `_total` for counters. Money is exported in euros (a float of the integer
cents divided by 100), because dashboards and alert thresholds read in euros; the contract and the
database keep integer cents. Every gauge is set by the service that owns the figure, from its own
database or consumer, so an instance reports only what it can see; dashboards and alerts aggregate
with `max` where several instances report the same figure.

`lotse_events_total` and `lotse_batch_seconds` are the batch consumer's (`EVENTS`, `BATCH_SECONDS`);
ADR 0015 lists all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from shared.db import TRANSIENT_ERRORS, Connection
from shared.logging import get_logger
from shared.redaction import safe_error

if TYPE_CHECKING:
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

log = get_logger(__name__)

EVENTS = Counter("lotse_events_total", "Consumed events by outcome", ["service", "topic", "outcome"])
BATCH_SECONDS = Histogram("lotse_batch_seconds", "Time to apply one consumed batch", ["service", "topic"])
CONSUMER_LAG = Gauge(
    "lotse_consumer_lag_messages",
    "Messages on a partition that its consumer group has not committed yet (end offset minus committed)",
    ["group", "topic", "partition"],
)
OUTBOX_BACKLOG_ROWS = Gauge(
    "lotse_outbox_backlog_rows",
    "Outbox rows the relay has not published yet",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "lotse_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox row the relay has not published yet; 0 when there is none",
    ["service"],
)
EMAILS = Gauge(
    "lotse_notification_emails",
    "Undelivered emails by state: pending (not tried yet), failed (failed at least once, a retry is"
    " due), parked (given up, waiting for an operator)",
    ["state"],
)
DEAD_LETTERS = Counter(
    "lotse_dead_letters_total",
    "Messages a service moved to <topic>.dlq, by the topic they came from",
    ["service", "topic"],
)
BUDGET = Gauge(
    "lotse_funding_budget_euros",
    "Budget of a funding period in euros (no series for a period without a limit)",
    ["period"],
)
BUDGET_REMAINING = Gauge(
    "lotse_funding_budget_remaining_euros",
    "Budget of a funding period not yet committed (budget - approved + released), in euros",
    ["period"],
)
WAITLIST = Gauge(
    "lotse_funding_waitlist_registrations",
    "Registrations on a period's funding waitlist, by kind: quota (the Kommune's quota is used up)"
    " or budget (the period's budget is used up)",
    ["period", "kind"],
)
FUNDED_KOMMUNEN = Gauge(
    "lotse_funding_funded_kommunen",
    "Kommunen with at least one approved, not released funding",
)
SERVICE_READY = Gauge(
    "lotse_service_ready",
    "1 while the service's readiness checks all pass (what /readyz answers with 200), else 0",
    ["service"],
)

# Everything above, for the tests that hold the dashboard and the alert rules to these names.
LOTSE_METRICS: tuple[MetricWrapperBase, ...] = (
    EVENTS,
    BATCH_SECONDS,
    CONSUMER_LAG,
    OUTBOX_BACKLOG_ROWS,
    OUTBOX_OLDEST_AGE,
    EMAILS,
    DEAD_LETTERS,
    BUDGET,
    BUDGET_REMAINING,
    WAITLIST,
    FUNDED_KOMMUNEN,
    SERVICE_READY,
)


EmailState = Literal["pending", "failed", "parked"]
EMAIL_STATES: tuple[EmailState, ...] = ("pending", "failed", "parked")
WaitlistKind = Literal["quota", "budget"]
WAITLIST_KINDS: tuple[WaitlistKind, ...] = ("quota", "budget")
# Waitlist reasons in the funding.waitlisted contract, by the kind of waitlist they put one on.
WAITLIST_KIND_OF_REASON: Mapping[str, WaitlistKind] = {
    "quota_exhausted": "quota",
    "budget_exhausted": "budget",
}

# FastStream's own metrics keep its default prefix, so that its published Grafana dashboard works.
FASTSTREAM_METRICS_PREFIX = "faststream"


def euros(cents: int) -> float:
    return cents / 100


def record_consumer_lag(group: str, topic: str, lag_by_partition: Mapping[int, int]) -> None:
    """Set the lag of every partition of `topic` this instance consumes for `group`, and drop the
    series of partitions it no longer holds (they moved to another instance in a rebalance)."""
    for partition in _partitions_reported.get((group, topic), set()) - set(lag_by_partition):
        CONSUMER_LAG.remove(group, topic, str(partition))
    for partition, lag in lag_by_partition.items():
        CONSUMER_LAG.labels(group, topic, str(partition)).set(max(lag, 0))
    _partitions_reported[(group, topic)] = set(lag_by_partition)


_partitions_reported: dict[tuple[str, str], set[int]] = {}


def consumer_lag(end_offsets: Mapping[int, int], committed: Mapping[int, int | None]) -> dict[int, int]:
    """Lag per partition: end offset minus committed offset; a partition without a commit lags by
    all its messages since offset 0 (retention may have removed some, so this is an upper bound)."""
    return {
        partition: max(end - (committed.get(partition) or 0), 0) for partition, end in end_offsets.items()
    }


async def sample_consumer_lag(
    consumer: Any, group: str, topics: Iterable[str] | None = None
) -> dict[str, dict[int, int]]:
    """Measure and record the lag of the partitions an aiokafka consumer holds for `group`:
    `sample_periodically("lag", lambda: sample_consumer_lag(consumer, group))`. `topics`, the
    topics this consumer subscribes to, limits which reported topics it may forget: several
    consumers of a group (one per topic) must not clear each other's series."""
    assigned = list(consumer.assignment())
    mine = None if topics is None else set(topics)
    by_topic: dict[str, dict[int, int]] = {
        topic: {} for topic in _topics_reported(group) if mine is None or topic in mine
    }
    if assigned:
        ends = await consumer.end_offsets(assigned)
        committed = {tp: await consumer.committed(tp) for tp in assigned}
        for tp in assigned:
            lag = consumer_lag({tp.partition: ends[tp]}, {tp.partition: committed[tp]})
            by_topic.setdefault(tp.topic, {}).update(lag)
    for topic, lags in by_topic.items():
        record_consumer_lag(group, topic, lags)
    return by_topic


def _topics_reported(group: str) -> list[str]:
    return [topic for reported_group, topic in _partitions_reported if reported_group == group]


def record_outbox_backlog(service: str, rows: int, oldest_age_seconds: float) -> None:
    OUTBOX_BACKLOG_ROWS.labels(service).set(rows)
    OUTBOX_OLDEST_AGE.labels(service).set(max(oldest_age_seconds, 0.0) if rows else 0.0)


def record_emails(counts: Mapping[str, int]) -> None:
    """Set every email state; a state missing from `counts` has none."""
    unknown = set(counts) - set(EMAIL_STATES)
    if unknown:
        raise ValueError(f"unknown email states {sorted(unknown)}; expected {EMAIL_STATES}")
    for state in EMAIL_STATES:
        EMAILS.labels(state).set(counts.get(state, 0))


def email_state(status: str, attempts: int) -> EmailState | None:
    """The gauge's state of an email row (`emails.status`, `emails.attempts`); None once sent."""
    if status == "parked":
        return "parked"
    if status == "pending":
        return "failed" if attempts > 0 else "pending"
    return None


def init_dead_letters(service: str, topics: Iterable[str]) -> None:
    """Create the series of the topics a service consumes at 0 on start-up: Prometheus's
    `increase()` cannot see the first dead letter of a series that appears with it."""
    for topic in topics:
        DEAD_LETTERS.labels(service, topic)


EVENT_OUTCOMES = ("processed", "duplicate", "dead_lettered")


def init_events(service: str, topics: Iterable[str]) -> None:
    """Create the consumer's series of these topics at 0 on start-up, for the same reason: a
    burst that ends between two scrapes would otherwise show no rate at all."""
    for topic in topics:
        for outcome in EVENT_OUTCOMES:
            EVENTS.labels(service, topic, outcome)
        BATCH_SECONDS.labels(service, topic)


def record_dead_letters(service: str, topic: str, count: int = 1) -> None:
    """Count messages moved to `<topic>.dlq`; `topic` is the topic they were consumed from."""
    if count:
        DEAD_LETTERS.labels(service, topic).inc(count)


@dataclass(frozen=True)
class PeriodFigures:
    period_id: str
    budget_cents: int | None  # None: the period has no limit
    approved_cents: int
    released_cents: int

    @property
    def remaining_cents(self) -> int | None:
        if self.budget_cents is None:
            return None
        return self.budget_cents - self.approved_cents + self.released_cents


def record_programme(
    periods: Iterable[PeriodFigures],
    waitlists: Mapping[tuple[str, WaitlistKind], int],
    funded_kommunen: int,
) -> None:
    """Set the programme's figures: budget and remaining budget per limited period, the waitlist
    lengths per period and kind (a period and kind missing from `waitlists` has none)."""
    period_ids = []
    for period in periods:
        period_ids.append(period.period_id)
        remaining = period.remaining_cents
        if period.budget_cents is None or remaining is None:
            continue
        BUDGET.labels(period.period_id).set(euros(period.budget_cents))
        BUDGET_REMAINING.labels(period.period_id).set(euros(remaining))
    for period_id in period_ids:
        for kind in WAITLIST_KINDS:
            WAITLIST.labels(period_id, kind).set(waitlists.get((period_id, kind), 0))
    FUNDED_KOMMUNEN.set(funded_kommunen)


def record_readiness(service: str, checks: Mapping[str, bool]) -> bool:
    """Set the readiness gauge from the checks behind /readyz; returns whether all pass."""
    ready = bool(checks) and all(checks.values())
    SERVICE_READY.labels(service).set(1 if ready else 0)
    return ready


# --- outbox backlog, measured from the service's own database -------------------------------------

OUTBOX_BACKLOG = """
SELECT count(*)::bigint AS rows,
       COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_age_seconds
FROM outbox
WHERE published_at IS NULL
"""


@dataclass(frozen=True)
class OutboxBacklog:
    rows: int
    oldest_age_seconds: float


async def query_outbox_backlog(conn: Connection) -> OutboxBacklog:
    row = await conn.fetchrow(OUTBOX_BACKLOG)
    assert row is not None  # an aggregate always returns a row
    return OutboxBacklog(rows=int(row["rows"]), oldest_age_seconds=float(row["oldest_age_seconds"]))


class OutboxBacklogProbe:
    """Reads the backlog with `query` (e.g. a pool's connection running query_outbox_backlog) and
    records it for `service`."""

    def __init__(self, service: str, query: Callable[[], Awaitable[OutboxBacklog]]) -> None:
        self.service = service
        self._query = query

    async def sample(self) -> OutboxBacklog:
        backlog = await self._query()
        record_outbox_backlog(self.service, backlog.rows, backlog.oldest_age_seconds)
        return backlog


SAMPLE_INTERVAL_SECONDS = 15.0


async def sample_periodically(
    name: str, sample: Callable[[], Awaitable[object]], *, interval_seconds: float = SAMPLE_INTERVAL_SECONDS
) -> None:
    """Run `sample` every `interval_seconds` until cancelled. A database that is away only delays
    the figures (the gauges keep their last value, and the readiness gauge says why)."""
    while True:
        try:
            await sample()
        except TRANSIENT_ERRORS as exc:
            log.warning("metrics sample failed", probe=name, error=safe_error(exc))
        await asyncio.sleep(interval_seconds)


# --- FastStream ----------------------------------------------------------------------------------


def prometheus_middleware(service: str, registry: CollectorRegistry = REGISTRY) -> KafkaPrometheusMiddleware:
    """FastStream's Prometheus middleware for a service's broker:
    `KafkaBroker(..., middlewares=[prometheus_middleware(service)])`. It exports
    `faststream_received_messages_total`, `faststream_published_messages_total` and the others in
    FASTSTREAM_METRIC_NAMES, labelled `app_name=<service>`, into the registry /metrics serves."""
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

    return KafkaPrometheusMiddleware(
        registry=registry, app_name=service, metrics_prefix=FASTSTREAM_METRICS_PREFIX
    )


def exposed_names(families: Iterable[Metric]) -> set[str]:
    """The sample names a scrape shows for these metric families (`_total` of a counter,
    `_bucket`, `_sum` and `_count` of a histogram, ...)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count", ""),
        "gauge": ("",),
        "info": ("_info",),
    }
    return {family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))}


def lotse_metric_names() -> set[str]:
    every = LOTSE_METRICS
    return exposed_names(family for metric in every for family in metric.describe())


def faststream_metric_names() -> set[str]:
    """What prometheus_middleware adds, read from a middleware made on a registry of its own."""
    registry = CollectorRegistry()
    prometheus_middleware("names", registry)
    return exposed_names(registry.collect())
