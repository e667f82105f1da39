"""Issue 19: the first decision under each Land's programme file, one row per rule and boundary
(ADR 0014's order: eligibility, course, deadline, period, prerequisite, quota, budget), and the
prerequisite of follow-up courses through the real applier over the in-memory unit of work."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.funding.domain import (
    Application,
    Approve,
    Budget,
    Decline,
    FirstDecision,
    QuotaState,
    Release,
    Status,
    Waitlist,
    decide_first,
)
from services.funding.participants import (
    ParticipantKeyError,
    checked_key,
    normalised_email,
    participant_hash,
)
from shared.program import PROGRAMS_DIR, Course, Program, load_program
from tests.unit.funding.fakes import InMemoryFundingService, accepted_event
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    PARTICIPANT_KEY,
    courses_program,
    directory,
)

BERLIN = ZoneInfo("Europe/Berlin")
PROGRAMS = {
    name: load_program(PROGRAMS_DIR / f"{name}.toml")
    for name in ("niedersachsen", "bayern", "baden-wuerttemberg")
}

GOETTINGEN = EINHEITSGEMEINDE  # Niedersachsen
OBERBAYERN = "091"  # a Bezirk
ALTOETTING = "091710111111"  # a Gemeinde in Bayern
MAGSTADT = "081150029029"  # 9,789 inhabitants: 1 place in Baden-Württemberg
RENNINGEN = "081150041041"  # 18,596: 2 places
STUTTGART = "081110000000"  # Stadtkreis, 632,865: 5 places

IN_NI = date(2023, 5, 2)  # Niedersachsen 2023
IN_BY = date(2024, 3, 5)  # Bayern 2024-2025
IN_BW = date(2024, 3, 5)  # Baden-Württemberg 2022-2025 (winter time: 00:00 Berlin is 23:00 UTC)


@dataclass(frozen=True)
class Row:
    name: str
    program: str
    key: str
    expected: FirstDecision
    course: Course = Course.BASIC
    starts_on: date = IN_BW
    submitted_at: datetime | None = None
    holds_basic: bool = False
    held: int = 0  # places the Kommune holds already
    fee_cents: int = 100_000
    days: int = 3
    budget: Budget | None = None


def _day_before(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN) - timedelta(minutes=1)


def _first_moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN)


ROWS = [
    # Niedersachsen: half the fee, two places, basic courses only, registrations after start funded.
    Row("ni basic", "niedersachsen", GOETTINGEN, Approve("R", GOETTINGEN, "2023", 50_000), starts_on=IN_NI),
    Row(
        "ni follow-up not funded",
        "niedersachsen",
        GOETTINGEN,
        Decline("R", GOETTINGEN, "course_not_funded"),
        course=Course.FOLLOW_UP,
        starts_on=IN_NI,
    ),
    Row(
        "ni course before deadline",
        "niedersachsen",
        GOETTINGEN,
        Decline("R", GOETTINGEN, "course_not_funded"),
        course=Course.FOLLOW_UP,
        starts_on=IN_NI,
        submitted_at=_first_moment(IN_NI) + timedelta(days=1),
    ),
    Row(
        "ni submitted after start still funded",
        "niedersachsen",
        GOETTINGEN,
        Approve("R", GOETTINGEN, "2023", 50_000),
        starts_on=IN_NI,
        submitted_at=_first_moment(IN_NI) + timedelta(days=1),
    ),
    Row(
        "ni second place",
        "niedersachsen",
        GOETTINGEN,
        Approve("R", GOETTINGEN, "2023", 50_000),
        starts_on=IN_NI,
        held=1,
    ),
    Row(
        "ni third waits",
        "niedersachsen",
        GOETTINGEN,
        Waitlist("R", GOETTINGEN, "2023", 50_000, "quota_exhausted", 1),
        starts_on=IN_NI,
        held=2,
    ),
    Row("ni bayern kommune", "niedersachsen", ALTOETTING, Decline("R", ALTOETTING, "kommune_not_eligible")),
    # Bayern: 80 %, one participant per Kommune (Bezirke included), basic courses only.
    Row(
        "by bezirk basic",
        "bayern",
        OBERBAYERN,
        Approve("R", OBERBAYERN, "2024-2025", 80_000),
        starts_on=IN_BY,
    ),
    Row(
        "by first participant",
        "bayern",
        ALTOETTING,
        Approve("R", ALTOETTING, "2024-2025", 80_000),
        starts_on=IN_BY,
    ),
    Row(
        "by second participant waits",
        "bayern",
        ALTOETTING,
        Waitlist("R", ALTOETTING, "2024-2025", 80_000, "quota_exhausted", 1),
        starts_on=IN_BY,
        held=1,
    ),
    Row(
        "by follow-up not funded",
        "bayern",
        ALTOETTING,
        Decline("R", ALTOETTING, "course_not_funded"),
        course=Course.FOLLOW_UP,
        starts_on=IN_BY,
    ),
    Row(
        "by budget",
        "bayern",
        ALTOETTING,
        Waitlist("R", ALTOETTING, "2024-2025", 80_000, "budget_exhausted", 1),
        starts_on=IN_BY,
        budget=Budget("2024-2025", 64_000_000, approved_cents=63_950_000),
    ),
    # Baden-Württemberg: 100 EUR a day, follow-ups 50 EUR a day with a funded basic course and no
    # place, places by population, nothing for a registration submitted once the seminar began.
    Row("bw basic 3 days", "baden-wuerttemberg", MAGSTADT, Approve("R", MAGSTADT, "2022-2025", 30_000)),
    Row(
        "bw basic capped by the fee",
        "baden-wuerttemberg",
        MAGSTADT,
        Approve("R", MAGSTADT, "2022-2025", 25_000),
        fee_cents=25_000,
    ),
    Row(
        "bw 1 place used",
        "baden-wuerttemberg",
        MAGSTADT,
        Waitlist("R", MAGSTADT, "2022-2025", 30_000, "quota_exhausted", 1),
        held=1,
    ),
    Row("bw 2 places", "baden-wuerttemberg", RENNINGEN, Approve("R", RENNINGEN, "2022-2025", 30_000), held=1),
    Row(
        "bw stadtkreis 5 places",
        "baden-wuerttemberg",
        STUTTGART,
        Approve("R", STUTTGART, "2022-2025", 30_000),
        held=4,
    ),
    Row(
        "bw follow-up without basic",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "prerequisite_missing", "2022-2025"),
        course=Course.FOLLOW_UP,
    ),
    Row(
        "bw follow-up with basic takes no place",
        "baden-wuerttemberg",
        MAGSTADT,
        Approve("R", MAGSTADT, "2022-2025", 15_000, takes_place=False),
        course=Course.FOLLOW_UP,
        holds_basic=True,
        held=1,
    ),
    Row(
        "bw follow-up capped by the fee",
        "baden-wuerttemberg",
        MAGSTADT,
        Approve("R", MAGSTADT, "2022-2025", 9_000, takes_place=False),
        course=Course.FOLLOW_UP,
        holds_basic=True,
        fee_cents=9_000,
    ),
    Row(
        "bw submitted the minute before the first day",
        "baden-wuerttemberg",
        MAGSTADT,
        Approve("R", MAGSTADT, "2022-2025", 30_000),
        submitted_at=_day_before(IN_BW),
    ),
    Row(
        "bw submitted at 00:00 on the first day",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "registered_after_start"),
        submitted_at=_first_moment(IN_BW),
    ),
    Row(
        "bw submitted at 23:00 UTC the day before (00:00 Berlin)",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "registered_after_start"),
        submitted_at=datetime(2024, 3, 4, 23, 0, tzinfo=UTC),
    ),
    Row(
        "bw deadline before prerequisite",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "registered_after_start"),
        course=Course.FOLLOW_UP,
        submitted_at=_first_moment(IN_BW),
    ),
    Row(
        "bw deadline before period",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "registered_after_start"),
        starts_on=date(2030, 1, 7),
        submitted_at=_first_moment(date(2030, 1, 7)),
    ),
    Row(
        "bw outside every period",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "outside_funding_period"),
        starts_on=date(2030, 1, 7),
    ),
    Row(
        "bw period closed before prerequisite",
        "baden-wuerttemberg",
        MAGSTADT,
        Decline("R", MAGSTADT, "period_closed", "2022-2025"),
        course=Course.FOLLOW_UP,
        budget=Budget("2022-2025", None, closed=True),
    ),
    Row(
        "bw niedersachsen kommune",
        "baden-wuerttemberg",
        GOETTINGEN,
        Decline("R", GOETTINGEN, "kommune_not_eligible"),
    ),
    Row("bw unknown kommune", "baden-wuerttemberg", "081", Decline("R", "081", "unknown_kommune")),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_first_decision(row: Row) -> None:
    program = PROGRAMS[row.program]
    kommune = directory().get(row.key)
    found = Application(
        "R",
        row.key,
        "S-1",
        row.starts_on,
        row.starts_on + timedelta(days=row.days - 1),
        row.fee_cents,
        course=row.course,
        submitted_at=row.submitted_at,
    )
    places = 0 if kommune is None or not program.eligible(kommune) else program.quota_for(kommune)
    budgets = {} if row.budget is None else {row.budget.period_id: row.budget}
    decision = decide_first(
        program,
        kommune,
        found,
        existing=None,
        budgets=budgets,
        quota=QuotaState(row.key, places, row.held),
        quota_waiting=0,
        budget_waiting={},
        holds_funded_basic=row.holds_basic,
    )
    assert decision == row.expected


# --- the prerequisite through the applier ---------------------------------------------------

ERIKA = "erika@example.org"


def course_application(
    registration_id: str, course: Course = Course.BASIC, *, key: str = GOETTINGEN, days: int = 2
) -> Application:
    return Application(
        registration_id, key, "S-1", date(2023, 5, 2), date(2023, 5, 1 + days), 100_000, course=course
    )


def courses() -> InMemoryFundingService:
    return InMemoryFundingService(courses_program(), directory(), PARTICIPANT_KEY)


def test_a_follow_up_needs_a_funded_basic_course_of_the_same_participant() -> None:
    funding = courses()
    assert funding.accept(course_application("F0", Course.FOLLOW_UP), email=ERIKA) == [
        Decline("F0", GOETTINGEN, "prerequisite_missing", "2023")
    ]
    assert funding.accept(course_application("B1"), email=ERIKA) == [
        Approve("B1", GOETTINGEN, "2023", 20_000)
    ]
    # Göttingen's one place is held by B1; the follow-up takes none. The address is normalised.
    assert funding.accept(course_application("F1", Course.FOLLOW_UP), email="Erika@EXAMPLE.org") == [
        Approve("F1", GOETTINGEN, "2023", 10_000, takes_place=False)
    ]
    assert funding.accept(course_application("F2", Course.FOLLOW_UP), email="max@example.org") == [
        Decline("F2", GOETTINGEN, "prerequisite_missing", "2023")
    ]
    assert funding.tables.quotas[GOETTINGEN].held == 1
    # Releasing the follow-up frees money only; releasing the basic course ends the prerequisite,
    # but the follow-up approved before keeps its funding (checked once, at the decision).
    assert funding.withdraw("F1") == [Release("F1", GOETTINGEN, "2023", 10_000, takes_place=False)]
    assert funding.tables.quotas[GOETTINGEN].held == 1
    assert funding.accept(course_application("F3", Course.FOLLOW_UP), email=ERIKA)[0] == Approve(
        "F3", GOETTINGEN, "2023", 10_000, takes_place=False
    )
    funding.withdraw("B1")
    assert funding.tables.fundings["F3"].status is Status.APPROVED
    assert funding.accept(course_application("F4", Course.FOLLOW_UP), email=ERIKA) == [
        Decline("F4", GOETTINGEN, "prerequisite_missing", "2023")
    ]


def test_a_basic_course_earlier_in_the_same_batch_counts() -> None:
    funding = courses()
    effects = funding.deliver(
        [
            accepted_event(course_application("B1"), funding.next_event_id(), ERIKA),
            accepted_event(course_application("F1", Course.FOLLOW_UP), funding.next_event_id(), ERIKA),
        ]
    )
    assert effects == [
        Approve("B1", GOETTINGEN, "2023", 20_000),
        Approve("F1", GOETTINGEN, "2023", 10_000, takes_place=False),
    ]


def test_a_follow_up_waiting_for_money_is_promoted_without_a_place() -> None:
    funding = courses()
    funding.accept(course_application("B1", days=4), email=ERIKA)  # 40,000 of 100,000
    funding.accept(course_application("L1", key="03151", days=5), email="l@example.org")  # 50,000
    assert funding.accept(course_application("F1", Course.FOLLOW_UP, days=4), email=ERIKA) == [
        Waitlist("F1", GOETTINGEN, "2023", 20_000, "budget_exhausted", 1, takes_place=False)
    ]
    # L1's money comes back: F1 is approved although Göttingen has no free place.
    assert funding.withdraw("L1") == [
        Release("L1", "03151", "2023", 50_000),
        Approve("F1", GOETTINGEN, "2023", 20_000, promoted=True, takes_place=False),
    ]
    assert funding.tables.quotas[GOETTINGEN].held == 1


def test_funding_stores_the_keyed_hash_never_the_address() -> None:
    funding = courses()
    funding.accept(course_application("B1"), email=ERIKA)
    stored = funding.tables.fundings["B1"].participant_hash
    assert stored == participant_hash(PARTICIPANT_KEY, ERIKA)
    assert stored is not None and stored.startswith("v1:") and "erika" not in stored
    assert participant_hash(b"x" * 32, ERIKA) != stored  # keyed


def test_a_programme_without_a_prerequisite_keeps_no_identity() -> None:
    program = PROGRAMS["niedersachsen"]
    assert checked_key(program, PARTICIPANT_KEY) is None
    funding = InMemoryFundingService(program, directory(), PARTICIPANT_KEY)
    funding.accept(replace(course_application("B1"), seminar_ends_on=date(2023, 5, 4)), email=ERIKA)
    assert funding.tables.fundings["B1"].participant_hash is None


@pytest.mark.parametrize("key", [None, b"short"])
def test_a_programme_with_a_prerequisite_needs_a_key(key: bytes | None) -> None:
    program: Program = courses_program()
    with pytest.raises(ParticipantKeyError, match=r"FUNDING_PARTICIPANT_KEY|fewer than 32"):
        checked_key(program, key)
    with pytest.raises(ParticipantKeyError):
        InMemoryFundingService(program, directory(), key)


def test_the_email_is_normalised_without_provider_rules() -> None:
    assert normalised_email("  Erika.Muster+x@Example.ORG\n") == "erika.muster+x@example.org"
    assert normalised_email("STRASSE@example.org") == normalised_email("straße@example.org".upper())
    assert normalised_email("e\u0301@example.org") == normalised_email("\u00e9@example.org")
