"""The applier of operations.commands in funding: `command.close_period`.

Runs in the funding unit of work like every applier: the command's claim (by command_id), the
declines and their outbox rows, and `result.close_period` commit together, so the result leaves
exactly once with the state change. Other commands are not funding's and are passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.funding.operations import UnknownPeriodError, close_period_in
from services.funding.unit_of_work import FundingUnitOfWork
from shared.commands import CLOSE_PERIOD, ClosePeriod, claim_command, command_name, result_message
from shared.events import Envelope
from shared.logging import bound_event, get_logger
from shared.outbox import OutboxMessage
from shared.topics import Topics

log = get_logger(__name__)

SERVICE = "funding"


class FundingCommandsApplier:
    def __init__(self, topics: Topics) -> None:
        self._topics = topics

    async def apply_batch(
        self, uow: FundingUnitOfWork, events: Sequence[Envelope[Any]]
    ) -> Sequence[OutboxMessage]:
        results: list[OutboxMessage] = []
        for event in events:
            if command_name(event.event_type) != CLOSE_PERIOD:
                continue
            command: ClosePeriod = event.data
            with bound_event(event.event_id, command.command_id, event_type=event.event_type):
                topic = self._topics.operations_commands
                if not await claim_command(uow, topic, command.command_id, SERVICE):
                    log.info("command carried out before", command_id=str(command.command_id))
                    continue
                results.append(await self._close_period(uow, event, command))
        return results

    async def _close_period(
        self, uow: FundingUnitOfWork, event: Envelope[Any], command: ClosePeriod
    ) -> OutboxMessage:
        try:
            closed = await close_period_in(uow, command.period_id, self._topics)
        except UnknownPeriodError:
            log.info("close_period refused: unknown period", period_id=command.period_id)
            return result_message(
                self._topics.operations_results, event, SERVICE, "refused", {"error": "unknown_period"}
            )
        if closed.already_closed:
            log.info("close_period refused: already closed", period_id=command.period_id)
            return result_message(
                self._topics.operations_results,
                event,
                SERVICE,
                "refused",
                {"error": "already_closed", "declined": len(closed.declined)},
            )
        log.info(
            "close_period carried out",
            period_id=command.period_id,
            declined=len(closed.declined),
        )
        return result_message(
            self._topics.operations_results, event, SERVICE, "done", {"declined": len(closed.declined)}
        )
