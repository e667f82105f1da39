"""A service runtime end to end: consume a batch, write the outbox, relay it, answer /healthz."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shared.events import PORTAL_SEMINAR_EVENTS, Envelope, SeminarCancelled, derived_event_id, new_envelope
from shared.outbox import OutboxMessage
from shared.runtime import ServiceRuntime
from shared.settings import CommonSettings
from shared.topics import Topics
from shared.unit_of_work import PostgresUnitOfWork
from tests.conftest import DatabaseFactory
from tests.support.kafka import envelope, header, publish, read_topic, values

pytestmark = pytest.mark.integration


class EchoApplier:
    """Publishes every cancelled seminar again on notification.events, keyed by the seminar."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    async def apply_batch(
        self, uow: PostgresUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> list[OutboxMessage]:
        return [
            OutboxMessage(
                self.topics.notification_events,
                event.data.seminar_id,
                new_envelope(
                    "seminar.cancelled",
                    SeminarCancelled(seminar_id=event.data.seminar_id),
                    source="echo",
                    correlation_id=event.effective_correlation_id,
                    event_id=derived_event_id(event.event_id, "echo"),
                ),
            )
            for event in events
        ]


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_runtime_consumes_relays_and_reports_health(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, tmp_path: Path, unused_tcp_port: int
) -> None:
    dsn = await make_database("registration")
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=topics.prefix)
    runtime = ServiceRuntime(
        name="echo", settings=settings, database_url=dsn, http_port=unused_tcp_port, migrations=tmp_path
    )
    runtime.consume(topics.portal_seminars, PORTAL_SEMINAR_EVENTS, EchoApplier(topics), PostgresUnitOfWork)
    app = runtime.finish_setup()
    await app.start()
    try:
        first = envelope("seminar.cancelled", {"seminar_id": "S1"})
        await publish(
            kafka_bootstrap,
            topics.portal_seminars,
            [
                ("S1", first),
                ("S2", b"not json"),
                ("S1", first),
                ("S3", envelope("seminar.cancelled", {"seminar_id": "S3"})),
            ],
        )
        out = await read_topic(
            kafka_bootstrap, topics.notification_events, until=lambda r: len(r) >= 2, settle=2
        )
        assert sorted(v["data"]["seminar_id"] for v in values(out)) == ["S1", "S3"]
        echoed = next(r for r in out if r.key == b"S1")
        assert values([echoed])[0]["correlation_id"] == first["event_id"]
        assert header(echoed, "event_type") == "seminar.cancelled"
        dead = await read_topic(kafka_bootstrap, topics.portal_seminars + ".dlq", until=lambda r: len(r) >= 1)
        assert dead[0].value == b"not json"
        status, body = await http_get(unused_tcp_port, "/healthz")
        assert status == 200, body
        status, body = await http_get(unused_tcp_port, "/metrics")
        assert status == 200
        assert b'lotse_events_total{outcome="processed",service="echo"' in body
    finally:
        await app.stop()
