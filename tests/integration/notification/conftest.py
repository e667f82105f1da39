"""Fixtures: a real SMTP sink and the notification service, started in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from services.notification.app import MIGRATIONS, build
from services.notification.settings import NotificationSettings
from shared.db import Pool, create_pool
from shared.migrations import apply_migrations
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.integration.notification.smtp_sink import SmtpSink, smtp_sink
from tests.support.service import ServiceFactory, in_process

# Small backoffs and fast polling: the tests wait for outcomes, this only shortens the wait.
TEST_SETTINGS: dict[str, Any] = {
    "smtp_host": "127.0.0.1",
    "smtp_timeout_seconds": 5,
    "notification_backoff_base_seconds": 0.05,
    "notification_backoff_max_seconds": 0.5,
    "notification_max_attempts": 20,
    "sender_poll_interval_seconds": 0.1,
    "outbox_poll_interval_seconds": 0.2,
}


@pytest.fixture
def sink(unused_tcp_port_factory: Callable[[], int]) -> Iterator[SmtpSink]:
    with smtp_sink(unused_tcp_port_factory()) as running:
        yield running


@pytest.fixture
async def notification_dsn(make_database: DatabaseFactory) -> str:
    return await make_database("notification")


@pytest.fixture
async def pool(notification_dsn: str) -> AsyncIterator[Pool]:
    """A pool on a migrated notification database, for tests of the store and the sender."""
    created = await create_pool(notification_dsn, max_size=4)
    try:
        async with created.acquire() as conn:
            await apply_migrations(conn, MIGRATIONS, "notification")
        yield created
    finally:
        await created.close()


@pytest.fixture
def notification_service(
    kafka_bootstrap: str,
    topics: Topics,
    notification_dsn: str,
    sink: SmtpSink,
    unused_tcp_port_factory: Callable[[], int],
) -> ServiceFactory:
    """Starts the service against the test's topics, database and SMTP sink; small backoffs."""
    return in_process(
        build,
        NotificationSettings,
        kafka_bootstrap=kafka_bootstrap,
        topics=topics,
        database_url=notification_dsn,
        free_port=unused_tcp_port_factory,
        smtp_port=sink.port,
        **TEST_SETTINGS,
    )


@pytest.fixture
async def notification_db(notification_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the service's database, for looking at its state from the outside."""
    conn = await asyncpg.connect(notification_dsn)
    yield conn
    await conn.close()
