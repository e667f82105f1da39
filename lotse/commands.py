"""Operators' commands: publish one on operations.commands as `operator`, wait for its results.

lotse changes no service's state itself (ADR 0016): each command is carried out by the service
that owns the state, which answers on operations.results. `lotse audit` reads both topics.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from lotse.credentials import kafka_security
from lotse.log import read_all, topic_partitions
from shared.commands import (
    COMMANDS,
    Command,
    CommandResult,
    carried_out_by,
    command_envelope,
    command_key,
    command_name,
)
from shared.kafka import client_options, make_producer
from shared.topics import Topics

DEFAULT_TIMEOUT_SECONDS = 60.0


def new_command(name: str, reason: str, **fields: Any) -> Command:
    """A command with a fresh id, requested by the operator's OS login; ValueError if it breaks the
    contract (an empty reason, a login the contract does not take)."""
    try:
        return COMMANDS[name](
            command_id=uuid.uuid4(), requested_by=getpass.getuser(), reason=reason.strip(), **fields
        )
    except ValidationError as exc:
        places = ", ".join(str(error["loc"][0]) for error in exc.errors(include_input=False))
        raise ValueError(f"the command is not valid: {places}") from exc


@dataclass(frozen=True)
class CommandOutcome:
    command: Command
    expected: tuple[str, ...]  # the services that carry it out
    results: dict[str, CommandResult] = field(default_factory=dict)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(service for service in self.expected if service not in self.results)

    @property
    def refused(self) -> list[CommandResult]:
        return [result for result in self.results.values() if result.outcome == "refused"]


async def send_command(
    bootstrap: str,
    topics: Topics,
    name: str,
    command: Command,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> CommandOutcome:
    """Publish the command and wait (up to `timeout` seconds) for a result from every service that
    carries it out; the outcome says which results are missing."""
    outcome = CommandOutcome(command, carried_out_by(name, command))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **client_options(kafka_security()),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topics.operations_results)
        consumer.assign(partitions)
        # From the end as it is before the command leaves: its results can only come later.
        for tp, end in (await consumer.end_offsets(partitions)).items():
            consumer.seek(tp, end)
        await _publish(bootstrap, topics, name, command)
        async with asyncio.timeout(timeout):
            while outcome.missing:
                batch = await consumer.getmany(*partitions, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        _take_result(outcome, record.value)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return outcome


async def _publish(bootstrap: str, topics: Topics, name: str, command: Command) -> None:
    producer = make_producer(bootstrap, client_id="lotse-command", security=kafka_security())
    await producer.start()
    try:
        envelope = command_envelope(name, command)
        await producer.send_and_wait(
            topics.operations_commands,
            envelope.model_dump_json().encode(),
            key=command_key(command).encode(),
            headers=[("content-type", b"application/json"), ("event_type", envelope.event_type.encode())],
        )
    finally:
        await producer.stop()


def _take_result(outcome: CommandOutcome, raw: bytes | None) -> None:
    if raw is None:
        return
    try:
        data = json.loads(raw).get("data", {})
        result = CommandResult.model_validate(data, strict=False)
    except (ValueError, AttributeError):
        return  # not a result this lotse understands
    if result.command_id == outcome.command.command_id and result.service in outcome.expected:
        outcome.results.setdefault(result.service, result)


@dataclass(frozen=True)
class AuditEntry:
    command_id: str
    action: str
    requested_at: str
    requested_by: str
    reason: str
    target: str
    results: list[dict[str, Any]]  # service, outcome, detail


async def audit(
    bootstrap: str, topics: Topics, *, action: str | None = None, since: datetime | None = None
) -> list[AuditEntry]:
    """Every command on operations.commands (in order), with the results the services gave."""
    commands = await read_all(bootstrap, topics.operations_commands)
    results = await read_all(bootstrap, topics.operations_results)
    by_command: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        data = result.get("data", {})
        by_command.setdefault(str(data.get("command_id")), []).append(
            {"service": data.get("service"), "outcome": data.get("outcome"), "detail": data.get("detail")}
        )
    entries: list[AuditEntry] = []
    seen: set[str] = set()
    for event in commands:
        data = event.get("data", {})
        name = command_name(str(event.get("event_type", "")))
        command_id = str(data.get("command_id"))
        if command_id in seen or (action is not None and name != action):
            continue
        requested_at = str(event.get("occurred_at", ""))
        if since is not None and _parsed(requested_at) < since:
            continue
        seen.add(command_id)
        target = {k: v for k, v in data.items() if k not in {"command_id", "requested_by", "reason"}}
        entries.append(
            AuditEntry(
                command_id=command_id,
                action=name,
                requested_at=requested_at,
                requested_by=str(data.get("requested_by", "")),
                reason=str(data.get("reason", "")),
                target=", ".join(f"{k}={v}" for k, v in target.items()),
                results=by_command.get(command_id, []),
            )
        )
    return entries


def _parsed(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


# --- amounts on the command line -----------------------------------------------------------
# Euros, German or plain (`200.000`, `200000`, `200.000,00`, `200000,50`). A dot only groups
# thousands, never a decimal point: `2.50` is refused rather than read as 250 € or 2,50 €,
# because an operator who typed it may have meant either.

# Whole euros (plain, or grouped by dots in threes), then optionally a comma and one or two cents digits.
_AMOUNT = re.compile(r"(?P<euros>[0-9]+|[0-9]{1,3}(?:\.[0-9]{3})+)(?:,(?P<cents>[0-9]{1,2}))?")
# The contract's upper bound on an amount (shared.events.Cents): one billion euros.
MAX_CENTS = 10**11


class AmountError(ValueError):
    """Not an amount in euros as the command line takes it; the message says what is."""


def parse_euros(text: str) -> int:
    """The amount in cents; AmountError for anything else (a dot as decimal point, sub-cent
    digits, a sign, letters, more than the contract allows). A trailing `€` or `EUR` is allowed."""
    cleaned = text.strip().removesuffix("€").removesuffix("EUR").strip()
    found = _AMOUNT.fullmatch(cleaned)
    if found is None:
        raise AmountError(
            f"{text!r} is not an amount in euros: digits, dots only between groups of three "
            "(200.000), a comma before at most two cent digits (200.000,50)"
        )
    cents = int(found["euros"].replace(".", "")) * 100 + int((found["cents"] or "0").ljust(2, "0"))
    if cents > MAX_CENTS:
        raise AmountError(f"{text!r} is more than the contract allows (1.000.000.000 €)")
    return cents
