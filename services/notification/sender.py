"""The sender loop: claim due emails, send them over reused SMTP connections, record the outcomes.

Independent of the Kafka consumers, so a slow or failing SMTP server never holds up a partition.
Several instances share the work through leases taken with FOR UPDATE SKIP LOCKED. An email is
marked sent, with its `notification.sent` event, only after the server accepted it: a crash in
between sends it again (docs/adr/0004-email-delivery-duplicate-over-loss.md). The outcomes of a
round of emails are recorded together, in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.typing import SMTPStatus

from services.notification import store
from services.notification.backoff import Park, Retry, after_failure
from services.notification.compose import LetterComposer, UnsafeAddressError, plain_address
from services.notification.settings import (
    RECORD_GIVE_UP_SECONDS,
    SENDER_START_WINDOW_SECONDS,
    NotificationSettings,
)
from shared.db import TRANSIENT_ERRORS, Connection, Pool, retry_transient
from shared.events import ContractModel, NotificationFailed, NotificationSent, derived_event_id, new_envelope
from shared.logging import get_logger
from shared.outbox import OutboxMessage, enqueue
from shared.redaction import safe_error
from shared.topics import Topics

log = get_logger(__name__)

SOURCE = "notification"
MAX_ERROR_LENGTH = 2000
# The longest pause of the loop after it failed several times in a row.
MAX_LOOP_PAUSE_SECONDS = 30.0


class LetterNotComposedError(Exception):
    """A recorded letter's message could not be composed from its facts: sending it again as it is
    would fail again, so it is parked (an operator resends it once the cause is fixed)."""


@dataclass(frozen=True)
class Failure:
    permanent: bool
    code: int | None
    description: str


def classify(exc: BaseException) -> Failure:
    """5xx replies are permanent; 4xx replies, timeouts and lost connections are temporary.

    An address that is not a plain addr-spec is refused before anything is sent, for good.
    """
    if isinstance(exc, UnsafeAddressError):
        return Failure(True, None, "address refused: not a plain email address")
    if isinstance(exc, LetterNotComposedError):
        return Failure(True, None, f"letter could not be composed: {exc}")
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
            start_tls=s.smtp_start_tls,
            validate_certs=True,
            cert_bundle=str(s.smtp_ca_file) if s.smtp_ca_file is not None else None,
            timeout=s.smtp_timeout_seconds,
        )

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        envelope = (plain_address(sender).encode("ascii"), plain_address(recipient).encode("ascii"))
        reused = self._idle.pop() if self._idle else None
        if reused is not None and reused.is_connected:
            try:
                await _transfer(reused, envelope, message)
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
            await _transfer(client, envelope, message)
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


@dataclass(frozen=True)
class Delivery:
    """What became of one claimed email in a round."""

    email: store.ClaimedEmail
    failure: Failure | None = None  # None: the server accepted it (unless released)
    released: bool = False  # never tried: the round was stopping, or its start window had passed


async def _transfer(client: aiosmtplib.SMTP, envelope: tuple[bytes, bytes], message: bytes) -> None:
    """MAIL, RCPT and DATA for one message to one recipient, with the replies aiosmtplib's
    `sendmail` would raise, but without its four parses of the two addresses per message (they
    are plain addr-specs, checked by `send`). A session with an error is closed, not reset."""
    sender, recipient = envelope
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()
    reply = await client.execute_command(b"MAIL", b"FROM:<" + sender + b">")
    if reply.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender.decode())
    reply = await client.execute_command(b"RCPT", b"TO:<" + recipient + b">")
    if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        refused = aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient.decode())
        raise aiosmtplib.SMTPRecipientsRefused([refused])
    await client.data(message)


# A round's outcomes are recorded once this long has passed and then when its slowest delivery
# ends: a slow server holds up only its own emails' recording.
RECORD_EARLY_SECONDS = 2.0


class Sender:
    """Sends in rounds: claim up to a batch of due emails, deliver them over at most
    `sender_concurrency` pooled SMTP sessions, then record every outcome of the round in one
    transaction. The next round is claimed as soon as a session is free and every email of the
    current one has started, so a slow delivery holds up its own round's recording, not the
    sending of the emails behind it.
    """

    def __init__(
        self,
        *,
        pool: Callable[[], Pool],
        settings: NotificationSettings,
        topics: Topics,
        jitter: Callable[[], float] = random.random,
        turn: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pool = pool
        # Awaited before each round is claimed: the decisions' turn first (priority.py).
        self._turn = turn
        self._settings = settings
        self._topics = topics
        self._jitter = jitter
        self._smtp = SmtpConnections(settings)
        self._compose = LetterComposer(settings.office, settings.wording)
        self._envelope_sender = settings.sender.addr_spec
        self._task: asyncio.Task[None] | None = None
        self._sessions = asyncio.Semaphore(settings.sender_concurrency)
        self._rounds: set[asyncio.Task[None]] = set()
        # The emails of the rounds under way, until recorded: never claimed again meanwhile, even
        # once their lease ran out (a delivery longer than the lease would be sent twice at once).
        self._sending: set[uuid.UUID] = set()
        self._waiting = 0  # claimed emails that wait for a session
        self._delivering = 0
        self._changed = asyncio.Event()
        self._due = asyncio.Event()  # set when a commit announced new emails (store.EMAILS_CHANNEL)
        self._listener: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        if self._stopping:
            # A stop during the startup runs the shutdown hooks before the startup ones end.
            return
        self._task = asyncio.create_task(self.run(), name="notification-sender")
        self._listener = asyncio.create_task(self._listen(), name="notification-sender-listener")

    def _on_due(self, *_: object) -> None:
        self._due.set()

    async def _listen_on(self, pool: Pool, conn: Connection) -> None:
        """Until the connection ends or the pool closes (its close waits for this connection)."""
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_close(_: object) -> None:
            if not closed.done():
                closed.set_result(None)

        conn.add_termination_listener(on_close)
        await conn.add_listener(store.EMAILS_CHANNEL, self._on_due)
        try:
            while not closed.done() and not pool.is_closing():
                await asyncio.wait({closed}, timeout=self._settings.sender_poll_interval_seconds)
        finally:
            if not conn.is_closed():
                await conn.remove_listener(store.EMAILS_CHANNEL, self._on_due)
            conn.remove_termination_listener(on_close)

    async def _listen(self) -> None:
        """Hold one pooled connection that LISTENs for committed new emails, so an idle sender
        starts on them at once instead of at its next poll. Lost with its connection (a database
        restart), it is taken again after a poll interval; meanwhile the poll still finds them."""
        while True:
            pool = self._pool()
            try:
                async with pool.acquire() as conn:
                    await self._listen_on(pool, conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not pool.is_closing():
                    log.warning("sender cannot listen for new emails", error=safe_error(exc))
            if pool.is_closing():
                return
            self._due.set()  # emails committed while it did not listen are due
            await asyncio.sleep(self._settings.sender_poll_interval_seconds)

    async def stop(self) -> None:
        """Stop claiming, let deliveries under way finish and be recorded, then close the sessions.

        Claimed emails not yet started are handed back, due at once. A delivery cut off here is
        sent again once its lease ends: a duplicate rather than a loss.
        """
        self._stopping = True
        for task in (self._task, self._listener):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._rounds:
            _, unfinished = await asyncio.wait(
                set(self._rounds), timeout=self._settings.smtp_timeout_seconds * 2
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
            # Cleared before the claim: a commit announced during it makes the next one come at once.
            self._due.clear()
            try:
                if self._turn is not None:
                    await self._turn()
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
                    log.warning(
                        "sender cannot reach the database", error=safe_error(exc), retry_in_seconds=pause
                    )
                else:
                    log.exception(
                        "sender loop failed, going on", error=safe_error(exc), retry_in_seconds=pause
                    )
                await asyncio.sleep(pause)
                continue
            failures = 0
            if idle:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), self._settings.sender_poll_interval_seconds)

    async def _claim_and_start(self) -> bool:
        """Claim a round of due emails and start it; True when fewer were due than wanted."""
        settings = self._settings
        if self._waiting or self._delivering >= settings.sender_concurrency:
            # Claim when a session is free and no claimed email waits for one any more.
            self._changed.clear()
            await self._changed.wait()
            return False
        wanted = settings.sender_batch_size
        claimed = await store.claim_due(
            self._pool(), wanted, settings.sender_lease_seconds, exclude=set(self._sending)
        )
        emails = [email for email in claimed if email.id not in self._sending]
        if emails:
            self._sending.update(email.id for email in emails)
            self._waiting += len(emails)
            task = asyncio.create_task(self._round(emails))
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)
        return len(claimed) < wanted

    async def _round(self, emails: list[store.ClaimedEmail]) -> None:
        """Deliver a round; record what is done after RECORD_EARLY_SECONDS, then the rest, so a
        slow delivery cannot leave the round's accepted emails unrecorded until a stop or crash
        (they would be sent again)."""
        claimed_at = asyncio.get_running_loop().time()
        tasks = [asyncio.create_task(self._deliver(email, claimed_at)) for email in emails]
        # The round's leases stay renewed until its outcomes are recorded; the lock keeps a
        # renewal from pushing back a retry or a hand-back just recorded.
        unrecorded = {email.id: email for email in emails}
        leases = asyncio.Lock()
        renewal = asyncio.create_task(self._renew_leases(unrecorded, leases))
        try:
            early, rest = await asyncio.wait(tasks, timeout=RECORD_EARLY_SECONDS)
            for part in (early, rest):
                if part:
                    await asyncio.wait(part)
                    deliveries = [task.result() for task in tasks if task in part]
                    async with leases:
                        await self._record_retrying(deliveries)
                        for delivery in deliveries:
                            unrecorded.pop(delivery.email.id, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The leases run out and the emails are sent again: duplicates, never a loss.
            log.error("could not record a round of deliveries", emails=len(emails), error=safe_error(exc))
        finally:
            renewal.cancel()
            for task in tasks:
                task.cancel()
            self._sending.difference_update(email.id for email in emails)
            self._changed.set()

    async def _renew_leases(
        self, unrecorded: dict[uuid.UUID, store.ClaimedEmail], lock: asyncio.Lock
    ) -> None:
        """Renew the leases of a round's unrecorded emails until cancelled. A failed renewal is
        retried at the next turn: if the lease runs out meanwhile another sender may send the
        email again, a duplicate rather than a loss (docs/adr/0004)."""
        while True:
            await asyncio.sleep(self._settings.sender_lease_renew_seconds)
            try:
                async with lock:
                    await store.renew_leases(
                        self._pool(), list(unrecorded.values()), self._settings.sender_lease_seconds
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "could not renew the leases of a round", emails=len(unrecorded), error=safe_error(exc)
                )

    async def _record_retrying(self, deliveries: Sequence[Delivery]) -> None:
        await retry_transient(lambda: self._record(deliveries), give_up_after=RECORD_GIVE_UP_SECONDS)

    async def _deliver(self, email: store.ClaimedEmail, claimed_at: float) -> Delivery:
        waiting = True
        try:
            async with self._sessions:
                waiting = False
                self._waiting -= 1
                self._changed.set()
                late = asyncio.get_running_loop().time() - claimed_at > SENDER_START_WINDOW_SECONDS
                if self._stopping or late:
                    return Delivery(email, released=True)
                self._delivering += 1
                try:
                    # Within the lease, whatever the server does: past it another sender may claim it.
                    async with asyncio.timeout(self._settings.sender_delivery_deadline_seconds):
                        message = self._message(email)
                        await self._smtp.send(self._envelope_sender, email.recipient, message)
                except Exception as exc:
                    return Delivery(email, failure=classify(exc))
                finally:
                    self._delivering -= 1
                    self._changed.set()
                return Delivery(email)
        finally:
            if waiting:
                self._waiting -= 1
                self._changed.set()

    def _message(self, email: store.ClaimedEmail) -> bytes:
        """The message to send: composed from the letter's facts (ADR 0024), the same bytes every
        time, or the bytes of a letter recorded before facts were."""
        if email.message is not None:
            return email.message
        if email.facts is None:  # the claim takes only emails with one or the other
            raise LetterNotComposedError("neither facts nor bytes held")
        try:
            return self._compose(email.facts)
        except UnsafeAddressError:
            raise
        except Exception as exc:
            # Only the class: the text could quote the facts, which hold personal data.
            raise LetterNotComposedError(type(exc).__name__) from exc

    async def _record(self, deliveries: Sequence[Delivery]) -> None:
        """Every outcome of a round, with its notification.sent / notification.failed events, in
        one transaction; then the logs."""
        s = self._settings
        sent = [d.email for d in deliveries if d.failure is None and not d.released]
        released = [d.email for d in deliveries if d.released]
        failed: list[tuple[store.ClaimedEmail, Failure, Park | Retry]] = []
        to_park: list[tuple[store.ClaimedEmail, str]] = []
        retries: list[store.ScheduledRetry] = []
        for d in deliveries:
            if d.failure is None:
                continue
            decision = after_failure(
                d.email.attempts + 1,
                permanent=d.failure.permanent,
                max_permanent_attempts=s.notification_max_permanent_attempts,
                base=s.notification_backoff_base_seconds,
                maximum=s.notification_backoff_max_seconds,
                jitter=self._jitter(),
            )
            failed.append((d.email, d.failure, decision))
            error = _error(d.failure)
            if isinstance(decision, Park):
                to_park.append((d.email, error))
            else:
                retries.append(store.ScheduledRetry(d.email, error, decision.delay_seconds))
        async with self._pool().acquire() as conn, conn.transaction():
            newly_sent = await store.mark_all_sent(conn, [email.id for email in sent])
            parked = await store.park_all(conn, to_park)
            await store.schedule_retries(conn, retries)
            await store.release(conn, released)
            await enqueue(
                conn,
                [
                    *(self._sent_event(email) for email in sent if email.id in newly_sent),
                    *(
                        self._failed_event(email, _error(failure))
                        for email, failure, _ in failed
                        if email.id in parked
                    ),
                ],
            )
        for email in sent:
            log.debug("email sent", registration_id=email.registration_id, template=email.template)
        if sent:
            log.info("emails sent", count=len(sent), recorded=len(newly_sent))
        if released:
            log.info("claimed emails handed back untried", count=len(released))
        for email, failure, decision in failed:
            self._log_failure(email, failure, decision)

    def _log_failure(self, email: store.ClaimedEmail, failure: Failure, decision: Park | Retry) -> None:
        attempts = email.attempts + 1
        if isinstance(decision, Park):
            log.warning(
                "email parked",
                registration_id=email.registration_id,
                template=email.template,
                smtp_code=failure.code,
                attempts=attempts,
            )
            return
        # Never parked for a temporary failure, but after this many attempts someone should look.
        still = attempts >= self._settings.notification_max_attempts
        report = log.error if still else log.info
        report(
            "email still undelivered, retrying later" if still else "email delivery failed, retrying later",
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


def _error(failure: Failure) -> str:
    return failure.description[:MAX_ERROR_LENGTH]


def _identity(email: store.ClaimedEmail) -> dict[str, str]:
    return {
        "notification_id": str(email.id),
        "registration_id": email.registration_id,
        "template": email.template,
        "to": email.recipient,
    }
