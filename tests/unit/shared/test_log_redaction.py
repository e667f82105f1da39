"""Every logger of a service process, ours and the libraries', writes no personal data."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import asyncpg
import pytest
import structlog

from shared.logging import FASTSTREAM_LOGGERS, configure_logging, get_logger

ADDRESS = "erika.mustermann@kommune.example"


def unique_violation() -> asyncpg.UniqueViolationError:
    error = asyncpg.UniqueViolationError('duplicate key value violates unique constraint "x"')
    error.detail = f"Key (seminar_id, lower(participant_email))=(S1, {ADDRESS}) already exists."
    return error


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[io.StringIO]:
    """A service's logging at DEBUG, into one buffer (structlog and the standard library)."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    root.handlers = []
    configure_logging("test", "DEBUG", "json")
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=buffer), cache_logger_on_first_use=False
    )
    # faststream's loggers have handlers of their own and do not propagate.
    libraries = [logging.getLogger(name) for name in FASTSTREAM_LOGGERS]
    saved_library_handlers = [library.handlers[:] for library in libraries]
    for library in libraries:
        library.handlers = [logging.StreamHandler(buffer)]
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers = saved_handlers
        for library, handlers in zip(libraries, saved_library_handlers, strict=True):
            library.handlers = handlers
        structlog.reset_defaults()


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    "write",
    [
        lambda: get_logger("t").debug("email for", to=ADDRESS),
        lambda: get_logger("t").info("nested", data={"participant": {"email": ADDRESS}}, rows=[ADDRESS]),
        lambda: get_logger("t").error("handler failed", exc_info=raised(unique_violation())),
        lambda: get_logger("t").error("handler failed", exc_info=raised(KeyError(ADDRESS))),
        # faststream logs a failed handler as f"{type(exc).__name__}: {exc}" with the exception.
        lambda: logging.getLogger("faststream.access.kafka").error(
            f"UniqueViolationError: {unique_violation()}", exc_info=raised(unique_violation())
        ),
        lambda: logging.getLogger("aiokafka").warning("could not send to %s", ADDRESS),
        lambda: logging.getLogger("some.library").error("failed", exc_info=raised(ValueError(ADDRESS))),
    ],
)
def test_no_logger_writes_an_address_or_a_detail(captured: io.StringIO, write: object) -> None:
    assert callable(write)
    write()
    written = captured.getvalue()
    assert written  # the line was written
    assert ADDRESS not in written
    assert "Key (" not in written


def test_a_logged_exception_keeps_its_class_and_frames(captured: io.StringIO) -> None:
    get_logger("t").error("handler failed", exc_info=raised(unique_violation()))
    written = captured.getvalue()
    assert "UniqueViolationError (23505)" in written
    assert "test_log_redaction.py" in written and "in raised" in written


def test_library_loggers_stay_quiet_at_debug(captured: io.StringIO) -> None:
    for name in ("aiokafka", "asyncpg", "aiosmtplib"):
        logging.getLogger(name).debug("record body %s", ADDRESS)
    assert captured.getvalue() == ""
