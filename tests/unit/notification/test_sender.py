"""The sender loop without SMTP or database: what it claims, and that it survives its own errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from typing import Any

import pytest

from services.notification import store
from services.notification.sender import Sender, SmtpConnections
from services.notification.settings import NotificationSettings
from shared.topics import Topics
from tests.support.waiting import wait_until

SETTINGS = NotificationSettings(sender_poll_interval_seconds=0.01, sender_concurrency=4)


def claimed_email() -> store.ClaimedEmail:
    return store.ClaimedEmail(
        id=uuid.uuid4(),
        registration_id="R-1",
        kommune_key="03159",
        template="registration_accepted",
        recipient="kontakt@kommune.example",
        message=b"Subject: Test\r\n\r\nHallo\r\n",
        correlation_id=uuid.uuid4(),
        attempts=0,
        resends=0,
    )


class NoDatabase:
    def acquire(self) -> Any:
        raise RuntimeError("no database in this test")


async def started_sender(monkeypatch: pytest.MonkeyPatch, claim_due: Any, send: Any) -> Sender:
    """A running sender whose database claims and SMTP deliveries are the test's functions."""
    monkeypatch.setattr(store, "claim_due", claim_due)
    monkeypatch.setattr(SmtpConnections, "send", send)
    sender = Sender(pool=NoDatabase, settings=SETTINGS, topics=Topics())
    await sender.start()
    return sender


async def test_an_email_in_flight_is_never_claimed_again_by_its_own_sender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A live but slow SMTP exchange outlasts the lease: the row is due again, yet not sent again."""
    email = claimed_email()
    claims: list[set[uuid.UUID]] = []
    sends: list[uuid.UUID] = []
    release = asyncio.Event()

    async def claim_due(
        pool: Any, limit: int, lease_seconds: float, exclude: Collection[uuid.UUID] = ()
    ) -> list[store.ClaimedEmail]:
        claims.append(set(exclude))
        # As if its lease had run out: the email is due again unless the claim leaves it out.
        return [] if email.id in exclude else [email]

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        sends.append(email.id)
        await release.wait()

    running = await started_sender(monkeypatch, claim_due, send)
    try:

        async def claimed_on() -> bool:
            return len(claims) >= 5 or len(sends) > 1

        await wait_until(claimed_on, timeout=10)
        assert sends == [email.id]
        assert all(email.id in excluded for excluded in claims[1:])
    finally:
        release.set()
        await running.stop()


async def test_an_unexpected_error_in_the_loop_is_survived(monkeypatch: pytest.MonkeyPatch) -> None:
    email = claimed_email()
    claims = 0
    sends: list[uuid.UUID] = []

    async def claim_due(
        pool: Any, limit: int, lease_seconds: float, exclude: Collection[uuid.UUID] = ()
    ) -> list[store.ClaimedEmail]:
        nonlocal claims
        claims += 1
        if claims <= 2:
            raise ValueError("a bug, not a lost database connection")
        return [] if sends else [email]

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        sends.append(email.id)

    running = await started_sender(monkeypatch, claim_due, send)
    try:

        async def sent() -> bool:
            return bool(sends)

        await wait_until(sent, timeout=10)
        assert sends == [email.id]
        assert running.running
    finally:
        await running.stop()
