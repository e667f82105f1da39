"""The sender loop without SMTP or database: what it claims, what it records in which transaction,
and that it survives its own errors."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any, cast

import aiosmtplib
import pytest

from services.notification import sender as sender_module
from services.notification import store
from services.notification.compose import UnsafeAddressError, letter
from services.notification.domain import planned_email_json
from services.notification.sender import Sender, SmtpConnections, classify
from services.notification.settings import NotificationSettings
from shared.db import Pool
from shared.outbox import OutboxMessage
from shared.topics import Topics
from tests.support.waiting import wait_until
from tests.unit.notification.letters import planned_for

SETTINGS = NotificationSettings(sender_poll_interval_seconds=0.01, sender_concurrency=4)


def claimed_email(
    message: bytes | None = b"Subject: Test\r\n\r\nHallo\r\n", facts: str | None = None
) -> store.ClaimedEmail:
    email_id = uuid.uuid4()
    return store.ClaimedEmail(
        id=email_id,
        registration_id="R-1",
        kommune_key="03159",
        template="registration_accepted",
        recipient=f"kontakt-{email_id.hex[:8]}@kommune.example",
        message=message,
        facts=facts,
        correlation_id=uuid.uuid4(),
        attempts=0,
        resends=0,
        claim_token=uuid.uuid4(),
    )


class NoDatabase:
    def acquire(self) -> Any:
        raise RuntimeError("no database in this test")

    def is_closing(self) -> bool:
        return False


async def started_sender(monkeypatch: pytest.MonkeyPatch, claim_due: Any, send: Any) -> Sender:
    """A running sender whose database claims and SMTP deliveries are the test's functions."""
    monkeypatch.setattr(store, "claim_due", claim_due)
    monkeypatch.setattr(SmtpConnections, "send", send)
    sender = Sender(pool=lambda: cast(Pool, NoDatabase()), settings=SETTINGS, topics=Topics())
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


class Recorded:
    """What the sender wrote, transaction by transaction, through the store and the outbox."""

    def __init__(self) -> None:
        self.transactions: list[dict[str, Any]] = []

    def write(self, what: str, values: Sequence[Any]) -> None:
        if values:  # as the store, which writes nothing for nothing
            self.transactions[-1].setdefault(what, []).extend(values)


class FakeDatabase:
    """A pool's `acquire` and a connection's `transaction`: as much as the sender's recording uses."""

    def __init__(self, recorded: Recorded) -> None:
        self._recorded = recorded

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        yield self

    def is_closing(self) -> bool:
        return False

    # LISTEN on the fake connection: accepted, and nothing is ever notified.
    def add_termination_listener(self, callback: Any) -> None:
        pass

    def remove_termination_listener(self, callback: Any) -> None:
        pass

    async def add_listener(self, channel: str, callback: Any) -> None:
        pass

    async def remove_listener(self, channel: str, callback: Any) -> None:
        pass

    def is_closed(self) -> bool:
        return False

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        self._recorded.transactions.append({})
        yield


