"""The demo and the report follow the selected programme: its Land, courses, periods and places."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from deploy.local.config import local_env
from lotse.figures import programme_figures
from lotse.reference import ReferenceData, load_reference_data
from lotse.scenario import DEMO, SMALL, ScenarioSize, build_scenario, scenario_years
from shared.directory import KommuneKind
from shared.program import PROGRAMS_DIR, Course
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT

PROGRAMMES = ("niedersachsen", "bayern", "baden-wuerttemberg")


@pytest.fixture(scope="module", params=PROGRAMMES)
def reference(request: pytest.FixtureRequest) -> ReferenceData:
    return load_reference_data(PROGRAMS_DIR / f"{request.param}.toml", DEFAULT_DIRECTORY_FILE)


@pytest.mark.parametrize(
    ("programme", "eligible", "places", "kreise", "bezirke", "years"),
    [
        ("niedersachsen", 440, 880, 45, 0, (2022, 2023)),
        ("bayern", 2_134, 2_134, 96, 7, (2023, 2024)),
        ("baden-wuerttemberg", 1_136, 1_600, 44, 0, (2022, 2023)),
    ],
)
def test_the_report_counts_the_programmes_kommunen_places_and_areas(  # noqa: PLR0917
    programme: str, eligible: int, places: int, kreise: int, bezirke: int, years: tuple[int, int]
) -> None:
    reference = load_reference_data(PROGRAMS_DIR / f"{programme}.toml", DEFAULT_DIRECTORY_FILE)
    figures = programme_figures(reference)
    assert (figures.eligible_kommunen, figures.places) == (eligible, places)
    levels = Counter(area.level for area in figures.areas)
    assert (levels["kreis"], levels["bezirk"]) == (kreise, bezirke)
    assert [p.period_id for p in figures.periods] == [p.id for p in reference.program.periods]
    assert scenario_years(reference.program) == years
    # The Kreise split the eligible Kommunen between them; only a Bezirk lies under none.
    in_kreise = [key for area in figures.areas if area.level == "kreis" for key in area.eligible]
    assert len(in_kreise) == len(set(in_kreise)) == eligible - bezirke


def test_bayern_reports_its_bezirke_and_baden_wuerttemberg_its_stadtkreise() -> None:
    bayern = programme_figures(load_reference_data(PROGRAMS_DIR / "bayern.toml", DEFAULT_DIRECTORY_FILE))
    oberbayern = next(area for area in bayern.areas if area.key == "091")
    assert (oberbayern.name, oberbayern.label) == ("Oberbayern", "Bezirk")
    assert "091" in oberbayern.eligible and "09188" in oberbayern.eligible  # itself, Landkreis Starnberg
    bw = programme_figures(
        load_reference_data(PROGRAMS_DIR / "baden-wuerttemberg.toml", DEFAULT_DIRECTORY_FILE)
    )
    labels = Counter(area.label for area in bw.areas)
    assert labels == {"Landkreis": 35, "Stadtkreis": 9}


def test_the_scenario_is_reproducible(reference: ReferenceData) -> None:
    first = build_scenario(reference.directory, reference.program, SMALL)
    second = build_scenario(reference.directory, reference.program, SMALL)
    assert [(r.registration_id, r.kommune.key, r.email, r.submitted_at) for r in first.registrations] == [
        (r.registration_id, r.kommune.key, r.email, r.submitted_at) for r in second.registrations
    ]
    assert first.seminars == second.seminars


@pytest.mark.parametrize("size", [SMALL, DEMO], ids=["small", "demo"])
def test_the_scenario_plays_in_the_programmes_land_periods_and_courses(
    reference: ReferenceData, size: ScenarioSize
) -> None:
    program = reference.program
    scenario = build_scenario(reference.directory, program, size)
    assert scenario.program_id == program.id
    assert all(r.kommune.land in program.eligibility.lands for r in scenario.registrations)
    for seminar in scenario.seminars:
        period = program.period_for(seminar.starts_on)
        assert period is not None and period.contains(seminar.ends_on), seminar
        assert seminar.data()["course"] == seminar.course.value
    assert {s.starts_on.year for s in scenario.seminars} == set(scenario_years(program))
    courses = Counter(s.course for s in scenario.seminars)
    follow_ups = [r for r in scenario.registrations if r.course is Course.FOLLOW_UP]
    late = [r for r in scenario.registrations if r.late]
    if program.course_funded(Course.FOLLOW_UP):
        assert courses[Course.FOLLOW_UP] > 0 and follow_ups
        basics = {r.email for r in scenario.registrations if r.course is Course.BASIC}
        assert any(r.email in basics for r in follow_ups)  # with a basic course
        assert any(r.email not in basics for r in follow_ups)  # without one: prerequisite_missing
    else:
        assert courses[Course.FOLLOW_UP] == 0 and not follow_ups
    if program.funds_registrations_after_start:
        assert not late
    else:
        assert late and all(r.submitted_at.date() >= r.seminar.starts_on for r in late)
    # Everyone else registered before the seminar began.
    assert all(r.submitted_at < r.seminar.begins_at for r in scenario.registrations if r not in late)
    # Eligible Kommunen of every funded kind, and some that the programme does not fund.
    kinds = {r.kommune.kind for r in scenario.registrations if program.eligible(r.kommune)}
    assert kinds == set(program.eligibility.kinds)
    assert any(not program.eligible(r.kommune) for r in scenario.registrations)
    # Some Kommunen send more than their places: the quota waitlist.
    per_kommune = Counter(
        r.kommune.key for r in scenario.registrations if r.course is Course.BASIC and not r.late
    )
    assert any(
        count > program.quota_for(reference.directory.kommunen[key]) for key, count in per_kommune.items()
    )
    assert scenario.withdrawals and set(scenario.withdrawals) <= set(scenario.registrations)
    assert all(r.course is Course.BASIC and not r.late for r in scenario.withdrawals)


def test_one_kommune_sends_one_form_of_its_key(reference: ReferenceData) -> None:
    scenario = build_scenario(reference.directory, reference.program, DEMO)
    forms: dict[str, set[str]] = {}
    for registration in scenario.registrations:
        forms.setdefault(registration.kommune.key, set()).add(registration.given_key)
    assert all(len(given) == 1 for given in forms.values())


def test_bayern_registers_a_bezirk_and_no_mitgliedsgemeinde() -> None:
    reference = load_reference_data(PROGRAMS_DIR / "bayern.toml", DEFAULT_DIRECTORY_FILE)
    scenario = build_scenario(reference.directory, reference.program, SMALL)
    kinds = Counter(r.kommune.kind for r in scenario.registrations)
    assert kinds[KommuneKind.BEZIRK] >= 1
    assert kinds[KommuneKind.GEMEINDEVERBAND] == SMALL.not_eligible  # Verwaltungsgemeinschaften
    assert all(s.seminar_id.startswith("BVS-DL-") for s in scenario.seminars)
    assert all((s.ends_on - s.starts_on).days == 3 for s in scenario.seminars)  # four days
    assert min(s.starts_on for s in scenario.seminars) >= date(2023, 1, 1)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, PROGRAMS_DIR / "niedersachsen.toml"),
        ("", PROGRAMS_DIR / "niedersachsen.toml"),  # `export FUNDING_PROGRAM_FILE` of an unset make variable
        ("services/funding/programs/bayern.toml", PROGRAMS_DIR / "bayern.toml"),
    ],
)
def test_the_local_stack_passes_one_resolved_programme_file(
    monkeypatch: pytest.MonkeyPatch, given: str | None, expected: Path
) -> None:
    """`make up` and `make demo` give every service and lotse this value (deploy.local.config)."""
    monkeypatch.chdir(REPO_ROOT)
    if given is None:
        monkeypatch.delenv("FUNDING_PROGRAM_FILE", raising=False)
    else:
        monkeypatch.setenv("FUNDING_PROGRAM_FILE", given)
    assert local_env()["FUNDING_PROGRAM_FILE"] == str(expected)
    assert Path(local_env()["FUNDING_PROGRAM_FILE"]).is_absolute()
