"""What shared.kafka changes in its libraries takes effect, or fails loudly: the relay's shorter
retry after CONCURRENT_TRANSACTIONS, and batch polls without FastStream's idle sleep."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import aiokafka.producer.sender as aiokafka_sender
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream.kafka.subscriber.usecase import BatchSubscriber

import shared.kafka
from shared.kafka import (
    CONCURRENT_TRANSACTIONS_RETRY_SECONDS,
    KafkaSecurity,
    make_broker,
    poll_batches_without_idle_sleep,
    retry_concurrent_transactions_sooner,
)


def test_aiokafka_retries_concurrent_transactions_after_the_shorter_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(aiokafka_sender, "BACKOFF_OVERRIDE", 0.02)
    retry_concurrent_transactions_sooner()
    assert aiokafka_sender.BACKOFF_OVERRIDE == CONCURRENT_TRANSACTIONS_RETRY_SECONDS < 0.02


def test_an_aiokafka_without_the_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aiokafka_sender, "BACKOFF_OVERRIDE")
    with pytest.raises(RuntimeError, match="BACKOFF_OVERRIDE"):
        retry_concurrent_transactions_sooner()


class FakeClock:
    """time.monotonic and asyncio.sleep for shared.kafka: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeConsumer:
    """getmany answers with `batches` after letting `waits` seconds pass on the clock."""

    def __init__(self, clock: FakeClock, batches: dict[TopicPartition, list[Any]], waits: float) -> None:
        self._clock, self._batches, self._waits = clock, batches, waits
        self.polls: list[tuple[int, int | None]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> dict[TopicPartition, list[Any]]:
        self.polls.append((timeout_ms, max_records))
        self._clock.now += self._waits
        return self._batches


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", partition, offset, 0, 0, None, b"v", None, 0, 1, headers=[])


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(shared.kafka, "time", SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(shared.kafka, "asyncio", SimpleNamespace(sleep=fake.sleep))
    monkeypatch.setattr(BatchSubscriber, "get_msg", BatchSubscriber.get_msg)  # restored after the test
    poll_batches_without_idle_sleep()
    return fake


SUBSCRIBER = SimpleNamespace(batch_timeout_ms=20, max_records=500)


@pytest.mark.parametrize(
    ("waits", "slept"),
    [
        (0.020, []),  # the poll waited its whole timeout: poll again at once
        (0.025, []),
        (0.0, [0.020]),  # empty at once (no assignment yet): sleep, never spin
        (0.015, [0.005]),
    ],
)
async def test_an_empty_poll_is_followed_by_a_sleep_only_for_what_it_did_not_wait(
    clock: FakeClock, waits: float, slept: list[float]
) -> None:
    consumer = FakeConsumer(clock, {}, waits)
    assert await BatchSubscriber.get_msg(SUBSCRIBER, consumer) == ()  # type: ignore[arg-type]
    assert consumer.polls == [(20, 500)]
    assert clock.slept == pytest.approx(slept)


async def test_a_poll_with_records_returns_them_all_in_partition_order_without_sleeping(
    clock: FakeClock,
) -> None:
    batches = {
        TopicPartition("t", 0): [record(0, 7), record(0, 8)],
        TopicPartition("t", 3): [record(3, 1)],
    }
    got = await BatchSubscriber.get_msg(SUBSCRIBER, FakeConsumer(clock, batches, 0.0))  # type: ignore[arg-type]
    assert [(r.partition, r.offset) for r in got] == [(0, 7), (0, 8), (3, 1)]
    assert clock.slept == []


def test_every_broker_the_services_make_polls_without_the_idle_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BatchSubscriber, "get_msg", BatchSubscriber.get_msg)
    make_broker("127.0.0.1:9", client_id="test", security=KafkaSecurity(protocol="PLAINTEXT"))
    assert BatchSubscriber.get_msg is shared.kafka._get_batch_sleeping_only_the_rest


def test_a_faststream_whose_batch_subscriber_changed_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BatchSubscriber, "__slots__", ("parser",))
    with pytest.raises(RuntimeError, match="BatchSubscriber changed"):
        poll_batches_without_idle_sleep()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def test_faststream_writes_no_line_per_batch_but_keeps_its_errors() -> None:
    broker = make_broker("127.0.0.1:9", client_id="test", security=KafkaSecurity(protocol="PLAINTEXT"))
    broker._setup_logger()  # what starting the broker does first
    access = broker.config.logger  # what FastStream's logging middleware writes through
    lines = Lines()
    logging.getLogger("faststream.access.kafka").addHandler(lines)
    try:
        access.log("Received")  # each batch's lines, at the broker's level
        access.log("Processed")
        access.log("ValueError: a handler failed", log_level=logging.ERROR)
    finally:
        logging.getLogger("faststream.access.kafka").removeHandler(lines)
    assert lines.lines == [(logging.ERROR, "ValueError: a handler failed")]
