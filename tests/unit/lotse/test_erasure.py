"""`lotse erase`: the command's contract, and the receipt it prints from the services' results."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from lotse.erasure import ReceiptLine, receipt
from shared.commands import COMMAND_EVENTS, ERASE, CommandResult, Erase, carried_out_by, command_key


def erase(*registration_ids: str) -> Erase:
    return Erase(
        command_id=uuid.uuid4(), requested_by="jdoe", reason="Antrag", registration_ids=registration_ids
    )


def test_every_service_carries_an_erasure_out_and_it_is_keyed_by_its_first_registration() -> None:
    command = erase("R-1", "R-2")
    assert carried_out_by(ERASE, command) == ("registration", "funding", "notification")
    assert command_key(command) == "R-1"
    assert COMMAND_EVENTS["command.erase"] is Erase


@pytest.mark.parametrize("registration_ids", [(), ("not an id!",)])
def test_an_erasure_names_registrations_by_their_ids(registration_ids: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError):
        erase(*registration_ids)


def test_the_receipt_lists_per_service_the_counts_and_when() -> None:
    command_id = uuid.uuid4()
    results = [
        CommandResult(
            command_id=command_id,
            service="registration",
            outcome="done",
            detail={"registrations": 1, "outbox": 2, "erased_at": "2026-12-01T23:00:00+00:00"},
        ),
        CommandResult(
            command_id=command_id, service="funding", outcome="done", detail={"participant_hashes": 0}
        ),
    ]
    assert receipt(results) == [
        ReceiptLine("registration", "done", "2026-12-01T23:00:00+00:00", {"registrations": 1, "outbox": 2}),
        ReceiptLine("funding", "done", "", {"participant_hashes": 0}),
    ]
