"""A service runtime end to end: consume a batch, write the outbox, relay it, answer /livez,
/readyz and /healthz."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.events import PORTAL_SEMINAR_EVENTS, Envelope, SeminarCancelled, derived_event_id, new_envelope
from shared.outbox import OutboxMessage, relay_lock_id
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
        name="registration",
        settings=settings,
        database_url=dsn,
        http_port=unused_tcp_port,
        migrations=tmp_path,
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
        assert b'lotse_events_total{outcome="processed",service="registration"' in body
    finally:
        await app.stop()


class GatedEchoApplier(EchoApplier):
    """Echoes too, but the seminar GATED first waits for a lock that the test may hold."""

    async def apply_batch(
        self, uow: PostgresUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> list[OutboxMessage]:
        if any(event.data.seminar_id == "GATED" for event in events):
            await uow.connection.execute("SELECT id FROM gate FOR UPDATE")
        return await super().apply_batch(uow, events)


async def readiness(port: int) -> tuple[int, dict[str, bool]]:
    status, body = await http_get(port, "/readyz")
    checks: dict[str, bool] = json.loads(body)["checks"]
    return status, checks


async def until_ready_is(port: int, wanted: Callable[[int, dict[str, bool]], bool]) -> dict[str, bool]:
    status, checks = await readiness(port)
    for _ in range(300):
        if wanted(status, checks):
            return checks
        await asyncio.sleep(0.1)
        status, checks = await readiness(port)
    raise AssertionError(f"readiness stayed {status} {checks}")


async def test_readiness_turns_false_while_a_consumer_or_the_relay_makes_no_progress(
    kafka_bootstrap: str, topics: Topics, make_database: DatabaseFactory, tmp_path: Path, unused_tcp_port: int
) -> None:
    dsn = await make_database("registration")
    test_conn = await asyncpg.connect(dsn)
    await test_conn.execute("CREATE TABLE gate (id int PRIMARY KEY); INSERT INTO gate VALUES (1)")
    # Another instance leads the relay and has stopped: it holds the lock but publishes nothing.
    await test_conn.execute("SELECT pg_advisory_lock($1)", relay_lock_id("registration"))
    settings = CommonSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topics.prefix,
        readiness_stall_seconds=1.0,
        db_lock_timeout_seconds=0.2,
    )
    runtime = ServiceRuntime(
        name="registration",
        settings=settings,
        database_url=dsn,
        http_port=unused_tcp_port,
        migrations=tmp_path,
    )
    runtime.consume(
        topics.portal_seminars, PORTAL_SEMINAR_EVENTS, GatedEchoApplier(topics), PostgresUnitOfWork
    )
    app = runtime.finish_setup()
    await app.start()
    consumer_check = f"consumer:{topics.portal_seminars}"
    gate = await asyncpg.connect(dsn)
    try:
        checks = await until_ready_is(unused_tcp_port, lambda status, _: status == 200)
        assert set(checks) == {"database", "kafka", consumer_check, "outbox_relay"}

        # A consumer with a batch in hand that cannot go through (its lock is held elsewhere).
        gate_transaction = gate.transaction()
        await gate_transaction.start()
        await gate.execute("SELECT id FROM gate FOR UPDATE")
        await publish(
            kafka_bootstrap,
            topics.portal_seminars,
            [("GATED", envelope("seminar.cancelled", {"seminar_id": "GATED"}))],
        )
        checks = await until_ready_is(unused_tcp_port, lambda status, _: status == 503)
        assert checks == {"database": True, "kafka": True, consumer_check: False, "outbox_relay": True}
        assert (await http_get(unused_tcp_port, "/livez"))[0] == 200, "alive though not ready"
        assert (await http_get(unused_tcp_port, "/healthz"))[0] == 503, "/healthz is /readyz"

        # The batch goes through; its echo waits in the outbox, for a relay that never leads.
        await gate_transaction.rollback()
        checks = await until_ready_is(unused_tcp_port, lambda _, checks: checks[consumer_check])
        checks = await until_ready_is(unused_tcp_port, lambda _, checks: not checks["outbox_relay"])
        assert checks == {"database": True, "kafka": True, consumer_check: True, "outbox_relay": False}
        assert (await http_get(unused_tcp_port, "/livez"))[0] == 200

        # The stopped leader's lock goes: this instance's relay leads, publishes, and is ready.
        await test_conn.execute("SELECT pg_advisory_unlock($1)", relay_lock_id("registration"))
        await until_ready_is(unused_tcp_port, lambda status, _: status == 200)
        out = await read_topic(kafka_bootstrap, topics.notification_events, until=lambda r: len(r) >= 1)
        assert [v["data"]["seminar_id"] for v in values(out)] == ["GATED"]
    finally:
        await app.stop()
        await gate.close()
        await test_conn.close()
