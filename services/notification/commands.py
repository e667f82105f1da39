"""The applier of operations.commands in notification: `command.mail_resend`, `command.mail_park`.

Runs in notification's unit of work like every applier: the command's claim (by command_id), the
email's new state, its `notification.failed` (when parked) and the `result.<name>` commit
together, so the result leaves exactly once with the change. Other commands are passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from services.notification.operations import park_in, resend_in
from shared.commands import MAIL_PARK, MAIL_RESEND, Command, claim_command, command_name, result_message
from shared.db import Connection
from shared.events import Envelope
from shared.logging import bound_event, get_logger
from shared.outbox import OutboxMessage
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

SERVICE = "notification"


class CommandUnitOfWork(UnitOfWork, Protocol):
    """The inbox, the outbox and the transaction's connection (store.PostgresNotificationUnitOfWork)."""

    @property
    def connection(self) -> Connection: ...


class NotificationCommandsApplier:
    def __init__(self, topics: Topics) -> None:
        self._topics = topics

    async def apply_batch(
        self, uow: CommandUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        messages: list[OutboxMessage] = []
        for event in events:
            name = command_name(event.event_type)
            if name not in {MAIL_RESEND, MAIL_PARK}:
                continue
            command: Command = event.data
            with bound_event(event.event_id, command.command_id, event_type=event.event_type):
                topic = self._topics.operations_commands
                if not await claim_command(uow, topic, command.command_id, SERVICE):
                    log.info("command carried out before", command_id=str(command.command_id))
                    continue
                messages.extend(await self._carry_out(uow, name, event))
        return messages

    async def _carry_out(
        self, uow: CommandUnitOfWork, name: str, event: Envelope[Any]
    ) -> list[OutboxMessage]:
        email_id = event.data.email_id
        results = self._topics.operations_results
        if name == MAIL_RESEND:
            if not await resend_in(uow.connection, email_id):
                log.info("mail_resend refused: not parked", email_id=str(email_id))
                return [result_message(results, event, SERVICE, "refused", {"error": "not_parked"})]
            log.info("mail_resend carried out", email_id=str(email_id))
            return [result_message(results, event, SERVICE, "done", {"resent": 1})]
        failed = await park_in(uow.connection, email_id, self._topics)
        if failed is None:
            log.info("mail_park refused: not pending", email_id=str(email_id))
            return [result_message(results, event, SERVICE, "refused", {"error": "not_pending"})]
        log.info("mail_park carried out", email_id=str(email_id))
        return [failed, result_message(results, event, SERVICE, "done", {"parked": 1})]
