"""Decisions before letters: notification yields while the decision path is behind.

Under a burst, composing, recording and sending letters took the CPU (of the machine, of
PostgreSQL and of Kafka) that registration and funding needed for the decisions. Nice levels do
not help, since much of notification's load runs inside PostgreSQL and Kafka. So notification
defers its own letter work by design: it samples the lag of the decision path (registration's
group on portal.registrations, funding's on registration.events), and while that is at least
`NOTIFICATION_YIELD_LAG` records, its letter consumers and its sender wait before their next
batch or round. Each wait ends after `NOTIFICATION_YIELD_MAX_SECONDS` whatever the lag, so letters
are delayed, never starved. A lag it cannot read (a broker outage, a missing ACL) is no reason
to hold letters: the gate opens (docs/adr/0023-decisions-before-letters.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter, Gauge

from shared.kafka import KafkaSecurity, client_options, make_admin
from shared.logging import get_logger
from shared.redaction import safe_error

log = get_logger(__name__)

DECISION_PATH_LAG = Gauge(
    "lotse_notification_decision_path_lag_messages",
    "The decision path's lag as notification last read it (registration's and funding's "
    "uncommitted records); -1 when it could not be read",
)
YIELDED_SECONDS = Counter(
    "lotse_notification_yielded_seconds_total",
    "Seconds the letter consumers and the sender waited for the decision path (ADR 0023)",
)


@dataclass(frozen=True)
class YieldRule:
    """When letters wait: `lag` records or more on the decision path (0: never), for at most
    `max_wait_seconds` per batch or round."""

    lag: int
    max_wait_seconds: float

    def holds_back(self, decision_lag: int | None) -> bool:
        """Whether letters should wait, given the decision path's lag (None: unknown)."""
        return self.lag > 0 and decision_lag is not None and decision_lag >= self.lag


def total_lag(
    end_offsets: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int | None]
) -> int:
    """Records not yet committed by their group, over all partitions. A partition the group never
    committed counts nothing: a group that does not run here (or has not started yet) is no
    decision path to yield to."""
    return sum(
        max(end - done, 0) for tp, end in end_offsets.items() if (done := committed.get(tp)) is not None
    )


class DecisionPathLag:
    """Reads the decision path's lag from Kafka: each (group, topic)'s committed offsets against
    the topic's end. Describe on those groups and topics is all it needs (deploy/acl.yaml)."""

    def __init__(
        self,
        bootstrap_servers: str,
        groups: Sequence[tuple[str, str]],
        *,
        security: KafkaSecurity | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._groups = tuple(groups)
        self._security = security
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def _start(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        admin = make_admin(self._bootstrap, client_id="notification-priority", security=self._security)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id="notification-priority",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **client_options(self._security),
        )
        try:
            await admin.start()
            await consumer.start()
        except BaseException:
            await _close(admin, consumer)
            raise
        return admin, consumer

    async def stop(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        await _close(admin, consumer)

    async def read(self) -> int:
        """The lag now; connects on first use, and again after a failed read."""
        if self._admin is None or self._consumer is None:
            self._admin, self._consumer = await self._start()
        try:
            lag = 0
            for group, topic in self._groups:
                partitions = await self._partitions_of(topic)
                committed = await self._admin.list_consumer_group_offsets(group, partitions=partitions)
                ends = await self._consumer.end_offsets(partitions)
                lag += total_lag(
                    ends,
                    {tp: meta.offset if meta.offset >= 0 else None for tp, meta in committed.items()},
                )
            return lag
        except BaseException:
            await self.stop()
            raise

    async def _partitions_of(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            assert self._admin is not None
            (described,) = await self._admin.describe_topics([topic])
            if described["error_code"] != 0 or not described["partitions"]:
                raise LookupError(f"topic {topic}: no partitions to read (error {described['error_code']})")
            numbers = sorted(int(partition["partition"]) for partition in described["partitions"])
            self._partitions[topic] = [TopicPartition(topic, number) for number in numbers]
        return self._partitions[topic]


async def _close(admin: AIOKafkaAdminClient | None, consumer: AIOKafkaConsumer | None) -> None:
    with contextlib.suppress(Exception):
        if consumer is not None:
            await consumer.stop()
    with contextlib.suppress(Exception):
        if admin is not None:
            await admin.close()


class DecisionsFirst:
    """The gate the letter consumers and the sender pass before each batch or round."""

    def __init__(
        self,
        rule: YieldRule,
        read_lag: Callable[[], Awaitable[int]],
        *,
        check_seconds: float,
    ) -> None:
        self.rule = rule
        self._read_lag = read_lag
        self._check_seconds = check_seconds
        self._open = asyncio.Event()
        self._open.set()
        self.decision_lag: int | None = None
        self.waited_seconds = 0.0  # in all, for the figures

    @property
    def holding_back(self) -> bool:
        return not self._open.is_set()

    def observe(self, decision_lag: int | None) -> None:
        """Take a new reading of the lag (None: it could not be read)."""
        self.decision_lag = decision_lag
        DECISION_PATH_LAG.set(-1 if decision_lag is None else decision_lag)
        if self.rule.holds_back(decision_lag):
            if self._open.is_set():
                log.info("letters yield to decisions", decision_lag=decision_lag)
            self._open.clear()
        else:
            if not self._open.is_set():
                log.info("letters resume", decision_lag=decision_lag)
            self._open.set()

    async def turn(self) -> None:
        """Return at once, or once the decision path caught up, or after the longest wait."""
        if self._open.is_set():
            return
        started = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._open.wait(), self.rule.max_wait_seconds)
        waited = time.monotonic() - started
        self.waited_seconds += waited
        YIELDED_SECONDS.inc(waited)

    async def watch(self) -> None:
        """Read the lag every `check_seconds` until cancelled."""
        failing = False
        while True:
            try:
                lag: int | None = await self._read_lag()
                if failing:
                    log.info("decision path lag readable again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("cannot read the decision path lag: letters go on", error=safe_error(exc))
                failing = True
                lag = None
            self.observe(lag)
            await asyncio.sleep(self._check_seconds)
