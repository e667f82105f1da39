"""The applier of operations.commands in registration: `command.replay_dead_letters` for the
portal topics it consumes (shared.replay). Other commands are not registration's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.commands import REPLAY_DEAD_LETTERS, carry_out_commands
from shared.events import Envelope
from shared.outbox import OutboxMessage
from shared.replay import DeadLetterReplayer
from shared.topics import Topics
from shared.unit_of_work import UnitOfWork

SERVICE = "registration"


class RegistrationCommandsApplier:
    def __init__(self, topics: Topics, replayer: DeadLetterReplayer) -> None:
        self._topic = topics.operations_commands
        self._replayer = replayer

    async def apply_batch(self, uow: UnitOfWork, events: Sequence[Envelope[Any]]) -> Sequence[OutboxMessage]:
        handlers = {REPLAY_DEAD_LETTERS: self._replayer.handler}
        return await carry_out_commands(uow, events, service=SERVICE, topic=self._topic, handlers=handlers)
