"""The applier of operations.commands in registration: `command.erase` (ADR 0018), and
`command.replay_dead_letters` for the portal topics it consumes (shared.replay). Other commands
are not registration's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from services.registration import store
from shared.commands import (
    ERASE,
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

SERVICE = "registration"


class CommandUnitOfWork(UnitOfWork, Protocol):
    """The inbox, the outbox and the transaction's connection (store.PostgresRegistrationUnitOfWork)."""

    @property
    def connection(self) -> Connection: ...


def erasure_request(command: Erase) -> ErasureRequest:
    return ErasureRequest(command.command_id, command.requested_by, command.reason, "request")


class RegistrationCommandsApplier:
    def __init__(self, topics: Topics, replayer: DeadLetterReplayer) -> None:
        self._topics = topics
        self._handlers: dict[str, CommandHandler[CommandUnitOfWork]] = {
            REPLAY_DEAD_LETTERS: replayer.handler,
            ERASE: self._erase,
        }

    async def apply_batch(
        self, uow: CommandUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        return await carry_out_commands(
            uow, events, service=SERVICE, topic=self._topics.operations_commands, handlers=self._handlers
        )

    async def _erase(self, uow: CommandUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        command: Erase = event.data
        detail = await store.erase_registrations(
            uow.connection, command.registration_ids, erasure_request(command)
        )
        log.info("erase carried out", **{k: v for k, v in detail.items() if isinstance(v, int)})
        return [result_message(self._topics.operations_results, event, SERVICE, "done", detail)]
