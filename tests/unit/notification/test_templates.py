"""Template choice and German formatting."""

from __future__ import annotations

from datetime import date
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notification.templates import (
    REASONS_BY_EVENT_TYPE,
    TEMPLATE_DIR,
    Template,
    format_date,
    format_euros,
    format_period,
    reason_text,
    template_for,
)
from shared.events import (
    FUNDING_DECISION_EVENTS,
    REGISTRATION_OUTCOME_EVENTS,
    FundingDeclineReason,
    FundingWaitlistReason,
    RejectionReason,
    WithdrawalReason,
)


@pytest.mark.parametrize(
    ("event_type", "promoted", "expected"),
    [
        ("registration.accepted", False, Template.REGISTRATION_ACCEPTED),
        ("registration.waitlisted", False, Template.REGISTRATION_WAITLISTED),
        ("registration.rejected", False, Template.REGISTRATION_REJECTED),
        ("registration.withdrawn", False, Template.REGISTRATION_WITHDRAWN),
        ("funding.approved", False, Template.FUNDING_APPROVED),
        ("funding.approved", True, Template.FUNDING_PROMOTED),
        ("funding.waitlisted", False, Template.FUNDING_WAITLISTED),
        ("funding.declined", False, Template.FUNDING_DECLINED),
        ("funding.released", False, Template.FUNDING_RELEASED),
    ],
)
def test_every_outcome_has_its_letter(event_type: str, promoted: bool, expected: Template) -> None:
    assert template_for(event_type, promoted=promoted) is expected


def test_every_consumed_event_type_has_a_letter_and_every_letter_has_both_parts() -> None:
    for event_type in [*REGISTRATION_OUTCOME_EVENTS, *FUNDING_DECISION_EVENTS]:
        assert template_for(event_type) in Template
    for template in Template:
        assert (TEMPLATE_DIR / f"{template}.txt.j2").is_file()
        assert (TEMPLATE_DIR / f"{template}.html.j2").is_file()


def test_an_unknown_event_type_has_no_letter() -> None:
    with pytest.raises(ValueError, match="no letter"):
        template_for("seminar.published")


@pytest.mark.parametrize(
    ("event_type", "reasons"),
    [
        ("registration.rejected", RejectionReason),
        ("registration.withdrawn", WithdrawalReason),
        ("funding.waitlisted", FundingWaitlistReason),
        ("funding.declined", FundingDeclineReason),
    ],
)
def test_every_reason_of_the_contract_is_put_into_german_words(event_type: str, reasons: object) -> None:
    codes = set(get_args(reasons))
    assert set(REASONS_BY_EVENT_TYPE[event_type]) == codes
    for code in codes:
        text = reason_text(event_type, code)
        assert text.endswith(".")
        assert "_" not in text


@pytest.mark.parametrize(
    ("cents", "expected"),
    [
        (0, "0,00 €"),
        (5, "0,05 €"),
        (50_000, "500,00 €"),
        (123_456, "1.234,56 €"),
        (100_000_000, "1.000.000,00 €"),
    ],
)
def test_euros_are_written_the_german_way(cents: int, expected: str) -> None:
    assert format_euros(cents) == expected


@given(st.integers(min_value=0, max_value=10**11))
def test_euro_formatting_keeps_the_amount(cents: int) -> None:
    text = format_euros(cents)
    assert text.endswith(" €")
    euros, _, rest = text.removesuffix(" €").partition(",")
    assert len(rest) == 2
    assert int(euros.replace(".", "")) * 100 + int(rest) == cents


def test_dates_are_written_the_german_way() -> None:
    assert format_date(date(2023, 2, 1)) == "01.02.2023"
    assert format_period(date(2023, 2, 1), date(2023, 2, 3)) == "01.02.2023 bis 03.02.2023"
    assert format_period(date(2023, 2, 1), date(2023, 2, 1)) == "01.02.2023"
