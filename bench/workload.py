"""What the benchmark offers: seminars with room for everyone, registrations spread over the
directory's Kommunen in Lower Saxony and over many seminars, published as a portal would."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from lotse.scenario import ScenarioSize, Seminar, _seminars
from lotse.scenario import _envelope as portal_envelope
from shared.directory import Directory
from shared.kafka import make_producer
from shared.topics import Topics

SEMINAR_CAPACITY_LIMIT = 10_000  # the contract's bound on `capacity`


def envelope(event_type: str, data: dict[str, Any]) -> bytes:
    """A portal's envelope (the demo scenario's), with occurred_at taken now."""
    return json.dumps(portal_envelope(event_type, data)).encode()


def bench_seminars(count: int, registrations: int) -> list[Seminar]:
    """Half in the unlimited 2021-2022 period, half in 2023; every seminar can seat its share."""
    size = ScenarioSize(capacity=min(SEMINAR_CAPACITY_LIMIT, -(-registrations // count) + 10))
    rng = random.Random(8)
    return _seminars(rng, 2022, count // 2, size) + _seminars(rng, 2023, count - count // 2, size)


@dataclass
class Workload:
    """Registration n goes to Kommune n mod K and seminar n mod S; ids and emails are unique."""

    kommune_keys: list[str]
    seminars: list[Seminar]
    next_number: int = 0
    submitted_at: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_directory(cls, directory: Directory, seminars: list[Seminar]) -> Workload:
        keys = sorted(kommune.key for kommune in directory.in_land("03"))
        return cls(kommune_keys=keys, seminars=seminars)

    def registrations(self, count: int, phase: str) -> Iterator[tuple[str, bytes, str]]:
        """(key, value, registration_id); the envelope's occurred_at is taken when it is built."""
        for _ in range(count):
            number = self.next_number
            self.next_number += 1
            key = self.kommune_keys[number % len(self.kommune_keys)]
            seminar = self.seminars[number % len(self.seminars)]
            registration_id = f"BENCH-{phase}-{number:07d}"
            data = {
                "registration_id": registration_id,
                "kommune_key": key,
                "seminar_id": seminar.seminar_id,
                "participant": {
                    "given_name": "Anna",
                    "family_name": "Müller",
                    "email": f"teilnehmer{number}@kommunen.example",
                },
                "contact_email": f"digitallotsen.{key}@kommunen.example",
            }
            self.submitted_at[registration_id] = time.time()
            yield key, envelope("registration.submitted", data), registration_id


class Portal:
    """A raw idempotent producer, the way upstream portals publish."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.topics = topics
        self.producer: AIOKafkaProducer = make_producer(bootstrap, client_id="bench-portal", linger_ms=5)

    async def __aenter__(self) -> Portal:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def publish_seminars(self, seminars: list[Seminar]) -> None:
        futures = [
            await self.producer.send(
                self.topics.portal_seminars,
                envelope("seminar.published", seminar.data()),
                key=seminar.seminar_id.encode(),
            )
            for seminar in seminars
        ]
        await asyncio.gather(*futures)

    async def burst(self, topic: str, messages: Iterator[tuple[str, bytes, str]]) -> float:
        """Send as fast as the producer takes them; returns the instant of the first send."""
        first: float | None = None
        futures = []
        for key, value, _ in messages:
            if first is None:
                first = time.time()
            futures.append(await self.producer.send(topic, value, key=key.encode()))
            if len(futures) >= 5_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
        return first if first is not None else time.time()

    async def steady(
        self, topic: str, workload: Workload, per_second: float, seconds: float, phase: str = "steady"
    ) -> float:
        """Offer `per_second` registrations for `seconds`, in 10 ms slices; returns the start."""
        start = time.time()
        total = int(per_second * seconds)
        sent = 0
        futures = []
        while sent < total:
            due = min(total, int((time.time() - start) * per_second) + 1)
            if due > sent:
                for key, value, _ in workload.registrations(due - sent, phase):
                    futures.append(await self.producer.send(topic, value, key=key.encode()))
                sent = due
            await asyncio.sleep(0.01)
        await asyncio.gather(*futures)
        return start
