"""Helpers for the outbox tests: a migrated scratch database, rows to relay, and the check that
every row reached Kafka once and in order per key."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from shared.db import Connection
from shared.events import SeminarCancelled, new_envelope
from shared.migrations import apply_migrations
from shared.outbox import OutboxMessage, enqueue
from tests.conftest import DatabaseFactory
from tests.support.kafka import Record, header

REPO = Path(__file__).resolve().parents[3]
NO_MIGRATIONS = REPO / "tests" / "integration" / "shared" / "no_migrations"


async def migrated(make_database: DatabaseFactory) -> tuple[str, Connection]:
    """A scratch database with the shared migrations only, and a connection to it."""
    dsn = await make_database("registration")
    conn = await asyncpg.connect(dsn)
    NO_MIGRATIONS.mkdir(exist_ok=True)
    await apply_migrations(conn, NO_MIGRATIONS, "relaytest")
    return dsn, conn


async def write_outbox(conn: Connection, topic: str, count: int, keys: int) -> list[str]:
    """Enqueue `count` rows over `keys` keys in one transaction; returns their event ids in id order."""
    event_ids = []
    async with conn.transaction():
        messages = []
        for index in range(count):
            env = new_envelope(
                "seminar.cancelled",
                SeminarCancelled(seminar_id=f"S{index}"),
                source="test",
                correlation_id=None,
            )
            event_ids.append(str(env.event_id))
            messages.append(OutboxMessage(topic, f"key-{index % keys}", env))
        await enqueue(conn, messages)
    return event_ids


def assert_exactly_once_in_order(records: Sequence[Record], event_ids: list[str]) -> None:
    published = [header(r, "event_id") or "" for r in records]
    assert sorted(published) == sorted(event_ids), "every row published exactly once"
    position = {event_id: index for index, event_id in enumerate(event_ids)}
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        per_key[record.key].append(position[header(record, "event_id") or ""])
    for key, order in per_key.items():
        assert order == sorted(order), f"order of key {key!r} kept"


async def unpublished(conn: Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count


async def until_all_published(conn: Connection, attempts: int = 300) -> None:
    for _ in range(attempts):
        if not await unpublished(conn):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{await unpublished(conn)} outbox rows still unpublished")
