"""Health of every part of a running stack, and consumer lag per topic."""

from __future__ import annotations

import asyncio
import json
import smtplib
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lotse.credentials import database_login, kafka_security
from shared.kafka import client_options
from shared.topics import Topics

SERVICE_TOPICS = {
    "registration": ["portal.seminars", "portal.registrations"],
    "funding": ["registration.events"],
    "notification": ["registration.events", "funding.decisions"],
}


@dataclass(frozen=True)
class HealthCheck:
    component: str
    healthy: bool
    detail: str


@dataclass(frozen=True)
class ConsumerLag:
    group: str
    topic: str
    lag: int


async def check_kafka(bootstrap: str) -> HealthCheck:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=3000, **client_options(kafka_security())
    )
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        topics = await admin.list_topics()
        await admin.close()
        return HealthCheck("kafka", True, f"{bootstrap}, {len(topics)} topics")
    except Exception as exc:
        return HealthCheck("kafka", False, f"{bootstrap}: {exc!r}")


async def check_database(service: str, dsn: str) -> HealthCheck:
    try:
        login, password = database_login(dsn)
        conn = await asyncpg.connect(
            login, password=password.get_secret_value() if password else None, timeout=3
        )
        version = await conn.fetchval(
            "SELECT max(version) FROM schema_migrations WHERE namespace = $1", service
        )
        await conn.close()
        return HealthCheck(f"database {service}", True, f"migrated to {version}")
    except Exception as exc:
        return HealthCheck(f"database {service}", False, repr(exc))


def check_smtp(host: str, port: int) -> HealthCheck:
    try:
        with smtplib.SMTP(host, port, timeout=3) as smtp:
            code, _ = smtp.ehlo()
        return HealthCheck("smtp", code == 250, f"{host}:{port} EHLO {code}")
    except OSError as exc:
        return HealthCheck("smtp", False, f"{host}:{port}: {exc!r}")


async def check_service(name: str, host: str, port: int) -> HealthCheck:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=3)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), timeout=3)
        writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        healthy = head.startswith(b"HTTP/1.1 200")
        checks = json.loads(body).get("checks", {}) if body else {}
        return HealthCheck(f"service {name}", healthy, f"{host}:{port} {checks}")
    except (OSError, TimeoutError, ValueError) as exc:
        return HealthCheck(f"service {name}", False, f"{host}:{port}: {exc!r}")


async def consumer_lag(bootstrap: str, topics: Topics) -> list[ConsumerLag]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(kafka_security()))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, **client_options(kafka_security())
    )
    await admin.start()
    await consumer.start()
    try:
        lags: list[ConsumerLag] = []
        names = [
            topics.prefix + topic for service_topics in SERVICE_TOPICS.values() for topic in service_topics
        ]
        partition_counts = {
            described["topic"]: len(described["partitions"])
            for described in await admin.describe_topics(sorted(set(names)))
            if described["error_code"] == 0
        }
        for service, service_topics in SERVICE_TOPICS.items():
            group = topics.prefix + service
            committed = await admin.list_consumer_group_offsets(group)
            for topic in service_topics:
                name = topics.prefix + topic
                partitions = [TopicPartition(name, p) for p in range(partition_counts.get(name, 0))]
                if not partitions:
                    continue
                ends = await consumer.end_offsets(partitions)
                lag = 0
                for tp in partitions:
                    done = committed.get(tp)
                    lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
                lags.append(ConsumerLag(group, name, lag))
        return lags
    finally:
        await consumer.stop()
        await admin.close()


async def wait_until_consumed(
    bootstrap: str, topics: Topics, service: str, topic: str, timeout: float = 120
) -> None:
    """Return once `service` has committed every message now on `topic` (its lag is 0)."""
    group, name = topics.prefix + service, topics.prefix + topic
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        lags = await consumer_lag(bootstrap, topics)
        lag = next((entry.lag for entry in lags if (entry.group, entry.topic) == (group, name)), None)
        if lag == 0:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"{service} has not consumed {name} within {timeout:.0f} s (lag {lag})")
        await asyncio.sleep(0.5)
