"""The operators' command contract: `command.<name>` on operations.commands (written by `lotse`
as `operator`) and `result.<name>` on operations.results (written by the service that carried
the command out, through its outbox, in the transaction of the command's effect).

A command is carried out once per service, by its `command_id` (the envelope's event_id may
differ, e.g. when an operator publishes the same command again). Its result's event id derives
from the command id and the service, so that a result leaves at most once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import Field, StringConstraints

from shared.events import (
    Cents,
    ContractModel,
    Envelope,
    Identifier,
    Text,
    derived_event_id,
    new_envelope,
)
from shared.logging import bound_event, get_logger
from shared.outbox import OutboxMessage
from shared.topics import (
    FUNDING_DECISIONS,
    OPERATIONS_COMMANDS,
    PORTAL_REGISTRATIONS,
    PORTAL_SEMINARS,
    REGISTRATION_EVENTS,
)
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

Login = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]
LetterId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,6}:[0-9]{1,19}$")]
Outcome = Literal["done", "refused"]


class Command(ContractModel):
    command_id: uuid.UUID
    requested_by: Login
    reason: Text


class ClosePeriod(Command):
    period_id: Identifier


class SetBudget(Command):
    period_id: Identifier
    budget_cents: Cents


class ReopenPeriod(Command):
    period_id: Identifier


class MailResend(Command):
    email_id: uuid.UUID


class MailPark(Command):
    email_id: uuid.UUID


class ReplayDeadLetters(Command):
    # The source topic of the dead letters, without KAFKA_TOPIC_PREFIX.
    topic: Identifier
    # `partition:offset` on the dead-letter topic; empty: every letter not replayed yet.
    letter_ids: tuple[LetterId, ...] = Field(default=(), max_length=1000)


class Erase(Command):
    # The registrations whose personal data go (`lotse erase --email` resolves the participant's
    # registrations from registration's database first: the address itself never travels).
    registration_ids: tuple[Identifier, ...] = Field(min_length=1, max_length=1000)


class CommandResult(ContractModel):
    command_id: uuid.UUID
    service: Identifier
    outcome: Outcome
    detail: dict[Identifier, int | Text]


CLOSE_PERIOD = "close_period"
SET_BUDGET = "set_budget"
REOPEN_PERIOD = "reopen_period"
MAIL_RESEND = "mail_resend"
MAIL_PARK = "mail_park"
REPLAY_DEAD_LETTERS = "replay_dead_letters"
ERASE = "erase"

COMMANDS: dict[str, type[Command]] = {
    CLOSE_PERIOD: ClosePeriod,
    SET_BUDGET: SetBudget,
    REOPEN_PERIOD: ReopenPeriod,
    MAIL_RESEND: MailResend,
    MAIL_PARK: MailPark,
    REPLAY_DEAD_LETTERS: ReplayDeadLetters,
    ERASE: Erase,
}
# Event type -> data model, per topic (as in shared.events).
COMMAND_EVENTS: dict[str, type[ContractModel]] = {
    f"command.{name}": model for name, model in COMMANDS.items()
}
RESULT_EVENTS: dict[str, type[ContractModel]] = {f"result.{name}": CommandResult for name in COMMANDS}

# Which service consumes which topic: the owner of a dead letter's consumer replays it.
CONSUMERS: dict[str, tuple[str, ...]] = {
    PORTAL_SEMINARS: ("registration",),
    PORTAL_REGISTRATIONS: ("registration",),
    REGISTRATION_EVENTS: ("funding", "notification"),
    FUNDING_DECISIONS: ("notification",),
    OPERATIONS_COMMANDS: ("registration", "funding", "notification"),
}


def command_name(event_type: str) -> str:
    return event_type.removeprefix("command.").removeprefix("result.")


def carried_out_by(name: str, command: Command) -> tuple[str, ...]:
    """The services that carry a command out, and whose results `lotse` waits for."""
    if isinstance(command, ReplayDeadLetters):
        return CONSUMERS.get(command.topic, ())
    return {
        CLOSE_PERIOD: ("funding",),
        SET_BUDGET: ("funding",),
        REOPEN_PERIOD: ("funding",),
        MAIL_RESEND: ("notification",),
        MAIL_PARK: ("notification",),
        ERASE: ("registration", "funding", "notification"),
    }[name]


def command_key(command: Command) -> str:
    """The key on operations.commands: the command's target."""
    if isinstance(command, ClosePeriod | SetBudget | ReopenPeriod):
        return command.period_id
    if isinstance(command, MailResend | MailPark):
        return str(command.email_id)
    if isinstance(command, ReplayDeadLetters):
        return command.topic
    if isinstance(command, Erase):
        return command.registration_ids[0]
    return str(command.command_id)


def command_envelope(name: str, command: Command) -> Envelope[Command]:
    return new_envelope(f"command.{name}", command, source="lotse", correlation_id=command.command_id)


def command_claim_id(command_id: uuid.UUID, service: str) -> uuid.UUID:
    """What a service records in its inbox for a command carried out (never an event's id)."""
    return derived_event_id(command_id, f"command:{service}")


async def claim_command(uow: UnitOfWork, topic: str, command_id: uuid.UUID, service: str) -> bool:
    """Record in the unit of work that the service carries the command out; False if it did before."""
    claim = command_claim_id(command_id, service)
    return claim in await uow.claim_new_events(topic, [claim])


def result_message(
    results_topic: str,
    event: Envelope[Command],
    service: str,
    outcome: Outcome,
    detail: dict[str, int | str],
) -> OutboxMessage:
    """The result of a command, for the outbox, keyed as the command."""
    command = event.data
    result = CommandResult(command_id=command.command_id, service=service, outcome=outcome, detail=detail)
    envelope = new_envelope(
        f"result.{command_name(event.event_type)}",
        result,
        source=service,
        correlation_id=command.command_id,
        event_id=derived_event_id(command.command_id, f"result:{service}"),
    )
    return OutboxMessage(results_topic, command_key(command), envelope)


UoWT = TypeVar("UoWT", bound=UnitOfWork)
UoWT_contra = TypeVar("UoWT_contra", bound=UnitOfWork, contravariant=True)


class CommandHandler(Protocol[UoWT_contra]):
    async def __call__(self, uow: UoWT_contra, event: Envelope[Any], /) -> Sequence[OutboxMessage]: ...


async def carry_out_commands(
    uow: UoWT,
    events: Sequence[Envelope[Any]],
    *,
    service: str,
    topic: str,
    handlers: Mapping[str, CommandHandler[UoWT]],
) -> list[OutboxMessage]:
    """A service's applier of operations.commands: each command it has a handler for, once by its
    command_id (claimed in the unit of work), in order; the others are not its own and are passed
    over. The handlers return what to publish: the result, and what the effect publishes."""
    messages: list[OutboxMessage] = []
    for event in events:
        handler = handlers.get(command_name(event.event_type))
        if handler is None:
            continue
        command: Command = event.data
        with bound_event(event.event_id, command.command_id, event_type=event.event_type):
            if not await claim_command(uow, topic, command.command_id, service):
                log.info("command carried out before", command_id=str(command.command_id))
                continue
            messages.extend(await handler(uow, event))
    return messages
