"""The three programme files (Niedersachsen, Bayern, Baden-Württemberg) and the format's rules.

Figures and rules: ../shared/DOMAIN.md ("Other Länder"), issue 19. One row per rule and boundary.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from typing import Any

import pytest

from shared.directory import Directory, Kommune, KommuneKind, load_directory
from shared.program import (
    DEFAULT_PROGRAM_FILE,
    PROGRAM_RULE_REASONS,
    PROGRAMS_DIR,
    Course,
    Program,
    ProgramError,
    load_program,
    parse_program,
    seminar_begins_at,
    seminar_days,
)
from shared.settings import DEFAULT_DIRECTORY_FILE

NIEDERSACHSEN_FILE = PROGRAMS_DIR / "niedersachsen.toml"
BAYERN_FILE = PROGRAMS_DIR / "bayern.toml"
BADEN_WUERTTEMBERG_FILE = PROGRAMS_DIR / "baden-wuerttemberg.toml"

K = KommuneKind


@cache
def directory() -> Directory:
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


@cache
def program(name: str) -> Program:
    return load_program(PROGRAMS_DIR / f"{name}.toml")


NI, BY, BW = "niedersachsen", "bayern", "baden-wuerttemberg"


def kommune(kind: KommuneKind, land: str, population: int = 5_000) -> Kommune:
    """A Kommune of a kind and size (the directory has none exactly at each boundary)."""
    return Kommune("000000000000", "Musterkommune", kind, land, population)


def known(key: str) -> Kommune:
    found = directory().get(key)
    assert found is not None, key
    return found


# --- the files -------------------------------------------------------------------------------


def test_the_default_programme_is_niedersachsen() -> None:
    assert DEFAULT_PROGRAM_FILE == NIEDERSACHSEN_FILE
    assert program(NI).id == "niedersachsen"


@pytest.mark.parametrize(
    ("name", "periods"),
    [
        (
            NI,
            [
                ("2021-2022", date(2021, 3, 4), date(2022, 12, 31), None),
                ("2023", date(2023, 1, 1), date(2023, 12, 31), 20_000_000),
            ],
        ),
        (
            BY,
            [
                ("2019-2023", date(2019, 10, 1), date(2023, 12, 31), None),
                ("2024-2025", date(2024, 1, 1), date(2025, 12, 31), 64_000_000),
            ],
        ),
        (BW, [("2022-2025", date(2022, 1, 1), date(2025, 12, 31), None)]),
    ],
)
def test_each_programme_has_its_periods_and_budgets(
    name: str, periods: list[tuple[str, date, date, int | None]]
) -> None:
    assert program(name).id == name
    assert [(p.id, p.starts_on, p.ends_on, p.budget_cents) for p in program(name).periods] == periods


@pytest.mark.parametrize("path", [BAYERN_FILE, BADEN_WUERTTEMBERG_FILE])
def test_the_new_files_name_their_sources_and_mark_their_assumptions(path: Any) -> None:
    text = path.read_text("utf-8")
    assert "Sources:" in text
    assert "Assumption:" in text  # the periods and budgets no source gives


# --- eligible Kommunen and places (GV100AD 31.12.2022) ------------------------------------------


@pytest.mark.parametrize(
    ("name", "kommunen", "places", "by_kind"),
    [
        (
            NI,
            440,
            880,
            {K.LANDKREIS: 37, K.KREISFREIE_STADT: 8, K.EINHEITSGEMEINDE: 281, K.SAMTGEMEINDE: 114},
        ),
        (
            BY,
            2_134,
            2_134,
            {
                # 2,056 Gemeinden (25 of them kreisfreie Städte), 71 Landkreise, 7 Bezirke
                K.EINHEITSGEMEINDE: 1_049,
                K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT: 982,
                K.KREISFREIE_STADT: 25,
                K.LANDKREIS: 71,
                K.BEZIRK: 7,
            },
        ),
        (
            BW,
            1_136,
            1_600,
            {
                # 1,101 Gemeinden (of which the 9 Stadtkreise) and 35 Landkreise
                K.EINHEITSGEMEINDE: 181,
                K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT: 911,
                K.KREISFREIE_STADT: 9,
                K.LANDKREIS: 35,
            },
        ),
    ],
)
def test_eligible_kommunen_and_places_in_the_2022_directory(
    name: str, kommunen: int, places: int, by_kind: dict[KommuneKind, int]
) -> None:
    eligible = program(name).eligible_kommunen(directory())
    assert len(eligible) == kommunen
    assert Counter(k.kind for k in eligible) == by_kind
    assert program(name).places_in(directory()) == places
    assert {k.land for k in eligible} == set(program(name).eligibility.lands)


def test_bayern_has_2056_gemeinden_and_one_place_each() -> None:
    eligible = program(BY).eligible_kommunen(directory())
    assert sum(1 for k in eligible if len(k.key) == 12) == 2_056
    assert {program(BY).quota_for(k) for k in eligible} == {1}


def test_baden_wuerttemberg_stadtkreise_are_the_gemeinden_above_130000_and_count_as_kreise() -> None:
    gemeinden = [k for k in directory().in_land("08") if len(k.key) == 12]
    large = {k.key for k in gemeinden if k.population > 130_000}
    stadtkreise = {k.key for k in gemeinden if k.kind is K.KREISFREIE_STADT}
    assert len(stadtkreise) == 9
    assert large <= stadtkreise  # every Gemeinde above 130,000 is a Stadtkreis
    eligible = program(BW).eligible_kommunen(directory())
    assert sum(1 for k in eligible if len(k.key) == 12) == 1_101
    for key in stadtkreise:
        places = program(BW).quota_for(known(key))
        assert places == (4 if known(key).population <= 175_000 else 5)


def test_every_eligible_baden_wuerttemberg_kommune_falls_in_a_band() -> None:
    bw = program(BW)
    assert all(bw.quota.band_for(k) is not None for k in bw.eligible_kommunen(directory()))


@pytest.mark.parametrize(
    ("key", "places"),
    [
        ("081110000000", 5),  # Stuttgart, Stadtkreis, 632,865
        ("082110000000", 4),  # Baden-Baden, Stadtkreis, 57,025
        ("081155001001", 1),  # Aidlingen, in a Gemeindeverwaltungsverband, 9,352
    ],
)
def test_baden_wuerttemberg_places_of_real_kommunen(key: str, places: int) -> None:
    assert program(BW).quota_for(known(key)) == places


# --- eligibility ---------------------------------------------------------------------------------

ELIGIBILITY = [
    # Niedersachsen: Landkreise, kreisfreie Städte, Einheitsgemeinden, Samtgemeinden in 03
    (NI, K.LANDKREIS, "03", True),
    (NI, K.KREISFREIE_STADT, "03", True),
    (NI, K.EINHEITSGEMEINDE, "03", True),
    (NI, K.SAMTGEMEINDE, "03", True),
    (NI, K.MITGLIEDSGEMEINDE, "03", False),
    (NI, K.GEMEINDEFREIES_GEBIET, "03", False),
    (NI, K.EINHEITSGEMEINDE, "09", False),
    # Bayern: every Gemeinde (VG members too), Landkreis and Bezirk in 09
    (BY, K.EINHEITSGEMEINDE, "09", True),
    (BY, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, "09", True),
    (BY, K.KREISFREIE_STADT, "09", True),
    (BY, K.LANDKREIS, "09", True),
    (BY, K.BEZIRK, "09", True),
    (BY, K.GEMEINDEVERBAND, "09", False),  # the Verwaltungsgemeinschaft itself
    (BY, K.GEMEINDEFREIES_GEBIET, "09", False),
    (BY, K.LANDKREIS, "08", False),
    # Baden-Württemberg: every Gemeinde, Stadtkreis and Landkreis in 08
    (BW, K.EINHEITSGEMEINDE, "08", True),
    (BW, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, "08", True),
    (BW, K.KREISFREIE_STADT, "08", True),
    (BW, K.LANDKREIS, "08", True),
    (BW, K.GEMEINDEVERBAND, "08", False),
    (BW, K.GEMEINDEFREIES_GEBIET, "08", False),
    (BW, K.LANDKREIS, "09", False),
]


@pytest.mark.parametrize(("name", "kind", "land", "eligible"), ELIGIBILITY)
def test_eligibility(name: str, kind: KommuneKind, land: str, eligible: bool) -> None:
    assert program(name).eligible(kommune(kind, land)) is eligible
    assert program(name).eligibility.admits(kommune(kind, land)) is eligible


@pytest.mark.parametrize(
    ("name", "key", "eligible"),
    [
        (BY, "091", True),  # Oberbayern
        (BY, "097", True),  # Schwaben
        (BY, "091715101114", True),  # Emmerting, member of a Verwaltungsgemeinschaft
        (BY, "091620000000", True),  # München, kreisfreie Stadt
        (NI, "091", False),  # a Bezirk: kommune_not_eligible where Bezirke are not funded
        (BW, "091", False),
        (NI, "033595403002", False),  # Ahlerstedt, Mitgliedsgemeinde of Harsefeld
        (BW, "081155001001", True),
    ],
)
def test_eligibility_of_real_kommunen(name: str, key: str, eligible: bool) -> None:
    assert program(name).eligible(known(key)) is eligible


@pytest.mark.parametrize("key", ["031", "034", "081", "084"])
def test_a_3_digit_key_outside_bayern_names_no_kommune(key: str) -> None:
    # Niedersachsen's statistical regions, Baden-Württemberg's Regierungsbezirke: unknown_kommune.
    assert directory().canonical_key(key) == key
    assert directory().get(key) is None


# --- places (quota) --------------------------------------------------------------------------------

QUOTA = [
    # Baden-Württemberg's Gemeinden
    (BW, K.EINHEITSGEMEINDE, 0, 1),
    (BW, K.EINHEITSGEMEINDE, 9_999, 1),
    (BW, K.EINHEITSGEMEINDE, 10_000, 2),
    (BW, K.EINHEITSGEMEINDE, 30_000, 2),
    (BW, K.EINHEITSGEMEINDE, 30_001, 3),
    (BW, K.EINHEITSGEMEINDE, 130_000, 3),
    (BW, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, 9_999, 1),
    (BW, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, 10_000, 2),
    (BW, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, 30_000, 2),
    (BW, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, 30_001, 3),
    (BW, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, 130_000, 3),
    # Baden-Württemberg's Stadt- and Landkreise (a Stadtkreis takes the Kreis places)
    (BW, K.LANDKREIS, 175_000, 4),
    (BW, K.LANDKREIS, 175_001, 5),
    (BW, K.KREISFREIE_STADT, 57_025, 4),
    (BW, K.KREISFREIE_STADT, 175_000, 4),
    (BW, K.KREISFREIE_STADT, 175_001, 5),
    # Bayern: one place, whatever the size
    (BY, K.EINHEITSGEMEINDE, 9_999, 1),
    (BY, K.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, 130_000, 1),
    (BY, K.LANDKREIS, 175_001, 1),
    (BY, K.BEZIRK, 4_801_769, 1),
    # Niedersachsen: two places
    (NI, K.SAMTGEMEINDE, 9_999, 2),
    (NI, K.LANDKREIS, 175_001, 2),
]


@pytest.mark.parametrize(("name", "kind", "population", "places"), QUOTA)
def test_places_per_kommune(name: str, kind: KommuneKind, population: int, places: int) -> None:
    land = program(name).eligibility.lands[0]
    assert program(name).quota_for(kommune(kind, land, population)) == places


# --- courses and amounts ------------------------------------------------------------------------

COURSES = [
    # name, course, funded, requires a funded basic course, takes a quota place
    (NI, Course.BASIC, True, False, True),
    (NI, Course.FOLLOW_UP, False, False, False),
    (BY, Course.BASIC, True, False, True),
    (BY, Course.FOLLOW_UP, False, False, False),
    (BW, Course.BASIC, True, False, True),
    (BW, Course.FOLLOW_UP, True, True, False),
]


@pytest.mark.parametrize(("name", "course", "funded", "requires_basic", "takes_place"), COURSES)
def test_course_terms(
    name: str, course: Course, funded: bool, requires_basic: bool, takes_place: bool
) -> None:
    terms = program(name).course(course)
    assert (terms.course, terms.funded, terms.requires_funded_basic, terms.takes_quota_place) == (
        course,
        funded,
        requires_basic,
        takes_place,
    )
    assert program(name).course_funded(course.value) is funded  # the contract's string works too
    assert program(name).requires_funded_basic(course) is requires_basic
    assert program(name).takes_quota_place(course) is takes_place


AMOUNTS = [
    # name, course, fee, seminar days, amount
    (NI, Course.BASIC, 123_457, 3, 61_728),  # half, rounded down to the cent
    (NI, Course.BASIC, 1, 3, 0),
    (BY, Course.BASIC, 99_999, 4, 79_999),  # 80 %, rounded down
    (BY, Course.BASIC, 100_000, 4, 80_000),
    (BW, Course.BASIC, 50_000, 3, 30_000),  # EUR 100 per day
    (BW, Course.BASIC, 30_000, 3, 30_000),
    (BW, Course.BASIC, 20_000, 3, 20_000),  # never more than the fee
    (BW, Course.FOLLOW_UP, 50_000, 2, 10_000),  # at most EUR 50 per day
    (BW, Course.FOLLOW_UP, 8_000, 2, 8_000),  # never more than the fee
    (BW, Course.FOLLOW_UP, 0, 1, 0),
]


@pytest.mark.parametrize(("name", "course", "fee", "days", "amount"), AMOUNTS)
def test_course_amounts(name: str, course: Course, fee: int, days: int, amount: int) -> None:
    assert program(name).course_amount_cents(course, fee, days) == amount


@pytest.mark.parametrize(
    ("name", "fee", "days", "amount"),
    [(NI, 123_457, 3, 61_728), (BY, 99_999, 4, 79_999), (BW, 50_000, 3, 30_000)],
)
def test_the_old_call_gives_the_basic_courses_amount(name: str, fee: int, days: int, amount: int) -> None:
    starts_on = date(2024, 5, 6)
    ends_on = starts_on + timedelta(days=days - 1)
    assert seminar_days(starts_on, ends_on) == days
    assert program(name).amount_cents(fee, starts_on, ends_on) == amount


@pytest.mark.parametrize("name", [NI, BY])
def test_an_unfunded_course_has_no_amount(name: str) -> None:
    with pytest.raises(ValueError, match="does not fund follow_up courses"):
        program(name).course_amount_cents(Course.FOLLOW_UP, 50_000, 3)


def test_an_unknown_course_is_refused() -> None:
    with pytest.raises(ValueError, match="advanced"):
        program(BW).course("advanced")


def test_seminar_days_are_at_least_one() -> None:
    assert seminar_days(date(2024, 5, 6), date(2024, 5, 6)) == 1
    assert seminar_days(date(2024, 5, 6), date(2024, 5, 5)) == 1


# --- registrations submitted after the seminar began -----------------------------------------------

CET = timezone(timedelta(hours=1))
CEST = timezone(timedelta(hours=2))

LATE = [
    # winter (CET, UTC+1): the seminar of 15.01.2024 begins at 2024-01-14 23:00 UTC
    (date(2024, 1, 15), datetime(2024, 1, 14, 12, 0, tzinfo=CET), False),  # the day before
    (date(2024, 1, 15), datetime(2024, 1, 14, 23, 59, 59, 999_999, tzinfo=CET), False),
    (date(2024, 1, 15), datetime(2024, 1, 14, 22, 59, 59, tzinfo=UTC), False),
    (date(2024, 1, 15), datetime(2024, 1, 14, 23, 0, tzinfo=UTC), True),  # 00:00 Berlin
    (date(2024, 1, 15), datetime(2024, 1, 15, 0, 0, tzinfo=CET), True),
    (date(2024, 1, 15), datetime(2024, 1, 15, 9, 0, tzinfo=CET), True),  # on the first day
    (date(2024, 1, 15), datetime(2024, 1, 17, 9, 0, tzinfo=CET), True),
    # summer (CEST, UTC+2): the seminar of 15.07.2024 begins at 2024-07-14 22:00 UTC
    (date(2024, 7, 15), datetime(2024, 7, 14, 12, 0, tzinfo=CEST), False),  # the day before
    (date(2024, 7, 15), datetime(2024, 7, 14, 21, 59, 59, tzinfo=UTC), False),
    (date(2024, 7, 15), datetime(2024, 7, 14, 22, 0, tzinfo=UTC), True),  # 00:00 Berlin
    (date(2024, 7, 15), datetime(2024, 7, 14, 23, 30, tzinfo=CET), True),  # 00:30 Berlin already
    (date(2024, 7, 15), datetime(2024, 7, 15, 8, 0, tzinfo=CEST), True),  # on the first day
    # the days the clocks change: midnight still has the offset of the day before
    (date(2024, 3, 31), datetime(2024, 3, 30, 22, 59, 59, tzinfo=UTC), False),
    (date(2024, 3, 31), datetime(2024, 3, 30, 23, 0, tzinfo=UTC), True),
    (date(2024, 10, 27), datetime(2024, 10, 26, 21, 59, 59, tzinfo=UTC), False),
    (date(2024, 10, 27), datetime(2024, 10, 26, 22, 0, tzinfo=UTC), True),
]


@pytest.mark.parametrize(("starts_on", "submitted_at", "too_late"), LATE)
def test_baden_wuerttemberg_funds_no_registration_submitted_after_the_start(
    starts_on: date, submitted_at: datetime, too_late: bool
) -> None:
    assert program(BW).registered_too_late(submitted_at, starts_on) is too_late


@pytest.mark.parametrize("name", [NI, BY])
@pytest.mark.parametrize(("starts_on", "submitted_at", "too_late"), LATE)
def test_niedersachsen_and_bayern_fund_late_registrations(
    name: str, starts_on: date, submitted_at: datetime, too_late: bool
) -> None:
    assert program(name).registered_too_late(submitted_at, starts_on) is False


def test_a_seminar_begins_at_midnight_berlin_time() -> None:
    assert seminar_begins_at(date(2024, 1, 15)) == datetime(2024, 1, 14, 23, 0, tzinfo=UTC)
    assert seminar_begins_at(date(2024, 7, 15)) == datetime(2024, 7, 14, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", [NI, BY, BW])
def test_a_submission_time_without_offset_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        program(name).registered_too_late(datetime(2024, 1, 14, 12, 0), date(2024, 1, 15))


# --- letters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "land", "accusative", "basic", "follow_up"),
    [
        (NI, "das Land Niedersachsen", "das Land Niedersachsen", "die Hälfte der Seminargebühr", None),
        (BY, "der Freistaat Bayern", "den Freistaat Bayern", "80 % der Seminargebühr", None),
        (
            BW,
            "das Land Baden-Württemberg",
            "das Land Baden-Württemberg",
            "100 Euro je Seminartag, höchstens die Seminargebühr",
            "bis zu 50 Euro je Seminartag, höchstens die Seminargebühr",
        ),
    ],
)
def test_letters_name_the_land_and_the_amounts(
    name: str, land: str, accusative: str, basic: str, follow_up: str | None
) -> None:
    letters = program(name).letter_texts()
    assert (letters.land.nominative, letters.land.accusative) == (land, accusative)
    assert (letters.amount_in_words.basic, letters.amount_in_words.follow_up) == (basic, follow_up)


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


@pytest.mark.parametrize("name", [BY, BW])
def test_no_letter_text_of_another_programme_mentions_niedersachsen(name: str) -> None:
    texts = _texts(program(name).letter_texts().model_dump())
    assert len(texts) >= 12
    assert not [text for text in texts if "Niedersachsen" in text or "Samtgemeinde" in text]


def test_niedersachsens_letters_keep_todays_wording() -> None:
    # The wording of services/notification before the texts moved into the programme file.
    letters = program(NI).letter_texts()
    assert letters.office.name == "Programmbüro Digitallotsen"
    assert letters.office.organisation == "Niedersächsisches Studieninstitut für kommunale Verwaltung e. V."
    assert letters.office.mail_from == "Programmbüro Digitallotsen <digitallotsen@nsi-hannover.de>"
    assert letters.office.address_lines == []
    assert letters.places_in_words == "bis zu zwei Beschäftigte je Kommune"
    assert program(NI).reason_text("quota_exhausted") == (
        "Für Ihre Kommune sind bereits zwei Teilnehmende gefördert; mehr sieht das Programm nicht vor."
    )
    assert program(NI).reason_text("kommune_not_eligible") == (
        "Die Kommune ist nicht förderberechtigt: gefördert werden Landkreise, kreisfreie Städte, "
        "Einheitsgemeinden und Samtgemeinden in Niedersachsen, nicht aber Mitgliedsgemeinden."
    )


@pytest.mark.parametrize(
    ("name", "reasons"),
    [
        (NI, {"quota_exhausted", "kommune_not_eligible", "course_not_funded"}),
        (BY, {"quota_exhausted", "kommune_not_eligible", "course_not_funded"}),
        (BW, {"quota_exhausted", "kommune_not_eligible", "prerequisite_missing", "registered_after_start"}),
    ],
)
def test_each_programme_words_the_reasons_it_can_give(name: str, reasons: set[str]) -> None:
    assert program(name).possible_rule_reasons == reasons
    for reason in PROGRAM_RULE_REASONS:
        text = program(name).reason_text(reason)
        assert (text is not None) is (reason in reasons), reason
    for generic in ("unknown_kommune", "budget_exhausted", "outside_funding_period", "period_closed"):
        assert program(name).reason_text(generic) is None


def test_a_programme_without_letters_parses_but_cannot_write_letters() -> None:
    text = NIEDERSACHSEN_FILE.read_text("utf-8").split("\n[letters]")[0]
    parsed = parse_program(text)
    assert parsed.letters is None
    assert parsed.places_in(directory()) == 880
    with pytest.raises(ProgramError, match=r"no \[letters\] table"):
        parsed.letter_texts()


# --- a wrong file: clear errors --------------------------------------------------------------------

BW_TEXT = BADEN_WUERTTEMBERG_FILE.read_text("utf-8")
NI_TEXT = NIEDERSACHSEN_FILE.read_text("utf-8")


def _changed(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


BROKEN = {
    "funded follow-up without an amount": (
        _changed(
            BW_TEXT, '[courses.follow_up.amount]\nrule = "per_seminar_day"\ncents_per_day = 5_000\n', ""
        ),
        "courses.follow_up: funded follow-up courses must state amount",
    ),
    "funded follow-up without its terms": (
        _changed(BW_TEXT, "requires_funded_basic = true\ntakes_quota_place = false\n", ""),
        "must state requires_funded_basic, takes_quota_place",
    ),
    "unfunded follow-up with terms": (
        _changed(
            NI_TEXT,
            "[courses.follow_up]\nfunded = false\n",
            "[courses.follow_up]\nfunded = false\ntakes_quota_place = false\n",
        ),
        "courses.follow_up: follow-up courses are not funded (funded = false), "
        "so takes_quota_place must be left out",
    ),
    "a flag as a string": (
        _changed(
            BW_TEXT, "funds_registrations_after_start = false", 'funds_registrations_after_start = "no"'
        ),
        "funds_registrations_after_start: Input should be a valid boolean",
    ),
    "an unknown course": (
        _changed(NI_TEXT, "[courses.follow_up]", "[courses.advanced]"),
        "courses.advanced: unknown field",
    ),
    "Bezirke outside Bayern": (
        _changed(BW_TEXT, '"kreisfreie_stadt", "landkreis"]', '"kreisfreie_stadt", "landkreis", "bezirk"]'),
        "eligibility: kinds names 'bezirk', but Bezirke are Kommunen only in Land 09",
    ),
    "a kind listed twice": (
        _changed(
            BW_TEXT, '"kreisfreie_stadt", "landkreis"]', '"kreisfreie_stadt", "landkreis", "landkreis"]'
        ),
        "eligibility: kinds lists 'landkreis' twice",
    ),
    "full-width Land": (_changed(BW_TEXT, 'lands = ["08"]', 'lands = ["０８"]'), "eligibility.lands[0]"),
    "places for a kind that is not eligible": (
        _changed(
            BW_TEXT,
            'kinds = ["landkreis", "kreisfreie_stadt"]\nmax_population',
            'kinds = ["landkreis", "samtgemeinde"]\nmax_population',
        ),
        "quota.bands[3] gives places to ['samtgemeinde'], which eligibility.kinds does not admit",
    ),
    "a band upside down": (
        _changed(
            BW_TEXT,
            "min_population = 30_001\nmax_population = 130_000",
            "min_population = 130_000\nmax_population = 30_001",
        ),
        "quota.bands[2]: max_population 30001 lies below min_population 130000",
    ),
    "a reason text missing": (
        _changed(BW_TEXT, "registered_after_start = ", "# registered_after_start = "),
        "letters.reasons.registered_after_start is missing: the programme can give it",
    ),
    "a reason text the programme never gives": (
        _changed(
            BW_TEXT, "registered_after_start = ", 'course_not_funded = "Nein."\nregistered_after_start = '
        ),
        "letters.reasons.course_not_funded must be left out: the programme never gives it",
    ),
    "an unknown reason": (
        _changed(BW_TEXT, "registered_after_start = ", 'too_late = "Zu spät."\nregistered_after_start = '),
        "letters.reasons.too_late: unknown field",
    ),
    "follow-up amount in words missing": (
        _changed(BW_TEXT, 'follow_up = "bis zu 50 Euro', '# follow_up = "bis zu 50 Euro'),
        "letters.amount_in_words.follow_up is missing: follow-up courses are funded",
    ),
    "a letter text over two lines": (
        _changed(NI_TEXT, 'places_in_words = "bis zu zwei', 'places_in_words = "bis zu\\nzwei'),
        "letters.places_in_words: must be one line",
    ),
    "a blank letter text": (
        _changed(NI_TEXT, 'nominative = "das Land Niedersachsen"', 'nominative = " "'),
        "letters.land.nominative: must not be blank",
    ),
    "the Land in one case only": (
        _changed(NI_TEXT, 'genitive = "des Landes Niedersachsen"\n', ""),
        "letters.land.genitive: missing",
    ),
    "a sender without an address": (
        _changed(NI_TEXT, "<digitallotsen@nsi-hannover.de>", "Programmbüro"),
        "letters.office.mail_from: 'Programmbüro Digitallotsen Programmbüro' is not one address",
    ),
}


@pytest.mark.parametrize(("text", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_a_wrong_file_is_refused_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ProgramError) as refused:
        parse_program(text, "programme.toml")
    assert str(refused.value).startswith("programme.toml: ")
    assert message in str(refused.value)


def test_several_problems_are_listed_one_per_line() -> None:
    text = _changed(NI_TEXT, "[quota]\nplaces = 2", "[quota]\nplaces = -2\nper_period = 1")
    with pytest.raises(ProgramError) as refused:
        parse_program(text, "programme.toml")
    assert str(refused.value).splitlines() == [
        "programme.toml: 2 problems:",
        "  quota.places: Input should be greater than or equal to 0",
        "  quota.per_period: unknown field: the programme format has no such field",
    ]


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(NI_TEXT.encode("latin-1"))
    with pytest.raises(ProgramError, match=r"latin1\.toml"):
        load_program(path)


def test_the_three_files_fill_the_same_tables() -> None:
    # Nothing is left to a default that differs between them silently.
    tables = {name: set(program(name).model_dump(exclude_unset=True)) for name in (NI, BY, BW)}
    assert tables[NI] == tables[BY] == tables[BW]