def recording_store(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    recorded = Recorded()

    async def mark_all_sent(conn: Any, email_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        recorded.write("sent", email_ids)
        return set(email_ids)

    async def park_all(conn: Any, failed: Sequence[tuple[store.ClaimedEmail, str]]) -> set[uuid.UUID]:
        recorded.write("parked", [email.id for email, _ in failed])
        return {email.id for email, _ in failed}

    async def schedule_retries(conn: Any, retries: Sequence[store.ScheduledRetry]) -> None:
        recorded.write("retried", [retry.email.id for retry in retries])

    async def release(conn: Any, emails: Sequence[store.ClaimedEmail]) -> None:
        recorded.write("released", [email.id for email in emails])

    async def enqueue(conn: Any, messages: Sequence[OutboxMessage]) -> None:
        recorded.write("events", [(m.envelope.event_type, m.envelope.data.notification_id) for m in messages])

    for name, function in {
        "mark_all_sent": mark_all_sent,
        "park_all": park_all,
        "schedule_retries": schedule_retries,
        "release": release,
    }.items():
        monkeypatch.setattr(store, name, function)
    monkeypatch.setattr(sender_module, "enqueue", enqueue)
    return recorded


def claiming_once(emails: list[store.ClaimedEmail]) -> Any:
    async def claim_due(
        pool: Any, limit: int, lease_seconds: float, exclude: Collection[uuid.UUID] = ()
    ) -> list[store.ClaimedEmail]:
        due, emails[:] = emails[:limit], emails[limit:]
        return due

    return claim_due


async def run_until_recorded(
    monkeypatch: pytest.MonkeyPatch,
    recorded: Recorded,
    emails: list[store.ClaimedEmail],
    send: Any,
    *,
    transactions: int = 1,
    settings: NotificationSettings = SETTINGS,
) -> list[dict[str, Any]]:
    """Run a sender on these claimed emails until it recorded that many transactions, then stop it."""
    monkeypatch.setattr(store, "claim_due", claiming_once(list(emails)))
    monkeypatch.setattr(SmtpConnections, "send", send)
    sender = Sender(pool=lambda: cast(Pool, FakeDatabase(recorded)), settings=settings, topics=Topics())
    await sender.start()
    try:

        async def recorded_enough() -> bool:
            return len(recorded.transactions) >= transactions

        await wait_until(recorded_enough, timeout=10)
    finally:
        await sender.stop()
    return recorded.transactions


async def test_a_rounds_outcomes_are_recorded_together_in_one_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = [claimed_email() for _ in range(6)]
    temporary, permanent = emails[1], emails[4]
    recorded = recording_store(monkeypatch)

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        await asyncio.sleep(0.01)
        if recipient == temporary.recipient:
            raise aiosmtplib.SMTPResponseException(451, "4.3.0 Try again later")
        if recipient == permanent.recipient:
            raise aiosmtplib.SMTPResponseException(554, "5.7.1 Refused")

    (transaction,) = await run_until_recorded(monkeypatch, recorded, emails, send)
    ids = [email.id for email in emails]
    assert sorted(transaction["sent"]) == sorted(set(ids) - {temporary.id, permanent.id})
    assert transaction["retried"] == [temporary.id]
    assert transaction["parked"] == [permanent.id]
    assert sorted(transaction["events"]) == sorted(
        [("notification.sent", str(i)) for i in transaction["sent"]]
        + [("notification.failed", str(permanent.id))]
    )
    assert "released" not in transaction


async def test_a_slow_delivery_does_not_hold_up_recording_the_rest_of_its_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Accepted emails left unrecorded would be sent again after a stop or crash."""
    emails = [claimed_email() for _ in range(4)]
    slow = emails[2]
    recorded = recording_store(monkeypatch)

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        await asyncio.sleep(1.0 if recipient == slow.recipient else 0.01)

    monkeypatch.setattr(sender_module, "RECORD_EARLY_SECONDS", 0.2)
    first, second = await run_until_recorded(monkeypatch, recorded, emails, send, transactions=2)
    assert first["sent"] == [email.id for email in emails if email is not slow]
    assert second["sent"] == [slow.id]
    assert second["events"] == [("notification.sent", str(slow.id))]


async def test_an_email_that_waits_too_long_for_a_session_is_handed_back_untried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lease covers a round only so long: what cannot start in time goes back, due at once."""
    emails = [claimed_email() for _ in range(3)]
    recorded = recording_store(monkeypatch)
    sends: list[str] = []

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        sends.append(recipient)
        await asyncio.sleep(0.3)

    monkeypatch.setattr(sender_module, "SENDER_START_WINDOW_SECONDS", 0.1)
    one_session = NotificationSettings(sender_poll_interval_seconds=0.01, sender_concurrency=1)
    (transaction,) = await run_until_recorded(monkeypatch, recorded, emails, send, settings=one_session)
    assert len(sends) == 1
    assert transaction["sent"] == [emails[0].id]
    assert transaction["released"] == [emails[1].id, emails[2].id]


async def test_a_stopping_sender_finishes_deliveries_under_way_and_hands_back_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = [claimed_email() for _ in range(5)]
    recorded = recording_store(monkeypatch)
    started = asyncio.Event()

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        started.set()
        await asyncio.sleep(0.2)

    monkeypatch.setattr(store, "claim_due", claiming_once(list(emails)))
    monkeypatch.setattr(SmtpConnections, "send", send)
    two_sessions = NotificationSettings(sender_poll_interval_seconds=0.01, sender_concurrency=2)
    sender = Sender(pool=lambda: cast(Pool, FakeDatabase(recorded)), settings=two_sessions, topics=Topics())
    await sender.start()
    await asyncio.wait_for(started.wait(), timeout=10)
    await sender.stop()
    (transaction,) = recorded.transactions
    assert transaction["sent"] == [emails[0].id, emails[1].id]
    assert transaction["released"] == [email.id for email in emails[2:]]
    assert sorted(transaction["events"]) == sorted(("notification.sent", str(e.id)) for e in emails[:2])


@pytest.mark.parametrize(
    "recipient",
    [
        "kontakt@kommune.example>\r\nRCPT TO:<attacker@evil.example",
        "kontakt@kommune.example, a@evil.example",
        "",
    ],
)
async def test_an_address_that_is_not_plain_is_refused_for_good_before_any_session(recipient: str) -> None:
    # Nothing listens on port 9: a connection attempt would fail otherwise.
    connections = SmtpConnections(NotificationSettings(smtp_port=9))
    with pytest.raises(UnsafeAddressError) as refused:
        await connections.send("digitallotsen@nsi-hannover.de", recipient, b"Subject: x\r\n\r\nx\r\n")
    failure = classify(refused.value)
    assert failure.permanent
    assert "evil" not in failure.description


async def test_a_sender_stopped_before_it_started_never_starts() -> None:
    """FastStream runs the shutdown hooks first when a stop comes during the startup."""
    sender = Sender(pool=lambda: cast(Pool, NoDatabase()), settings=SETTINGS, topics=Topics())
    await sender.stop()
    await sender.start()
    assert not sender.running


@pytest.mark.parametrize(
    "event_type", ["registration.accepted", "funding.approved", "registration.withdrawn"]
)
async def test_a_letter_is_composed_from_its_facts_when_it_is_sent(
    monkeypatch: pytest.MonkeyPatch, event_type: str
) -> None:
    """ADR 0024: the row holds the facts; the bytes on the wire are the letter they make, as the
    programme office of the settings signs it."""
    planned = planned_for(event_type)
    email = claimed_email(message=None, facts=planned_email_json(planned))
    recorded = recording_store(monkeypatch)
    sent: list[bytes] = []

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        sent.append(message)

    (transaction,) = await run_until_recorded(monkeypatch, recorded, [email], send)
    assert sent == [letter(planned, SETTINGS.office, SETTINGS.wording).message]
    assert transaction["sent"] == [email.id]


async def test_a_letter_recorded_with_its_bytes_is_sent_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """Letters recorded before ADR 0024 keep their bytes, and those are what is sent."""
    email = claimed_email(message=b"Subject: Recorded before\r\n\r\nHallo\r\n", facts=None)
    recorded = recording_store(monkeypatch)
    sent: list[bytes] = []

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        sent.append(message)

    (transaction,) = await run_until_recorded(monkeypatch, recorded, [email], send)
    assert sent == [b"Subject: Recorded before\r\n\r\nHallo\r\n"]
    assert transaction["sent"] == [email.id]


async def test_a_letter_whose_facts_cannot_be_composed_is_parked_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Composing again would fail again: parked with notification.failed, nothing sent."""
    broken = claimed_email(message=None, facts='{"template": "registration_accepted"}')
    fine = claimed_email()
    recorded = recording_store(monkeypatch)
    sends: list[str] = []

    async def send(self: SmtpConnections, sender: str, recipient: str, message: bytes) -> None:
        sends.append(recipient)

    (transaction,) = await run_until_recorded(monkeypatch, recorded, [broken, fine], send)
    assert sends == [fine.recipient]
    assert transaction["parked"] == [broken.id]
    assert transaction["sent"] == [fine.id]
    assert sorted(transaction["events"]) == sorted(
        [("notification.failed", str(broken.id)), ("notification.sent", str(fine.id))]
    )


def test_a_composing_failure_is_permanent_and_names_no_fact() -> None:
    failure = classify(sender_module.LetterNotComposedError("ValidationError"))
    assert failure.permanent
    assert failure.description == "letter could not be composed: ValidationError"
