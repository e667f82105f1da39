"""The applier of operations.commands in funding: `command.close_period`, `command.erase`
(ADR 0018), and `command.replay_dead_letters` for registration.events (shared.replay).

Runs in the funding unit of work like every applier: the command's claim (by command_id), the
declines and their outbox rows, and `result.close_period` commit together, so the result leaves
exactly once with the state change. Other commands are not funding's and are passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.funding.operations import UnknownPeriodError, close_period_in
from services.funding.unit_of_work import FundingUnitOfWork
from shared.commands import (
    CLOSE_PERIOD,
    ERASE,
    REPLAY_DEAD_LETTERS,
    ClosePeriod,
    CommandHandler,
    Erase,
    carry_out_commands,
    result_message,
)
from shared.erasure import ErasureRequest
from shared.events import Envelope
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.replay import DeadLetterReplayer
from shared.topics import Topics

log = get_logger(__name__)

SERVICE = "funding"


class FundingCommandsApplier:
    def __init__(self, topics: Topics, replayer: DeadLetterReplayer | None = None) -> None:
        self._topics = topics
        self._handlers: dict[str, CommandHandler[FundingUnitOfWork]] = {
            CLOSE_PERIOD: self._close_period,
            ERASE: self._erase,
        }
        if replayer is not None:
            self._handlers[REPLAY_DEAD_LETTERS] = replayer.handler

    async def apply_batch(
        self, uow: FundingUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        return await carry_out_commands(
            uow, events, service=SERVICE, topic=self._topics.operations_commands, handlers=self._handlers
        )

    async def _close_period(self, uow: FundingUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        command: ClosePeriod = event.data
        results = self._topics.operations_results
        try:
            closed = await close_period_in(uow, command.period_id, self._topics)
        except UnknownPeriodError:
            log.info("close_period refused: unknown period", period_id=command.period_id)
            return [result_message(results, event, SERVICE, "refused", {"error": "unknown_period"})]
        if closed.already_closed:
            log.info("close_period refused: already closed", period_id=command.period_id)
            detail: dict[str, int | str] = {"error": "already_closed", "declined": len(closed.declined)}
            return [result_message(results, event, SERVICE, "refused", detail)]
        log.info("close_period carried out", period_id=command.period_id, declined=len(closed.declined))
        return [result_message(results, event, SERVICE, "done", {"declined": len(closed.declined)})]

    async def _erase(self, uow: FundingUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        command: Erase = event.data
        request = ErasureRequest(command.command_id, command.requested_by, command.reason, "request")
        detail = await uow.erase(command.registration_ids, request)
        log.info("erase carried out", **{k: v for k, v in detail.items() if isinstance(v, int)})
        return [result_message(self._topics.operations_results, event, SERVICE, "done", detail)]
