"""Readiness decisions: a worker with work in hand but no progress, and a relay whose rows wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.health import Progress
from shared.outbox import relay_stalled


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_worker_without_work_is_never_stalled() -> None:
    clock = Clock()
    progress = Progress(clock)
    clock.now += 3600
    assert not progress.stalled(30)


def test_work_in_hand_without_progress_stalls_and_progress_clears_it() -> None:
    clock = Clock()
    progress = Progress(clock)
    progress.begin()
    clock.now += 20
    assert not progress.stalled(30)
    progress.failed()
    progress.begin()  # the same batch again after a rewind: still the first time
    clock.now += 20
    assert progress.stalled(30)
    progress.advance()  # one message of it went through
    assert not progress.stalled(30)
    clock.now += 31
    assert progress.stalled(30)
    progress.finish()
    assert not progress.stalled(30)


def test_progress_without_work_in_hand_does_not_create_work() -> None:
    clock = Clock()
    progress = Progress(clock)
    progress.advance()
    clock.now += 100
    assert not progress.stalled(30)


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AFTER = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("oldest_waiting", "last_published", "stalled"),
    [
        (None, None, False),  # nothing to publish
        (None, 3600, False),
        (10, None, False),  # waiting, but not long yet
        (31, None, True),  # waiting long, nothing ever published
        (31, 5, False),  # a backlog that moves: the last row left 5 s ago
        (31, 31, True),  # waiting long, and nothing left for as long
        (3600, 29, False),
    ],
)
def test_the_relay_is_stalled_when_rows_wait_and_none_leave(
    oldest_waiting: int | None, last_published: int | None, stalled: bool
) -> None:
    def ago(seconds: int | None) -> datetime | None:
        return None if seconds is None else NOW - timedelta(seconds=seconds)

    assert relay_stalled(ago(oldest_waiting), ago(last_published), NOW, AFTER) is stalled


def test_failed_work_that_keeps_coming_back_stays_in_hand() -> None:
    clock = Clock()
    progress = Progress(clock)
    for _ in range(5):  # rewound and redelivered, again and again
        progress.begin()
        clock.now += 10
        progress.failed()
        clock.now += 1
    assert progress.stalled(30)


def test_failed_work_that_does_not_come_back_was_taken_elsewhere() -> None:
    clock = Clock()
    progress = Progress(clock)
    progress.begin()
    clock.now += 40
    progress.failed()
    assert progress.stalled(30)
    clock.now += 31  # a rebalance gave its partitions to another instance
    assert not progress.stalled(30)
