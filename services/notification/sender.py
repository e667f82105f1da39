"""The sender loop: claim due emails, send them over reused SMTP connections, record the outcome.

Independent of the Kafka consumers, so a slow or failing SMTP server never holds up a partition.
Several instances share the work through leases taken with FOR UPDATE SKIP LOCKED. An email is
marked sent, with its `notification.sent` event, only after the server accepted it: a crash in
between sends it again (docs/adr/0004-email-delivery-duplicate-over-loss.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib
import asyncpg

from services.notification import store
from services.notification.backoff import Park, after_failure
from services.notification.settings import RECORD_GIVE_UP_SECONDS, NotificationSettings
from shared.db import TRANSIENT_ERRORS, retry_transient
from shared.events import ContractModel, NotificationFailed, NotificationSent, derived_event_id, new_envelope
from shared.logging import get_logger
from shared.outbox import OutboxMessage, enqueue
from shared.topics import Topics

log = get_logger(__name__)

SOURCE = "notification"
MAX_ERROR_LENGTH = 2000
# The longest pause of the loop after it failed several times in a row.
MAX_LOOP_PAUSE_SECONDS = 30.0


@dataclass(frozen=True)
class Failure:
    permanent: bool
    code: int | None
    description: str


def classify(exc: BaseException) -> Failure:
    """5xx replies are permanent; 4xx replies, timeouts and lost connections are temporary."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        code = max(codes, default=None)
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        return Failure(code is not None and 500 <= code < 600, code, f"recipient refused: {text}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Failure(500 <= exc.code < 600, exc.code, f"{exc.code} {exc.message}")
    return Failure(False, None, f"{type(exc).__name__}: {exc}")


class SmtpConnections:
    """A small pool of open SMTP sessions, reused from one email to the next."""

    def __init__(self, settings: NotificationSettings) -> None:
        self._settings = settings
        self._idle: list[aiosmtplib.SMTP] = []

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password is not None else None,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_seconds,
        )

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        reused = self._idle.pop() if self._idle else None
        if reused is not None and reused.is_connected:
            try:
                await reused.sendmail(sender, [recipient], message)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                # The server closed an idle session: that says nothing about this email.
                reused.close()
            except BaseException:
                reused.close()
                raise
            else:
                self._keep(reused)
                return
        client = self._new_client()
        try:
            await client.connect()
            await client.sendmail(sender, [recipient], message)
        except BaseException:
            # After an error the session's state is unclear: never hand it to the next email.
            client.close()
            raise
        self._keep(client)

    def _keep(self, client: aiosmtplib.SMTP) -> None:
        if len(self._idle) < self._settings.sender_concurrency:
            self._idle.append(client)
        else:
            client.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await client.quit()
            client.close()


