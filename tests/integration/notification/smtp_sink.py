"""A real SMTP server for tests (aiosmtpd), in-process, that records what it accepts.

It can be told to answer temporary errors (421/451) for the next N messages, or to refuse an
address with 550, so that tests see the service's retry and parking behaviour over real SMTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import strict
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    def parsed(self) -> EmailMessage:
        return BytesParser(policy=strict).parsebytes(self.content)


class RecordingHandler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._temporary_replies: list[str] = []
        self._refused: dict[str, str] = {}
        self.rejected_data = 0
        self.refused_rcpt: Counter[str] = Counter()
        self._stalls: list[float] = []
        # The client end of every SMTP session that sent a message: one per connection.
        self.sessions: set[Any] = set()

    def fail_next(self, replies: list[str]) -> None:
        """Answer the next DATA commands with these replies, in order, then accept again."""
        with self._lock:
            self._temporary_replies.extend(replies)

    def take_then_stall(self, seconds: float, count: int = 1) -> None:
        """Keep the next `count` messages, but answer only after `seconds`: longer than the client
        waits, the reply is lost, as when the sender dies between the server's 250 and its commit."""
        with self._lock:
            self._stalls.extend([seconds] * count)

    def refuse(self, address: str, reply: str = "550 5.1.1 Mailbox unavailable") -> None:
        with self._lock:
            self._refused[address] = reply

    def accept(self, address: str) -> None:
        with self._lock:
            self._refused.pop(address, None)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self._lock:
            refused = self._refused.get(address)
        if refused is not None:
            with self._lock:
                self.refused_rcpt[address] += 1
            return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            self.sessions.add(session.peer)
            if self._temporary_replies:
                self.rejected_data += 1
                return self._temporary_replies.pop(0)
            self._received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            stall = self._stalls.pop(0) if self._stalls else 0.0
        if stall:
            await asyncio.sleep(stall)
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    handler: RecordingHandler
    port: int

    def messages(self) -> list[EmailMessage]:
        return [received.parsed() for received in self.handler.received]

    def count_by_message_id(self) -> Counter[str]:
        return Counter(str(message["Message-ID"]) for message in self.messages())

    async def wait_for(self, count: int, timeout: float = 60.0) -> list[EmailMessage]:
        """Wait until at least `count` messages arrived; returns them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.handler.received) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{len(self.handler.received)} of {count} emails arrived")
            await asyncio.sleep(0.1)
        return self.messages()


@contextmanager
def smtp_sink(port: int) -> Iterator[SmtpSink]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSink(handler, port)
    finally:
        controller.stop()
