"""When to try a failed email again, and when to give up on it. Pure.

Temporary failures (connection refused, timeouts, 4xx replies) are retried with exponential
backoff and jitter, the delay capped at NOTIFICATION_BACKOFF_MAX_SECONDS, and never parked: they
say the server cannot take the email now, not that it never will, so the email is delivered once
the server recovers, however long that takes. From NOTIFICATION_MAX_ATTEMPTS attempts on, the
sender reports each further temporary failure as an error, for an operator to look at.

A permanent failure (a 5xx reply, an address the server refuses) parks the email once
NOTIFICATION_MAX_PERMANENT_ATTEMPTS attempts (of any kind) were made, by default at the first:
RFC 5321 asks clients not to repeat a request the server refused for good, and retrying it only
delays the operator who has to fix it. Operators whose relay answers 5xx for passing conditions
can allow a few more attempts. The parked email stays in the database, and `notification.failed`
reports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retry:
    delay_seconds: float


@dataclass(frozen=True)
class Park:
    pass


def backoff_delay(attempt: int, *, base: float, maximum: float, jitter: float) -> float:
    """The wait after failed attempt number `attempt` (1-based); `jitter` in [0, 1) spreads retries.

    The delay doubles per attempt up to `maximum`, and the jitter takes up to half of it away, so
    that emails that failed together (one server outage) do not all come back at the same moment.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0 <= jitter < 1:
        raise ValueError("jitter lies in [0, 1)")
    ceiling = min(maximum, base * 2.0 ** min(attempt - 1, 62))
    return ceiling * (1 - jitter / 2)


def after_failure(
    attempts: int,
    *,
    permanent: bool,
    max_permanent_attempts: int = 1,
    base: float,
    maximum: float,
    jitter: float,
) -> Retry | Park:
    """What to do with an email whose `attempts`-th delivery attempt (of any kind) just failed."""
    if permanent and attempts >= max_permanent_attempts:
        return Park()
    return Retry(backoff_delay(attempts, base=base, maximum=maximum, jitter=jitter))