class Sender:
    def __init__(
        self,
        *,
        pool: Callable[[], asyncpg.Pool],
        settings: NotificationSettings,
        topics: Topics,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._topics = topics
        self._jitter = jitter
        self._smtp = SmtpConnections(settings)
        self._envelope_sender = settings.sender.addr_spec
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        # The emails those tasks deliver: never claimed again while under way, even once their
        # lease ran out (a delivery longer than the lease would otherwise be sent twice at once).
        self._sending: set[uuid.UUID] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="notification-sender")

    async def stop(self) -> None:
        """Stop claiming, let deliveries under way finish and be recorded, then close the sessions.

        A delivery cut off here is sent again once its lease ends: a duplicate rather than a loss.
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._in_flight:
            _, unfinished = await asyncio.wait(
                set(self._in_flight), timeout=self._settings.smtp_timeout_seconds * 2
            )
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        await self._smtp.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run(self) -> None:
        """Claim and deliver until cancelled. No error ends it: it would stop all email."""
        failures = 0
        while True:
            try:
                idle = await self._claim_and_start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                pause = min(
                    MAX_LOOP_PAUSE_SECONDS,
                    self._settings.sender_poll_interval_seconds * 2 ** min(failures, 16),
                )
                if isinstance(exc, TRANSIENT_ERRORS):
                    log.warning("sender cannot reach the database", error=repr(exc), retry_in_seconds=pause)
                else:
                    log.exception("sender loop failed, going on", error=repr(exc), retry_in_seconds=pause)
                await asyncio.sleep(pause)
                continue
            failures = 0
            if idle:
                await asyncio.sleep(self._settings.sender_poll_interval_seconds)

    async def _claim_and_start(self) -> bool:
        """Claim due emails and start delivering them; True when fewer were due than wanted."""
        settings = self._settings
        free = settings.sender_concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
            return False
        wanted = min(free, settings.sender_batch_size)
        claimed = await store.claim_due(
            self._pool(), wanted, settings.sender_lease_seconds, exclude=set(self._sending)
        )
        for email in claimed:
            if email.id in self._sending:
                continue
            self._sending.add(email.id)
            task = asyncio.create_task(self._deliver(email))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            task.add_done_callback(functools.partial(self._delivered, email.id))
        return len(claimed) < wanted

    def _delivered(self, email_id: uuid.UUID, _: asyncio.Task[None]) -> None:
        self._sending.discard(email_id)

    async def _deliver(self, email: store.ClaimedEmail) -> None:
        try:
            try:
                # Within the lease, whatever the server does: past it another sender may claim it.
                async with asyncio.timeout(self._settings.sender_delivery_deadline_seconds):
                    await self._smtp.send(self._envelope_sender, email.recipient, email.message)
            except Exception as exc:
                failure = classify(exc)
                await retry_transient(
                    lambda: self._record_failure(email, failure), give_up_after=RECORD_GIVE_UP_SECONDS
                )
            else:
                await retry_transient(lambda: self._record_sent(email), give_up_after=RECORD_GIVE_UP_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The lease runs out and the email is sent again: a duplicate, never a loss.
            log.error("could not record a delivery", registration_id=email.registration_id, error=repr(exc))

    async def _record_sent(self, email: store.ClaimedEmail) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            if await store.mark_sent(conn, email.id):
                await enqueue(conn, [self._sent_event(email)])
        log.info("email sent", registration_id=email.registration_id, template=email.template)

    async def _record_failure(self, email: store.ClaimedEmail, failure: Failure) -> None:
        s = self._settings
        attempts = email.attempts + 1
        decision = after_failure(
            attempts,
            permanent=failure.permanent,
            max_permanent_attempts=s.notification_max_permanent_attempts,
            base=s.notification_backoff_base_seconds,
            maximum=s.notification_backoff_max_seconds,
            jitter=self._jitter(),
        )
        error = failure.description[:MAX_ERROR_LENGTH]
        async with self._pool().acquire() as conn, conn.transaction():
            if isinstance(decision, Park):
                if await store.mark_parked(conn, email.id, error):
                    await enqueue(conn, [self._failed_event(email, error)])
                log.warning(
                    "email parked",
                    registration_id=email.registration_id,
                    template=email.template,
                    smtp_code=failure.code,
                    attempts=attempts,
                )
                return
            await store.schedule_retry(conn, email.id, error, decision.delay_seconds)
        # Never parked for a temporary failure, but after this many attempts someone should look.
        report = log.error if attempts >= s.notification_max_attempts else log.info
        report(
            "email still undelivered, retrying later"
            if attempts >= s.notification_max_attempts
            else "email delivery failed, retrying later",
            registration_id=email.registration_id,
            template=email.template,
            smtp_code=failure.code,
            attempts=attempts,
            retry_in_seconds=round(decision.delay_seconds, 3),
        )

    def _sent_event(self, email: store.ClaimedEmail) -> OutboxMessage:
        return self._result_event(email, "notification.sent", NotificationSent(**_identity(email)))

    def _failed_event(self, email: store.ClaimedEmail, error: str) -> OutboxMessage:
        data = NotificationFailed(**_identity(email), error=error)
        return self._result_event(email, "notification.failed", data)

    def _result_event(self, email: store.ClaimedEmail, event_type: str, data: ContractModel) -> OutboxMessage:
        envelope = new_envelope(
            event_type,
            data,
            source=SOURCE,
            correlation_id=email.correlation_id,
            # Per resend, so that an operator's resend reports its own outcome again.
            event_id=derived_event_id(email.id, f"{event_type}:{email.resends}"),
        )
        return OutboxMessage(self._topics.notification_events, email.kommune_key, envelope)


def _identity(email: store.ClaimedEmail) -> dict[str, str]:
    return {
        "notification_id": str(email.id),
        "registration_id": email.registration_id,
        "template": email.template,
        "to": email.recipient,
    }
