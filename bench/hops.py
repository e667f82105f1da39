"""Where a registration's time goes on its way to the funding decision's letter, hop by hop.

Each registration of a latency phase leaves seven instants (seconds since the epoch, one clock,
as everything runs on one machine):
- `occurred_at`: the portal's event, taken as it is published;
- `registration_commit`: registration's outbox row of its outcome (the transaction's now(), that
  is its start: the commit follows within the same unit of work);
- `registration_publish`: the outcome's record timestamp on registration.events (the relay's send);
- `funding_commit`, `funding_publish`: the same for the first decision on funding.decisions;
- `notification_commit`: the decision letter's row in notification's emails table;
- `smtp_accepted`: the moment the SMTP server accepted that letter.
The segments between consecutive instants add up to the whole path; percentiles per segment show
the slow one. Pure: the benchmark collects the instants (bench/run.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from bench.stats import Latencies

HOPS = (
    "occurred_at",
    "registration_commit",
    "registration_publish",
    "funding_commit",
    "funding_publish",
    "notification_commit",
    "smtp_accepted",
)
SEGMENTS = tuple(f"{a} -> {b}" for a, b in itertools.pairwise(HOPS))


def breakdown(paths: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """Per segment, the latencies (s) over the registrations that have both of its instants; and
    how many registrations have the whole path."""
    segments: dict[str, list[float]] = {segment: [] for segment in SEGMENTS}
    complete = 0
    for instants in paths.values():
        if all(hop in instants for hop in HOPS):
            complete += 1
        for segment, (start, end) in zip(SEGMENTS, itertools.pairwise(HOPS), strict=True):
            if start in instants and end in instants:
                segments[segment].append(instants[end] - instants[start])
    return {
        "complete_paths": complete,
        "segments_s": {segment: asdict(Latencies.of(values)) for segment, values in segments.items()},
    }


def record(paths: dict[str, dict[str, float]], hop: str, instants: Sequence[tuple[str, float]]) -> None:
    """Add each registration's first instant of `hop` (a relay may publish twice, a retried
    transaction may leave a later row: the first is when the hop was done)."""
    if hop not in HOPS:
        raise ValueError(f"unknown hop {hop!r}")
    for registration_id, instant in instants:
        known = paths.setdefault(registration_id, {})
        if hop not in known or instant < known[hop]:
            known[hop] = instant
