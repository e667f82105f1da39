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
    ProgrammeWording,
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
from shared.program import PROGRAM_RULE_REASONS, PROGRAMS_DIR, ProgramError, load_program, parse_program


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


# funding.declined's reasons of issue 19, by name: shared.events may not list them yet.
NEW_DECLINE_REASONS = {"prerequisite_missing", "registered_after_start", "course_not_funded"}
WORDINGS = {
    path.stem: ProgrammeWording.of(load_program(path)) for path in sorted(PROGRAMS_DIR.glob("*.toml"))
}


@pytest.mark.parametrize("programme", sorted(WORDINGS))
@pytest.mark.parametrize(
    ("event_type", "reasons", "extra"),
    [
        ("registration.rejected", RejectionReason, set()),
        ("registration.withdrawn", WithdrawalReason, set()),
        ("funding.waitlisted", FundingWaitlistReason, set()),
        ("funding.declined", FundingDeclineReason, NEW_DECLINE_REASONS),
    ],
)
def test_every_reason_of_the_contract_is_put_into_german_words(
    programme: str, event_type: str, reasons: object, extra: set[str]
) -> None:
    for code in set(get_args(reasons)) | extra:
        text = reason_text(event_type, code, WORDINGS[programme])
        assert text.endswith(".")
        assert "_" not in text


@pytest.mark.parametrize("reason", sorted(PROGRAM_RULE_REASONS))
def test_a_reason_that_states_a_rule_is_the_programmes_words_where_it_has_them(reason: str) -> None:
    event_type = "funding.waitlisted" if reason == "quota_exhausted" else "funding.declined"
    for path in PROGRAMS_DIR.glob("*.toml"):
        program = load_program(path)
        own = program.reason_text(reason)
        text = reason_text(event_type, reason, ProgrammeWording.of(program))
        assert text == (own if own is not None else REASONS_BY_EVENT_TYPE[event_type][reason])


def test_the_reasons_only_a_programme_words_need_one() -> None:
    with pytest.raises(ValueError, match="programme"):
        reason_text("funding.declined", "kommune_not_eligible")


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


def test_the_land_must_be_named_with_its_article_so_that_letters_can_refer_back_to_it() -> None:
    text = (PROGRAMS_DIR / "bayern.toml").read_text("utf-8")
    without_article = text.replace('nominative = "der Freistaat Bayern"', 'nominative = "Freistaat Bayern"')
    assert without_article != text
    with pytest.raises(ProgramError, match="article"):
        ProgrammeWording.of(parse_program(without_article))


def test_the_relative_pronoun_follows_the_lands_article() -> None:
    assert WORDINGS["niedersachsen"].land.relative_pronoun == "das"
    assert WORDINGS["bayern"].land.relative_pronoun == "der"


@pytest.mark.parametrize(
    ("programme", "course", "funded", "takes_place"),
    [
        ("niedersachsen", None, True, True),
        ("niedersachsen", "follow_up", False, False),
        ("bayern", "basic", True, True),
        ("baden-wuerttemberg", "follow_up", True, False),
    ],
)
def test_a_letter_words_the_terms_of_its_course(
    programme: str, course: str | None, funded: bool, takes_place: bool
) -> None:
    context = WORDINGS[programme].course_context(course)
    assert context["course_funded"] is funded
    assert (context["amount_in_words"] is not None) is funded
    assert context["takes_quota_place"] is takes_place
