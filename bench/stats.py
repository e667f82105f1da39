"""Pure figures from timestamps: rates, percentiles and per-second series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by the nearest-rank method; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError("q must lie between 0 and 100")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rate(count: int, start: float, end: float | None) -> float | None:
    """Events per second between two instants; None when the end is unknown or not after the start."""
    if end is None or end <= start:
        return None
    return count / (end - start)


def ratio(ours: float | None, floor: float | None) -> float | None:
    if ours is None or not floor:
        return None
    return ours / floor


@dataclass(frozen=True)
class Latencies:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Latencies:
        return cls(
            count=len(values),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            max=max(values) if values else None,
        )


def per_second(times: Sequence[float], start: float, width: float = 1.0) -> list[int]:
    """How many instants fall into each bucket of `width` seconds from `start` (earlier ones are dropped)."""
    counts: list[int] = []
    for instant in times:
        if instant < start:
            continue
        index = int((instant - start) // width)
        if index >= len(counts):
            counts.extend([0] * (index + 1 - len(counts)))
        counts[index] += 1
    return counts


def percentile_series(
    samples: Sequence[tuple[float, float]], start: float, q: float, width: float = 1.0
) -> list[float | None]:
    """Per bucket of (instant, value) samples from `start`: the q-th percentile of the values."""
    buckets: list[list[float]] = []
    for instant, value in samples:
        if instant < start:
            continue
        index = int((instant - start) // width)
        if index >= len(buckets):
            buckets.extend([] for _ in range(index + 1 - len(buckets)))
        buckets[index].append(value)
    return [percentile(bucket, q) for bucket in buckets]
