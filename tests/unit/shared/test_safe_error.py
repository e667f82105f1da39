"""Errors go into logs and dead-letter reasons without the personal data they may quote."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg.exceptions._base import DataError as ClientDataError
from pydantic import ValidationError

from shared.events import PORTAL_REGISTRATION_EVENTS, ContractError, EventDecoder, Participant
from shared.redaction import SafeMessageError, redact_emails, safe_error, safe_traceback

ADDRESS = "erika.mustermann@kommune.example"


def postgres_error(
    kind: type[asyncpg.PostgresError], message: str, *, detail: str = "", **fields: str
) -> asyncpg.PostgresError:
    error = kind(message)
    error.detail = detail
    for name, value in fields.items():
        setattr(error, name, value)
    return error


@pytest.mark.parametrize(
    ("error", "shown", "withheld"),
    [
        (
            postgres_error(
                asyncpg.UniqueViolationError,
                'duplicate key value violates unique constraint "registrations_active_participant"',
                detail=f"Key (seminar_id, lower(participant_email))=(S1, {ADDRESS}) already exists.",
                constraint_name="registrations_active_participant",
                table_name="registrations",
            ),
            [
                "UniqueViolationError (23505)",
                "constraint registrations_active_participant",
                "table registrations",
                "violates unique constraint",
            ],
            [ADDRESS, "Key ("],
        ),
        (
            postgres_error(
                asyncpg.NotNullViolationError,
                'null value in column "family_name" of relation "registrations" violates not-null constraint',
                detail=f"Failing row contains (R1, S1, Erika, null, {ADDRESS}).",
                column_name="family_name",
            ),
            ["NotNullViolationError (23502)", "column family_name"],
            ["Erika", ADDRESS],
        ),
        (
            # Class 22 quotes the value it could not take: the message is withheld.
            postgres_error(
                asyncpg.InvalidTextRepresentationError, f'invalid input syntax for type uuid: "{ADDRESS}"'
            ),
            ["InvalidTextRepresentationError (22P02)"],
            [ADDRESS, "invalid input syntax"],
        ),
        (
            postgres_error(
                asyncpg.StringDataRightTruncationError, "value too long for type character varying(3)"
            ),
            ["StringDataRightTruncationError (22001)"],
            ["varying"],
        ),
        (
            postgres_error(
                asyncpg.DeadlockDetectedError, "deadlock detected", detail="Process 1 waits for 2"
            ),
            ["DeadlockDetectedError (40P01): deadlock detected"],
            ["Process 1"],
        ),
        (
            # Our own RAISE: we write those messages, so they are kept.
            postgres_error(asyncpg.RaiseError, "poisoned registration R-7"),
            ["RaiseError (P0001): poisoned registration R-7"],
            [],
        ),
        (
            # The driver's own DataError quotes the argument it could not encode.
            ClientDataError(f"invalid input for query argument $1: '{ADDRESS}' (expected int)"),
            ["DataError (message withheld)"],
            [ADDRESS, "query argument"],
        ),
        (KeyError(ADDRESS), ["KeyError (message withheld)"], [ADDRESS]),
        (RuntimeError("Erika Mustermann"), ["RuntimeError (message withheld)"], ["Erika", "Mustermann"]),
        (RuntimeError(), ["RuntimeError"], ["withheld"]),
        (
            ContractError("data.participant.email: Value error, is not a valid email address"),
            ["ContractError: data.participant.email: Value error"],
            [],
        ),
        (SafeMessageError(f"refused for {ADDRESS}"), ["SafeMessageError: refused for <email>"], [ADDRESS]),
    ],
)
def test_an_error_is_described_by_what_it_is_not_by_the_values_it_quotes(
    error: BaseException, shown: list[str], withheld: list[str]
) -> None:
    described = safe_error(error)
    for part in shown:
        assert part in described
    for part in withheld:
        assert part not in described


def test_a_validation_error_names_the_places_not_the_values() -> None:
    with pytest.raises(ValidationError) as caught:
        Participant.model_validate({"given_name": "Erika\n", "family_name": "Muster", "email": "erika@@x"})
    described = safe_error(caught.value)
    assert described.startswith(
        "ValidationError: 2 error(s) at given_name (value_error), email (value_error)"
    )
    assert "Erika" not in described and "erika@@x" not in described


def test_a_raised_error_names_the_line_of_our_code_that_raised_it() -> None:
    def lookup() -> None:
        raise KeyError(ADDRESS)

    with pytest.raises(KeyError) as caught:
        lookup()
    described = safe_error(caught.value)
    assert described.startswith("KeyError (message withheld) at tests/unit/shared/test_safe_error.py:")
    assert described.endswith(" in lookup")


def test_a_traceback_shows_code_and_every_error_of_the_chain_but_no_message() -> None:
    def store() -> None:
        raise postgres_error(
            asyncpg.UniqueViolationError,
            'duplicate key value violates unique constraint "x"',
            detail=f"Key (email)=({ADDRESS}) already exists.",
        )

    def handle() -> None:
        try:
            store()
        except asyncpg.PostgresError as exc:
            raise RuntimeError(f"could not store {ADDRESS}") from exc

    with pytest.raises(RuntimeError) as caught:
        handle()
    rendered = safe_traceback(caught.value)
    assert ADDRESS not in rendered
    assert (
        rendered.index("UniqueViolationError (23505)")
        < rendered.index("direct cause")
        < rendered.index("RuntimeError (message withheld)")
    )
    assert "in store" in rendered and "in handle" in rendered
    assert 'raise RuntimeError(f"could not store {ADDRESS}") from exc' in rendered  # the source line: code


@pytest.mark.parametrize(
    ("raw", "reason_excludes"),
    [
        # A mapping's key is input: a location shows it as "?".
        (b'{"event_type": "registration.submitted", "event_id": 1, "' + ADDRESS.encode() + b'": 1}', ADDRESS),
        # An event type that is not of the contract's form is not echoed.
        (b'{"event_type": "' + ADDRESS.encode() + b'"}', ADDRESS),
        (b'{"event_type": "Erika Mustermann"}', "Erika"),
    ],
)
def test_a_contract_error_quotes_no_value(raw: bytes, reason_excludes: str) -> None:
    decoder = EventDecoder("portal.registrations", PORTAL_REGISTRATION_EVENTS)
    with pytest.raises(ContractError) as caught:
        decoder.decode(raw)
    assert reason_excludes not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"to {ADDRESS}.", "to <email>."),
        ("Özlem <oezlem.weiss@kommunen.example>", "Özlem <<email>>"),
        ("a+b@sub.domain.example and c@d", "<email> and <email>"),
        ("no address here", "no address here"),
        ("@ alone", "@ alone"),
    ],
)
def test_every_email_address_is_redacted(text: str, redacted: str) -> None:
    assert redact_emails(text) == redacted
