"""Random programmes within the format parse and keep the rules' invariants; broken ones are
refused with an error that names the broken field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.directory import BEZIRK_LANDS, Kommune, KommuneKind
from shared.program import Course, ProgramError, parse_program, seminar_begins_at

LANDS = ["03", "08", "09"]
TEXT = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzäöüß ÄÖÜ%€.,;:()-0123456789"), min_size=1, max_size=40
).map(lambda value: value.strip() or "Text")


def toml_value(value: Any) -> str:
    """A small TOML writer for what the strategies produce (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in data.items())


@st.composite
def amount_rules(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        share = draw(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1), places=2))
        rule: dict[str, Any] = {"rule": "share_of_fee", "share": str(share)}
        if draw(st.booleans()):
            rule["max_cents"] = draw(st.integers(0, 10**7))
        return rule
    return {"rule": "per_seminar_day", "cents_per_day": draw(st.integers(0, 10**6))}


@st.composite
def periods(draw: st.DrawFn) -> list[dict[str, Any]]:
    starts_on = draw(st.dates(min_value=date(2015, 1, 1), max_value=date(2030, 1, 1)))
    drawn = []
    for number in range(draw(st.integers(1, 4))):
        ends_on = starts_on + timedelta(days=draw(st.integers(0, 800)))
        period: dict[str, Any] = {"id": f"p{number}", "starts_on": starts_on, "ends_on": ends_on}
        if draw(st.booleans()):
            period["budget_cents"] = draw(st.integers(0, 10**9))
        drawn.append(period)
        starts_on = ends_on + timedelta(days=draw(st.integers(1, 60)))
    return drawn


@st.composite
def programmes(draw: st.DrawFn) -> dict[str, Any]:
    """A programme file's data within the format (TOML types: str, int, bool, date, list, table)."""
    lands = draw(st.lists(st.sampled_from(LANDS), min_size=1, max_size=3, unique=True))
    allowed = [kind for kind in KommuneKind if kind is not KommuneKind.BEZIRK or BEZIRK_LANDS & set(lands)]
    kinds = draw(st.lists(st.sampled_from(allowed), min_size=1, unique=True))
    bands = []
    for _ in range(draw(st.integers(0, 4))):
        low = draw(st.integers(0, 200_000))
        band: dict[str, Any] = {"places": draw(st.integers(0, 10)), "min_population": low}
        if draw(st.booleans()):
            band["kinds"] = [
                kind.value for kind in draw(st.lists(st.sampled_from(kinds), min_size=1, unique=True))
            ]
        if draw(st.booleans()):
            band["max_population"] = low + draw(st.integers(0, 200_000))
        bands.append(band)
    follow_up: dict[str, Any] = {"funded": draw(st.booleans())}
    if follow_up["funded"]:
        follow_up |= {
            "amount": draw(amount_rules()),
            "requires_funded_basic": draw(st.booleans()),
            "takes_quota_place": draw(st.booleans()),
        }
    after_start = draw(st.booleans())
    data: dict[str, Any] = {
        "id": draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)),
        "name": draw(TEXT),
        "funds_registrations_after_start": after_start,
        "amount": draw(amount_rules()),
        "courses": {"follow_up": follow_up},
        "quota": {"places": draw(st.integers(0, 10)), "bands": bands},
        "eligibility": {"lands": lands, "kinds": [kind.value for kind in kinds]},
        "periods": draw(periods()),
    }
    if draw(st.booleans()):
        reasons = {"quota_exhausted": draw(TEXT), "kommune_not_eligible": draw(TEXT)}
        if not follow_up["funded"]:
            reasons["course_not_funded"] = draw(TEXT)
        elif follow_up["requires_funded_basic"]:
            reasons["prerequisite_missing"] = draw(TEXT)
        if not after_start:
            reasons["registered_after_start"] = draw(TEXT)
        words = {"basic": draw(TEXT)} | ({"follow_up": draw(TEXT)} if follow_up["funded"] else {})
        data["letters"] = {
            "places_in_words": draw(TEXT),
            "land": {case: draw(TEXT) for case in ("nominative", "accusative", "dative", "genitive")},
            "office": {
                "name": draw(TEXT),
                "organisation": draw(TEXT),
                "address_lines": draw(st.lists(TEXT, max_size=3)),
                "mail_from": "Programmbüro <office@programme.example>",
            },
            "amount_in_words": words,
            "reasons": reasons,
        }
    return data


def expected_places(quota: dict[str, Any], kommune: Kommune) -> int:
    """The format's rule, written out again: the first band that matches, else `places`."""
    for band in quota["bands"]:
        kinds = band.get("kinds")
        if kinds is not None and kommune.kind.value not in kinds:
            continue
        if band["min_population"] <= kommune.population <= band.get("max_population", kommune.population):
            return int(band["places"])
    return int(quota["places"])


