"""The operators' commands on the command line, and their contract: refused before anything is
sent when they lack a reason; who carries each out; results leave once per command and service."""

from __future__ import annotations

import getpass
import uuid

import pytest
from typer.testing import CliRunner

from lotse.cli import app
from lotse.commands import CommandOutcome, new_command
from shared.commands import (
    CLOSE_PERIOD,
    COMMAND_EVENTS,
    MAIL_PARK,
    MAIL_RESEND,
    REPLAY_DEAD_LETTERS,
    RESULT_EVENTS,
    CommandResult,
    carried_out_by,
    command_claim_id,
    command_envelope,
    command_key,
    result_message,
)
from shared.events import EventDecoder

runner = CliRunner()
EMAIL_ID = "0b6a1c9e-8f3d-4c1a-9d7e-2f5b8a6c4e21"


@pytest.mark.parametrize(
    "arguments",
    [
        ["close-period", "2023"],
        ["mail", "resend", EMAIL_ID],
        ["mail", "park", EMAIL_ID],
        ["dlq", "replay", "portal.registrations"],
    ],
)
def test_a_command_without_a_reason_is_refused_by_the_cli(arguments: list[str]) -> None:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert "--reason" in result.output


@pytest.mark.parametrize("reason", ["", "   ", "zwei\nZeilen"])
def test_a_command_with_an_empty_or_broken_reason_is_refused_before_it_is_sent(reason: str) -> None:
    result = runner.invoke(app, ["close-period", "2023", "--reason", reason])
    assert result.exit_code == 2
    assert "reason" in result.output


def test_a_command_is_requested_by_the_os_login() -> None:
    command = new_command(CLOSE_PERIOD, " Förderjahr vorbei ", period_id="2023")
    assert command.requested_by == getpass.getuser()
    assert command.reason == "Förderjahr vorbei"


@pytest.mark.parametrize(
    ("name", "fields", "services", "key"),
    [
        (CLOSE_PERIOD, {"period_id": "2023"}, ("funding",), "2023"),
        (MAIL_RESEND, {"email_id": uuid.UUID(EMAIL_ID)}, ("notification",), EMAIL_ID),
        (MAIL_PARK, {"email_id": uuid.UUID(EMAIL_ID)}, ("notification",), EMAIL_ID),
        (REPLAY_DEAD_LETTERS, {"topic": "portal.seminars"}, ("registration",), "portal.seminars"),
        (
            REPLAY_DEAD_LETTERS,
            {"topic": "registration.events"},
            ("funding", "notification"),
            "registration.events",
        ),
        (REPLAY_DEAD_LETTERS, {"topic": "funding.decisions"}, ("notification",), "funding.decisions"),
    ],
)
def test_who_carries_a_command_out_and_its_key(
    name: str, fields: dict[str, object], services: tuple[str, ...], key: str
) -> None:
    command = new_command(name, "weil", **fields)
    assert carried_out_by(name, command) == services
    assert command_key(command) == key
    envelope = command_envelope(name, command)
    decoded = EventDecoder("operations.commands", COMMAND_EVENTS).decode(envelope.model_dump_json().encode())
    assert decoded.data == command and decoded.correlation_id == command.command_id


def test_a_result_has_one_id_per_command_and_service() -> None:
    command = new_command(CLOSE_PERIOD, "weil", period_id="2023")
    event = command_envelope(CLOSE_PERIOD, command)
    again = command_envelope(CLOSE_PERIOD, command)  # published twice: another event id
    first = result_message("operations.results", event, "funding", "done", {"declined": 2})
    second = result_message("operations.results", again, "funding", "done", {"declined": 2})
    assert event.event_id != again.event_id
    assert first.envelope.event_id == second.envelope.event_id
    assert first.key == "2023" and first.envelope.event_type == "result.close_period"
    decoded = EventDecoder("operations.results", RESULT_EVENTS).decode(
        first.envelope.model_dump_json().encode()
    )
    assert decoded.data == CommandResult(
        command_id=command.command_id, service="funding", outcome="done", detail={"declined": 2}
    )
    # The inbox claim is neither the command's event id nor its command id.
    claim = command_claim_id(command.command_id, "funding")
    assert claim not in {
        event.event_id,
        command.command_id,
        command_claim_id(command.command_id, "notification"),
    }


def test_an_outcome_names_the_missing_and_refusing_services() -> None:
    command = new_command(REPLAY_DEAD_LETTERS, "weil", topic="registration.events")
    outcome = CommandOutcome(command, ("funding", "notification"))
    outcome.results["funding"] = CommandResult(
        command_id=command.command_id, service="funding", outcome="refused", detail={"error": "x"}
    )
    assert outcome.missing == ("notification",)
    assert [r.service for r in outcome.refused] == ["funding"]
