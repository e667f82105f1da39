"""The applier of operations.commands in notification: `command.mail_resend`, `command.mail_park`,
`command.erase` (ADR 0018), and `command.replay_dead_letters` for the topics it consumes
(shared.replay).

Runs in notification's unit of work like every applier: the command's claim (by command_id), the
email's new state, its `notification.failed` (when parked) and the `result.<name>` commit
together, so the result leaves exactly once with the change. Other commands are passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from services.notification import store
from services.notification.operations import park_in, resend_in
from shared.commands import (
    ERASE,
    MAIL_PARK,
    MAIL_RESEND,
    REPLAY_DEAD_LETTERS,
    CommandHandler,
    Erase,
    carry_out_commands,
    result_message,
)
from shared.db import Connection
from shared.erasure import ErasureRequest
from shared.events import Envelope
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.replay import DeadLetterReplayer
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

SERVICE = "notification"


class CommandUnitOfWork(UnitOfWork, Protocol):
    """The inbox, the outbox and the transaction's connection (store.PostgresNotificationUnitOfWork)."""

    @property
    def connection(self) -> Connection: ...


class NotificationCommandsApplier:
    def __init__(self, topics: Topics, replayer: DeadLetterReplayer | None = None) -> None:
        self._topics = topics
        self._handlers: dict[str, CommandHandler[CommandUnitOfWork]] = {
            MAIL_RESEND: self._resend,
            MAIL_PARK: self._park,
            ERASE: self._erase,
        }
        if replayer is not None:
            self._handlers[REPLAY_DEAD_LETTERS] = replayer.handler

    async def apply_batch(
        self, uow: CommandUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        return await carry_out_commands(
            uow, events, service=SERVICE, topic=self._topics.operations_commands, handlers=self._handlers
        )

    async def _resend(self, uow: CommandUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        email_id = event.data.email_id
        results = self._topics.operations_results
        if await store.email_erased(uow.connection, email_id):
            log.info("mail_resend refused: erased", email_id=str(email_id))
            return [result_message(results, event, SERVICE, "refused", {"error": "erased"})]
        if not await resend_in(uow.connection, email_id):
            log.info("mail_resend refused: not parked", email_id=str(email_id))
            return [result_message(results, event, SERVICE, "refused", {"error": "not_parked"})]
        log.info("mail_resend carried out", email_id=str(email_id))
        return [result_message(results, event, SERVICE, "done", {"resent": 1})]

    async def _park(self, uow: CommandUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        email_id = event.data.email_id
        results = self._topics.operations_results
        failed = await park_in(uow.connection, email_id, self._topics)
        if failed is None:
            log.info("mail_park refused: not pending", email_id=str(email_id))
            return [result_message(results, event, SERVICE, "refused", {"error": "not_pending"})]
        log.info("mail_park carried out", email_id=str(email_id))
        return [failed, result_message(results, event, SERVICE, "done", {"parked": 1})]

    async def _erase(self, uow: CommandUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        command: Erase = event.data
        request = ErasureRequest(command.command_id, command.requested_by, command.reason, "request")
        detail = await store.erase_registrations(uow.connection, command.registration_ids, request)
        log.info("erase carried out", **{k: v for k, v in detail.items() if isinstance(v, int)})
        return [result_message(self._topics.operations_results, event, SERVICE, "done", detail)]