kommunen = st.builds(
    Kommune,
    key=st.just("000000000000"),
    name=st.just("Musterkommune"),
    kind=st.sampled_from(list(KommuneKind)),
    land=st.sampled_from(LANDS),
    population=st.integers(0, 5_000_000),
)


@settings(max_examples=100, deadline=None)
@given(programmes(), kommunen, st.integers(0, 10**7), st.integers(1, 10), st.sampled_from(list(Course)))
def test_random_programmes_parse_and_keep_the_invariants(
    data: dict[str, Any], kommune: Kommune, fee: int, days: int, course: Course
) -> None:
    program = parse_program(toml_document(data), "random.toml")
    assert program.id == data["id"]
    terms = program.course(course)
    if terms.funded:
        assert 0 <= program.course_amount_cents(course, fee, days) <= fee
    else:
        assert course is Course.FOLLOW_UP and not data["courses"]["follow_up"]["funded"]
    assert program.quota_for(kommune) == expected_places(data["quota"], kommune)
    assert program.eligible(kommune) is (
        kommune.land in data["eligibility"]["lands"] and kommune.kind.value in data["eligibility"]["kinds"]
    )
    for period in program.periods:
        assert program.period_for(period.starts_on) == period
        assert program.period_for(period.ends_on) == period
    if program.letters is not None:
        for reason in program.possible_rule_reasons:
            assert program.reason_text(reason)


@settings(max_examples=50, deadline=None)
@given(
    programmes(),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
    st.integers(-3 * 86_400, 3 * 86_400),
)
def test_once_too_late_always_too_late(data: dict[str, Any], starts_on: date, seconds: int) -> None:
    program = parse_program(toml_document(data))
    submitted_at = seminar_begins_at(starts_on) + timedelta(seconds=seconds)
    later = submitted_at + timedelta(hours=1)
    if program.registered_too_late(submitted_at, starts_on):
        assert program.registered_too_late(later, starts_on)
        assert not program.funds_registrations_after_start and seconds >= 0
    assert program.registered_too_late(submitted_at, starts_on) is (
        not data["funds_registrations_after_start"] and seconds >= 0
    )


Breakage = Callable[[dict[str, Any]], str]  # breaks the data in place, returns what the error names


def _unknown_top_level_field(data: dict[str, Any]) -> str:
    data["budget"] = 1
    return "budget: unknown field"


def _missing_quota(data: dict[str, Any]) -> str:
    del data["quota"]
    return "quota: missing"


def _unknown_amount_rule(data: dict[str, Any]) -> str:
    data["amount"] = {"rule": "lump_sum"}
    return "amount: Input tag 'lump_sum'"


def _period_ends_before_it_starts(data: dict[str, Any]) -> str:
    first = data["periods"][0]
    first["ends_on"] = first["starts_on"] - timedelta(days=1)
    return "periods[0]: period p0: ends_on lies before starts_on"


def _duplicate_period(data: dict[str, Any]) -> str:
    data["periods"].append(copy.deepcopy(data["periods"][0]))
    return "period ids must be unique"


def _no_kinds(data: dict[str, Any]) -> str:
    data["eligibility"]["kinds"] = []
    return "eligibility.kinds: List should have at least 1 item"


def _negative_places(data: dict[str, Any]) -> str:
    data["quota"]["places"] = -1
    return "quota.places: Input should be greater than or equal to 0"


def _funded_follow_up_without_terms(data: dict[str, Any]) -> str:
    data["courses"]["follow_up"] = {"funded": True}
    return "courses.follow_up: funded follow-up courses must state amount"


def _flag_as_text(data: dict[str, Any]) -> str:
    data["funds_registrations_after_start"] = "yes"
    return "funds_registrations_after_start: Input should be a valid boolean"


def _share_as_float(data: dict[str, Any]) -> str:
    data["amount"] = {"rule": "share_of_fee", "share": 0.5}
    return "amount.share: write the share as a string"


BREAKAGES: list[Breakage] = [
    _unknown_top_level_field,
    _missing_quota,
    _unknown_amount_rule,
    _period_ends_before_it_starts,
    _duplicate_period,
    _no_kinds,
    _negative_places,
    _funded_follow_up_without_terms,
    _flag_as_text,
    _share_as_float,
]


@settings(max_examples=100, deadline=None)
@given(programmes(), st.sampled_from(BREAKAGES))
def test_broken_programmes_are_refused_naming_the_field(data: dict[str, Any], breakage: Breakage) -> None:
    expected = breakage(data)
    try:
        parse_program(toml_document(data), "broken.toml")
    except ProgramError as refused:
        assert str(refused).startswith("broken.toml: ")
        assert expected in str(refused), str(refused)
    else:
        raise AssertionError(f"accepted a broken programme ({breakage.__name__})")
