"""The applier of operations.commands in funding: `command.close_period`, `command.set_budget`,
`command.reopen_period`, `command.erase` (ADR 0018), and `command.replay_dead_letters` for
registration.events (shared.replay).

Runs in the funding unit of work like every applier: the command's claim (by command_id), its
effect (declines, a budget and the promotions it allows, a reopened period) with their outbox
rows, and its `result.<name>` commit together, so the result leaves exactly once with the state
change. Other commands are not funding's and are passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.funding.operations import (
    BudgetRefusedError,
    UnknownPeriodError,
    close_period_in,
    reopen_period_in,
    set_period_budget_in,
)
from services.funding.unit_of_work import FundingUnitOfWork
from shared.commands import (
    CLOSE_PERIOD,
    ERASE,
    REOPEN_PERIOD,
    REPLAY_DEAD_LETTERS,
    SET_BUDGET,
    ClosePeriod,
    CommandHandler,
    Erase,
    ReopenPeriod,
    SetBudget,
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
            SET_BUDGET: self._set_budget,
            REOPEN_PERIOD: self._reopen_period,
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

    async def _set_budget(self, uow: FundingUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        """The operator's budget; a raise promotes from the waitlists in the same transaction
        (funding.approved with promoted: true, caused by the command). Refused below what the
        period has committed, with that amount."""
        command: SetBudget = event.data
        results = self._topics.operations_results
        try:
            budget = await set_period_budget_in(
                uow, command.period_id, command.budget_cents, self._topics, cause=command.command_id
            )
        except UnknownPeriodError:
            log.info("set_budget refused: unknown period", period_id=command.period_id)
            return [result_message(results, event, SERVICE, "refused", {"error": "unknown_period"})]
        except BudgetRefusedError as exc:
            log.info(
                "set_budget refused: below committed",
                period_id=command.period_id,
                budget_cents=command.budget_cents,
                committed_cents=exc.committed_cents,
            )
            refusal: dict[str, int | str] = {
                "error": "below_committed",
                "committed_cents": exc.committed_cents,
            }
            return [result_message(results, event, SERVICE, "refused", refusal)]
        detail: dict[str, int | str] = {
            "budget_cents": command.budget_cents,
            # "unlimited": the programme file gave the period no budget.
            "budget_cents_before": (
                "unlimited" if budget.budget_cents_before is None else budget.budget_cents_before
            ),
            "promoted": len(budget.promoted),
        }
        log.info("set_budget carried out", period_id=command.period_id, promoted=len(budget.promoted))
        # The promotions' messages are in the unit of work's outbox already (set_period_budget_in).
        return [result_message(results, event, SERVICE, "done", detail)]

    async def _reopen_period(self, uow: FundingUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        """A closed period opens again; reopening an open one is refused (`not_closed`), as closing
        a closed one is, so that the audit shows every command that changed nothing."""
        command: ReopenPeriod = event.data
        results = self._topics.operations_results
        try:
            reopened = await reopen_period_in(uow, command.period_id)
        except UnknownPeriodError:
            log.info("reopen_period refused: unknown period", period_id=command.period_id)
            return [result_message(results, event, SERVICE, "refused", {"error": "unknown_period"})]
        if not reopened.was_closed:
            log.info("reopen_period refused: not closed", period_id=command.period_id)
            return [result_message(results, event, SERVICE, "refused", {"error": "not_closed"})]
        log.info("reopen_period carried out", period_id=command.period_id)
        return [result_message(results, event, SERVICE, "done", {"reopened": command.period_id})]

    async def _erase(self, uow: FundingUnitOfWork, event: Envelope[Any]) -> list[OutboxMessage]:
        command: Erase = event.data
        request = ErasureRequest(command.command_id, command.requested_by, command.reason, "request")
        detail = await uow.erase(command.registration_ids, request)
        log.info("erase carried out", **{k: v for k, v in detail.items() if isinstance(v, int)})
        return [result_message(self._topics.operations_results, event, SERVICE, "done", detail)]
