"""Errors go into logs and dead-letter reasons without the personal data they may quote."""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import ValidationError

from shared.consumer import safe_error
from shared.events import Participant


def test_a_postgres_error_keeps_its_message_but_not_its_detail() -> None:
    error = asyncpg.UniqueViolationError(
        'duplicate key value violates unique constraint "registrations_active"'
    )
    error.detail = "Key (seminar_id, lower(participant_email))=(S1, erika@kommune.example) already exists."
    described = safe_error(error)
    assert "UniqueViolationError (23505)" in described
    assert "registrations_active" in described
    assert "erika@kommune.example" not in described


def test_a_validation_error_names_the_places_not_the_values() -> None:
    with pytest.raises(ValidationError) as caught:
        Participant.model_validate({"given_name": "Erika\n", "family_name": "Muster", "email": "erika@@x"})
    described = safe_error(caught.value)
    assert described.startswith("ValidationError: 2 error(s) at given_name, email")
    assert "Erika" not in described and "erika@@x" not in described


def test_other_errors_are_described_as_they_are() -> None:
    assert safe_error(RuntimeError("boom")) == "RuntimeError('boom')"
