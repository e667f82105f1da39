"""Errors and log lines without the personal data they may quote (docs/personal-data.md).

An exception's message is input as much as code: asyncpg's client-side DataError quotes the
argument it could not encode, PostgreSQL's data exceptions quote the offending value (`invalid
input syntax for type uuid: "…"`), the DETAIL of a unique violation quotes the key (`Key
(seminar_id, lower(participant_email))=(…)`), a validation error quotes its input, an SMTP server
quotes the refused recipient. So an error is described by what it is, never by what it says:

- `safe_error` for log fields and dead-letter reasons: the class, for PostgreSQL errors the
  SQLSTATE and the schema objects it names (constraint, table, column), its message only where
  PostgreSQL's messages of that class name schema objects alone, and the innermost frame of our
  own code that raised it;
- `safe_traceback` for `exc_info`: the frames (file, line, function, source line: code), each
  chained exception by `safe_error`, never a message;
- `redact_emails` as the last line of defence for anything else that reaches a log line: an
  email address, wherever it appears, becomes `<email>`.

`configure_logging` (shared/logging.py) puts the last two into structlog and into the standard
library's logging (faststream, aiokafka), so that no logger of the process bypasses them.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError

# Our own source tree: the frame named in a description is the innermost one of ours.
SOURCE_ROOT = Path(__file__).resolve().parent.parent

# SQLSTATE classes whose primary messages (not their DETAIL, which asyncpg keeps apart) name only
# schema objects, states or timeouts: connection (08), feature (0A), integrity (23: 'duplicate
# key value violates unique constraint "…"'), transaction state (25), rollback (40: deadlock,
# serialization), syntax and access (42: our statements are constants), resources (53), object
# state (55: lock not available), operator intervention (57: timeouts, shutdown), and our own
# PL/pgSQL RAISE (P0), whose messages we write and which therefore never quote personal data.
# Class 22 (data exception: 'invalid input syntax for type integer: "…"') and every other class
# quote values or may: their messages are withheld.
SAFE_MESSAGE_SQLSTATE_CLASSES = frozenset({"08", "0A", "23", "25", "40", "42", "53", "55", "57", "P0"})

EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"
)
REDACTED_EMAIL = "<email>"


class SafeMessageError(Exception):
    """An error whose message its raiser keeps free of personal data (a contract violation
    described by its places, a refused operator command): `safe_error` keeps its message."""


def _safe_message_types() -> tuple[type[BaseException], ...]:
    # Imported late: shared.events imports nothing of this module, but keep the dependency one-way.
    from shared.events import ContractError

    return (SafeMessageError, ContractError)


def redact_emails(text: str) -> str:
    """Every email address in the text replaced by `<email>`."""
    if "@" not in text:
        return text
    return EMAIL_PATTERN.sub(REDACTED_EMAIL, text)


def _origin(exc: BaseException) -> str:
    """` at path:line in function` of the innermost frame in our own code, or nothing."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.is_relative_to(SOURCE_ROOT) and ".venv" not in path.parts:
            return f" at {path.relative_to(SOURCE_ROOT)}:{frame.lineno} in {frame.name}"
    return ""


def _postgres(exc: asyncpg.PostgresError) -> str:
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    described = f"{type(exc).__name__} ({sqlstate or 'no SQLSTATE'})"
    named = [
        f"{label} {value}"
        for label, value in (
            ("constraint", getattr(exc, "constraint_name", None)),
            ("table", getattr(exc, "table_name", None)),
            ("column", getattr(exc, "column_name", None)),
        )
        if value
    ]
    if named:
        described += " on " + ", ".join(named)
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    if message and sqlstate[:2] in SAFE_MESSAGE_SQLSTATE_CLASSES:
        described += f": {redact_emails(message)}"
    return described


def _validation(exc: ValidationError) -> str:
    places = ", ".join(
        ".".join(_safe_location_part(part) for part in error["loc"]) + f" ({error['type']})"
        for error in exc.errors(include_url=False, include_input=False, include_context=False)[:5]
    )
    return f"ValidationError: {exc.error_count()} error(s) at {places or 'the message'}"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _safe_location_part(part: object) -> str:
    # A location names fields, list indexes, or the keys of a mapping: a key is input.
    text = str(part)
    return text if isinstance(part, int) or _IDENTIFIER.fullmatch(text) else "?"


def safe_error(exc: BaseException) -> str:
    """The error for log fields and dead-letter reasons, without any value it may quote."""
    if isinstance(exc, ValidationError):
        return _validation(exc)
    if isinstance(exc, asyncpg.PostgresError):
        return _postgres(exc) + _origin(exc)
    if isinstance(exc, _safe_message_types()):
        return f"{type(exc).__name__}: {redact_emails(str(exc))}"
    described = type(exc).__name__
    if str(exc):
        described += " (message withheld)"
    return described + _origin(exc)


def _chain(exc: BaseException) -> list[tuple[BaseException, str]]:
    """The exception and those behind it, outermost first, each with the line Python prints
    between it and the one it led to."""
    seen: set[int] = set()
    found: list[tuple[BaseException, str]] = []
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of the following:"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, another occurred:"
        else:
            current = None
    return found


def safe_traceback(exc: BaseException) -> str:
    """A traceback of code only: every frame, and each exception of the chain by `safe_error`."""
    parts: list[str] = []
    for error, link in reversed(_chain(exc)):
        frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ is not None else []
        parts.append("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)))
        parts.append(safe_error(error) + "\n")
        if link:
            parts.append(f"\n{link}\n\n")
    return "".join(parts).rstrip("\n")


def _exception_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_emails(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


def format_exc_info_safely(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor in place of `format_exc_info`: `exc_info` becomes `exception`, a
    traceback of code and error classes (`safe_traceback`)."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    error = _exception_of(exc_info)
    if error is not None:
        event_dict["exception"] = safe_traceback(error)
    return event_dict


def redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor, the last before rendering: no email address in any value."""
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """For the standard library's loggers (faststream, aiokafka): a record's message has the
    messages of its exception replaced by their `safe_error`, every email address redacted, and
    its exception rendered by `safe_traceback`. Faststream, for one, logs a failed handler as
    `f"{type(exc).__name__}: {exc}"`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: keep only the format
            message = str(record.msg)
        error = _exception_of(record.exc_info)
        if error is not None:
            for chained, _ in _chain(error):
                for quoted in {repr(chained), str(chained)}:
                    if quoted and quoted in message:
                        message = message.replace(quoted, safe_error(chained))
            record.exc_text = safe_traceback(error)
            record.exc_info = None
        record.msg = redact_emails(message)
        record.args = ()
        return True
