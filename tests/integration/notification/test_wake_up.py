"""An idle sender starts on a committed email at once: the commit notifies it (store.EMAILS_CHANNEL),
it does not wait for its poll."""

from __future__ import annotations

import asyncio

from services.notification import store
from services.notification.app import MIGRATIONS
from services.notification.compose import message_id
from services.notification.sender import Sender
from services.notification.settings import NotificationSettings
from shared.db import Pool, create_pool
from shared.migrations import apply_migrations
from shared.topics import Topics
from tests.integration.notification.smtp_sink import SmtpSink
from tests.unit.notification.letters import recorded_email

HOUR = 3600.0


async def idle(sender_pool: Pool) -> None:
    """Until the sender's listener holds its connection (it is LISTENing)."""
    for _ in range(100):
        listening = await sender_pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN%'"
        )
        if listening:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the sender never listened")


async def test_a_committed_email_wakes_an_idle_sender_long_before_its_poll(
    pool: Pool, sink: SmtpSink
) -> None:
    settings = NotificationSettings(
        smtp_port=sink.port, smtp_starttls="false", sender_poll_interval_seconds=HOUR
    )
    emails = {number: recorded_email(f"R-{number}") for number in (1, 2)}
    sender = Sender(pool=lambda: pool, settings=settings, topics=Topics())
    await sender.start()
    try:
        await idle(pool)
        await asyncio.sleep(0.5)  # its first claim found nothing: it waits for an hour or a notification
        for number in (1, 2):  # and again once it went idle after the first
            async with pool.acquire() as conn, conn.transaction():
                await store.record_emails(conn, [emails[number]])
            await sink.wait_for(number, timeout=30)
    finally:
        await sender.stop()
    assert sorted(m["Message-ID"] for m in sink.messages()) == sorted(
        message_id(email.event_id, email.template, settings.sender.domain) for email in emails.values()
    )


async def test_the_listening_connection_goes_back_when_the_pool_closes(notification_dsn: str) -> None:
    """A pool's close waits for every connection: the listener's must not keep it waiting, even
    if nobody stops the sender (a stop during the startup)."""
    own = await create_pool(notification_dsn, max_size=2)
    async with own.acquire() as conn:
        await apply_migrations(conn, MIGRATIONS, "notification")
    sender = Sender(
        pool=lambda: own, settings=NotificationSettings(sender_poll_interval_seconds=0.2), topics=Topics()
    )
    await sender.start()
    await idle(own)
    try:
        await asyncio.wait_for(own.close(), timeout=30)
    finally:
        await sender.stop()
    assert own.is_closing()
