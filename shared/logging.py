"""structlog setup: JSON when not on a terminal, readable lines on one; context per message.

No log line carries personal data, at any level (docs/personal-data.md): our own lines bind ids,
never a name or an address; exceptions are rendered as code and error classes
(`shared.redaction.safe_traceback`); and an email address that reaches a line anyway, ours or a
library's, is redacted. The libraries' own loggers (aiokafka, asyncpg, aiosmtplib) stay at
WARNING whatever LOG_LEVEL says: their DEBUG output includes request and record contents.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import structlog

from shared.redaction import RedactingFilter, format_exc_info_safely, redact_event

# Loggers of libraries whose DEBUG lines may show what they send or receive: never below WARNING.
QUIET_LIBRARIES = ("aiokafka", "kafka", "asyncpg", "aiosmtplib", "aiosmtpd", "mail.log")
# faststream's own loggers do not propagate to the root logger; they are filtered where they log.
FASTSTREAM_LOGGERS = ("faststream", "faststream.access.kafka")


def configure_logging(
    service: str, level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            format_exc_info_safely,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries log through the standard library: keep their warnings, in the same stream.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    redacting = RedactingFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(redacting)
    for name in FASTSTREAM_LOGGERS:
        library = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in library.filters):
            library.addFilter(redacting)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


@contextmanager
def bound_event(event_id: object, correlation_id: object, **extra: Any) -> Iterator[None]:
    """Bind event_id and correlation_id to every log line written while one message is handled."""
    with structlog.contextvars.bound_contextvars(
        event_id=str(event_id), correlation_id=str(correlation_id), **extra
    ):
        yield


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
