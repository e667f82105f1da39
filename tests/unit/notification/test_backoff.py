"""The retry schedule for temporary SMTP failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notification.backoff import Park, Retry, after_failure, backoff_delay


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 30.0), (2, 60.0), (3, 120.0), (4, 240.0), (7, 1920.0), (8, 3600.0), (50, 3600.0)],
)
def test_the_delay_doubles_up_to_the_maximum(attempt: int, expected: float) -> None:
    assert backoff_delay(attempt, base=30, maximum=3600, jitter=0) == expected


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=600),
    maximum=st.floats(min_value=0.001, max_value=86_400),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_jitter_takes_at_most_half_of_the_delay(
    attempt: int, base: float, maximum: float, jitter: float
) -> None:
    ceiling = backoff_delay(attempt, base=base, maximum=maximum, jitter=0)
    delay = backoff_delay(attempt, base=base, maximum=maximum, jitter=jitter)
    assert ceiling / 2 <= delay <= ceiling <= maximum
    assert delay > 0


@given(attempt=st.integers(min_value=1, max_value=100), jitter=st.floats(min_value=0, max_value=0.999))
def test_later_attempts_never_wait_less_than_half_of_earlier_ones(attempt: int, jitter: float) -> None:
    earlier = backoff_delay(attempt, base=1, maximum=3600, jitter=0)
    later = backoff_delay(attempt + 1, base=1, maximum=3600, jitter=jitter)
    assert later >= earlier / 2


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.0), (1, 1.0), (1, -0.1)])
def test_nonsense_input_is_refused(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(attempt, base=1, maximum=2, jitter=jitter)


@pytest.mark.parametrize(
    ("attempts", "permanent", "expected"),
    [
        (1, False, Retry(1.0)),
        (2, False, Retry(2.0)),
        (4, False, Retry(8.0)),
        # Temporary failures are never parked, however often they come: the delay stays capped.
        (5, False, Retry(16.0)),
        (9, False, Retry(60.0)),
        (10_000, False, Retry(60.0)),
        (1, True, Park()),
        (4, True, Park()),
    ],
)
def test_temporary_failures_are_retried_for_ever_and_permanent_ones_park_at_once(
    attempts: int, permanent: bool, expected: Retry | Park
) -> None:
    decision = after_failure(attempts, permanent=permanent, base=1, maximum=60, jitter=0)
    assert decision == expected


@pytest.mark.parametrize(
    ("attempts", "permanent", "expected"),
    [
        (1, True, Retry(1.0)),
        (2, True, Retry(2.0)),
        (3, True, Park()),
        # Temporary failures before count too: the email has been tried often enough.
        (4, True, Park()),
        (3, False, Retry(4.0)),
        (5, False, Retry(16.0)),
    ],
)
def test_permanent_failures_park_after_their_configured_number_of_attempts(
    attempts: int, permanent: bool, expected: Retry | Park
) -> None:
    decision = after_failure(
        attempts, permanent=permanent, max_permanent_attempts=3, base=1, maximum=60, jitter=0
    )
    assert decision == expected


@given(
    attempts=st.integers(min_value=1, max_value=100_000),
    permanent=st.booleans(),
    max_permanent_attempts=st.integers(min_value=1, max_value=20),
    maximum=st.floats(min_value=0.001, max_value=86_400),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_only_permanent_failures_are_parked_and_every_retry_waits_at_most_the_maximum(
    attempts: int, permanent: bool, max_permanent_attempts: int, maximum: float, jitter: float
) -> None:
    decision = after_failure(
        attempts,
        permanent=permanent,
        max_permanent_attempts=max_permanent_attempts,
        base=1,
        maximum=maximum,
        jitter=jitter,
    )
    assert isinstance(decision, Park) == (permanent and attempts >= max_permanent_attempts)
    if isinstance(decision, Retry):
        assert 0 < decision.delay_seconds <= maximum
