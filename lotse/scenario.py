"""A plausible programme year of the selected programme, generated from the real municipality
directory: Kommunen of the programme's Land, its courses and seminar dates inside its periods.

Pure and seeded: the same programme, seed and directory give the same scenario, so a test can
compute the expected figures from the scenario on its own.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.directory import Directory, Kommune, KommuneKind
from shared.program import SEMINAR_TIMEZONE, Course, Program

GIVEN_NAMES = [
    "Anna",
    "Jörg",
    "Sören",
    "Katrin",
    "Björn",
    "Müjde",
    "Lena",
    "Jürgen",
    "Maike",
    "Özlem",
    "Hauke",
]
FAMILY_NAMES = [
    "Müller",
    "Schröder",
    "Meyer",
    "Jäger",
    "Böhm",
    "Krüger",
    "Weiß",
    "Hoffmann",
    "Lübben",
    "Janßen",
]
# Registrations that no programme funds: Gemeinden that a Verband represents, and Verbände that are
# only a shared administration (Bayern's Verwaltungsgemeinschaften, Baden-Württemberg's GVV).
NOT_ELIGIBLE_KINDS = (KommuneKind.MITGLIEDSGEMEINDE, KommuneKind.GEMEINDEVERBAND)


@dataclass(frozen=True)
class LandProfile:
    """What a Land's seminars look like: who runs them, where, and how long they last."""

    seminar_prefix: str
    title: str
    locations: tuple[str, ...]
    basic_days: int
    follow_up_prefix: str = ""
    follow_up_title: str = ""
    follow_up_days: int = 2


PROFILES = {
    # NSI: the three-day "Qualifizierung kommunale Digitallotsen".
    "03": LandProfile(
        "NSI-DL",
        "Qualifizierung kommunale Digitallotsen, Durchgang {number}/{year}",
        ("Hannover", "Oldenburg", "Braunschweig", "Lüneburg", "Osnabrück", "Online"),
        3,
    ),
    # BVS: the four-day "Grundkurs Digitallotse" (DOMAIN.md, Bayern).
    "09": LandProfile(
        "BVS-DL",
        "Grundkurs Digitallotse, Durchgang {number}/{year}",
        ("München", "Nürnberg", "Augsburg", "Regensburg", "Würzburg", "Bayreuth", "Online"),
        4,
    ),
    # Digitalakademie@bw: a three-day basic course and follow-up courses (assumption: two days).
    "08": LandProfile(
        "DABW-GK",
        "Digitallotsen Grundkurs, Durchgang {number}/{year}",
        ("Stuttgart", "Karlsruhe", "Freiburg im Breisgau", "Tübingen", "Ulm", "Online"),
        3,
        follow_up_prefix="DABW-AK",
        follow_up_title="Digitallotsen Aufbaukurs, Durchgang {number}/{year}",
    ),
}
GENERIC_PROFILE = LandProfile("DL", "Kommunale Digitallotsen, Durchgang {number}/{year}", ("Online",), 3)


@dataclass(frozen=True)
class Seminar:
    seminar_id: str
    title: str
    starts_on: date
    ends_on: date
    location: str
    fee_cents: int
    capacity: int
    course: Course = Course.BASIC

    @property
    def begins_at(self) -> datetime:
        return datetime.combine(self.starts_on, time(0), tzinfo=SEMINAR_TIMEZONE)

    def data(self) -> dict[str, Any]:
        return {
            "seminar_id": self.seminar_id,
            "title": self.title,
            "starts_on": self.starts_on.isoformat(),
            "ends_on": self.ends_on.isoformat(),
            "location": self.location,
            "fee_cents": self.fee_cents,
            "capacity": self.capacity,
            "course": self.course.value,
        }


@dataclass(frozen=True)
class Registration:
    registration_id: str
    kommune: Kommune
    given_key: str
    seminar: Seminar
    given_name: str
    family_name: str
    email: str
    contact_email: str
    submitted_at: datetime  # the submission's occurred_at

    @property
    def course(self) -> Course:
        return self.seminar.course

    @property
    def late(self) -> bool:
        """Submitted once its seminar had begun."""
        return self.submitted_at >= self.seminar.begins_at

    def data(self) -> dict[str, Any]:
        return {
            "registration_id": self.registration_id,
            "kommune_key": self.given_key,
            "seminar_id": self.seminar.seminar_id,
            "participant": {
                "given_name": self.given_name,
                "family_name": self.family_name,
                "email": self.email,
            },
            "contact_email": self.contact_email,
        }


@dataclass
class Scenario:
    program_id: str = ""
    seminars: list[Seminar] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    withdrawals: list[Registration] = field(default_factory=list)

    def messages(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(topic name without prefix, key, envelope) in publishing order: seminars first."""
        out: list[tuple[str, str, dict[str, Any]]] = []
        for seminar in self.seminars:
            published = seminar.begins_at - timedelta(days=90)
            out.append(
                (
                    "portal.seminars",
                    seminar.seminar_id,
                    _envelope("seminar.published", seminar.data(), published),
                )
            )
        for registration in self.registrations:
            out.append(
                (
                    "portal.registrations",
                    registration.given_key,
                    _envelope("registration.submitted", registration.data(), registration.submitted_at),
                )
            )
        for registration in self.withdrawals:
            data = {"registration_id": registration.registration_id, "kommune_key": registration.given_key}
            withdrawn_at = registration.submitted_at + timedelta(days=1)
            out.append(
                (
                    "portal.registrations",
                    registration.given_key,
                    _envelope("registration.withdrawn", data, withdrawn_at),
                )
            )
        return out


def _envelope(event_type: str, data: dict[str, Any], occurred_at: datetime | None = None) -> dict[str, Any]:
    """A portal's envelope; occurred_at is taken now unless given."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "source": "nsi-portal",
        "data": data,
    }


@dataclass(frozen=True)
class ScenarioSize:
    seminars_first_year: int = 24
    seminars_second_year: int = 36
    capacity: int = 20
    kommunen: int = 300
    not_eligible: int = 20
    over_quota: int = 15  # Kommunen that send one participant more than their places
    withdrawals: int = 40
    fee_cents: int = 100_000
    max_participants: int = 2  # per Kommune, within its places
    # Only where the programme has them: follow-up courses and the registration deadline.
    follow_up_seminars: int = 6
    follow_ups: int = 20  # participants of a funded basic course who take a follow-up
    follow_ups_without_basic: int = 4
    late_registrations: int = 3  # submitted on the seminar's first day
    follow_up_fee_cents: int = 40_000


DEMO = ScenarioSize()
SMALL = ScenarioSize(
    seminars_first_year=2,
    seminars_second_year=3,
    capacity=12,
    kommunen=24,
    not_eligible=3,
    over_quota=2,
    withdrawals=4,
    follow_up_seminars=1,
    follow_ups=3,
    follow_ups_without_basic=1,
    late_registrations=1,
)


def scenario_years(program: Program) -> tuple[int, int]:
    """Two consecutive years inside the programme: the year before its last period begins and
    that year (the change of period), or the last period's first two years if it has no earlier."""
    last = max(program.periods, key=lambda period: period.starts_on)
    year = last.starts_on.year
    if any(period.contains(date(year - 1, 12, 31)) for period in program.periods):
        return year - 1, year
    return year, year + 1


def _window(program: Program, year: int) -> tuple[date, date]:
    """The first stretch of `year` inside one period, where seminars may start."""
    for period in sorted(program.periods, key=lambda period: period.starts_on):
        low, high = max(period.starts_on, date(year, 1, 9)), min(period.ends_on, date(year, 11, 30))
        if low <= high:
            return low, high
    raise ValueError(f"programme {program.id} has no period in {year}")


def _seminars(
    rng: random.Random,
    year: int,
    count: int,
    size: ScenarioSize,
    *,
    profile: LandProfile = PROFILES["03"],
    window: tuple[date, date] | None = None,
    course: Course = Course.BASIC,
) -> list[Seminar]:
    """`count` seminars of `year`, spread over the window (default: 9 January to 30 November)."""
    low, high = window or (date(year, 1, 9), date(year, 11, 30))
    follow_up = course is Course.FOLLOW_UP
    days = profile.follow_up_days if follow_up else profile.basic_days
    seminars = []
    for index in range(count):
        starts = low + timedelta(days=(index * (high - low).days) // max(count, 1))
        starts += timedelta(days=(7 - starts.weekday()) % 7)  # a Monday
        if starts > high:
            starts -= timedelta(days=7)
        prefix = profile.follow_up_prefix if follow_up else profile.seminar_prefix
        title = profile.follow_up_title if follow_up else profile.title
        seminars.append(
            Seminar(
                seminar_id=f"{prefix}-{year}-{index + 1:02d}",
                title=title.format(number=index + 1, year=year),
                starts_on=starts,
                ends_on=starts + timedelta(days=days - 1),
                location=rng.choice(profile.locations),
                fee_cents=size.follow_up_fee_cents if follow_up else size.fee_cents,
                capacity=size.capacity,
                course=course,
            )
        )
    return seminars


def key_form(rng: random.Random, kommune: Kommune) -> str:
    """Portals send whatever form they have: AGS for some Gemeinden, the 5-digit key for a city."""
    if kommune.kind is KommuneKind.KREISFREIE_STADT:
        return kommune.key[:5]
    if kommune.ags is not None and rng.random() < 0.5:
        return kommune.ags
    return kommune.key


def _contact(kommune: Kommune) -> str:
    return f"digitallotsen.{kommune.key}@kommunen.example"


def _submitted(rng: random.Random, seminar: Seminar) -> datetime:
    """Some weeks before the seminar begins, during office hours."""
    before = seminar.begins_at - timedelta(days=rng.randint(14, 60)) + timedelta(hours=9)
    return before.astimezone(UTC)


def build_scenario(
    directory: Directory, program: Program, size: ScenarioSize = DEMO, seed: int = 2023
) -> Scenario:
    rng = random.Random(seed)
    lands = program.eligibility.lands
    profile = PROFILES.get(lands[0], GENERIC_PROFILE)
    first_year, second_year = scenario_years(program)
    first_window, second_window = _window(program, first_year), _window(program, second_year)
    seminars_first = _seminars(
        rng, first_year, size.seminars_first_year, size, profile=profile, window=first_window
    )
    seminars_second = _seminars(
        rng, second_year, size.seminars_second_year, size, profile=profile, window=second_window
    )
    follow_up_funded = program.course_funded(Course.FOLLOW_UP) and bool(profile.follow_up_prefix)
    follow_up_seminars = (
        _seminars(
            rng,
            second_year,
            size.follow_up_seminars,
            size,
            profile=profile,
            window=second_window,
            course=Course.FOLLOW_UP,
        )
        if follow_up_funded
        else []
    )
    in_lands = sorted(
        (kommune for kommune in directory.kommunen.values() if kommune.land in lands),
        key=lambda kommune: kommune.key,
    )
    eligible = program.eligible_kommunen(directory)
    not_eligible = [k for k in in_lands if k.kind in NOT_ELIGIBLE_KINDS and not program.eligible(k)]
    chosen = rng.sample(eligible, min(size.kommunen, len(eligible)))
    for kind in program.eligibility.kinds:  # every kind the programme funds, a Bezirk too
        of_kind = [k for k in eligible if k.kind is kind]
        if of_kind and not any(k.kind is kind for k in chosen):
            chosen.append(rng.choice(of_kind))
    scenario = Scenario(program_id=program.id, seminars=seminars_first + seminars_second + follow_up_seminars)
    counter = 0
    given_keys: dict[str, str] = {}

    def register(
        kommune: Kommune, seminar: Seminar, email: str | None = None, late: bool = False
    ) -> Registration:
        nonlocal counter
        counter += 1
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        # One Kommune, one form of its key: its registrations stay in order on one partition.
        given_key = given_keys.setdefault(kommune.key, key_form(rng, kommune))
        submitted_at = (
            (seminar.begins_at + timedelta(hours=8)).astimezone(UTC) if late else _submitted(rng, seminar)
        )
        registration = Registration(
            registration_id=f"REG-{counter:05d}",
            kommune=kommune,
            given_key=given_key,
            seminar=seminar,
            given_name=given,
            family_name=family,
            email=email or f"teilnehmer{counter}@kommunen.example",
            contact_email=_contact(kommune),
            submitted_at=submitted_at,
        )
        scenario.registrations.append(registration)
        return registration

    seats = {s.seminar_id: 0 for s in scenario.seminars}

    def free_seminar(candidates: list[Seminar]) -> Seminar:
        open_ones = [s for s in candidates if seats[s.seminar_id] < s.capacity] or candidates
        seminar = rng.choice(open_ones)
        seats[seminar.seminar_id] += 1
        return seminar

    # Each Kommune sends up to max_participants people within its places, the first in the first
    # year for about half of them ("gut die Hälfte" in Niedersachsen), the others in the second.
    sent: dict[str, list[Registration]] = {}
    for index, kommune in enumerate(chosen):
        participants = max(1, min(program.quota_for(kommune), size.max_participants))
        for number in range(participants):
            year = seminars_first if number == 0 and index % 2 == 0 else seminars_second
            sent.setdefault(kommune.key, []).append(register(kommune, free_seminar(year)))
    over_quota = rng.sample(chosen, min(size.over_quota, len(chosen)))
    for kommune in over_quota:
        for _ in range(program.quota_for(kommune) - len(sent[kommune.key]) + 1):
            register(kommune, free_seminar(seminars_second))
    for kommune in rng.sample(not_eligible, min(size.not_eligible, len(not_eligible))):
        register(kommune, free_seminar(seminars_second))
    # Follow-ups and late registrations in Kommunen that are not over their quota, so that the
    # basic course of a follow-up's participant is funded whatever the order of decisions.
    calm = [k for k in chosen if k not in over_quota]
    if follow_up_seminars:
        # The basic course in the first year, the follow-up in the second.
        with_basic = [sent[k.key][0] for k in calm if sent[k.key][0].seminar in seminars_first]
        for basic in rng.sample(with_basic, min(size.follow_ups, len(with_basic))):
            register(basic.kommune, free_seminar(follow_up_seminars), email=basic.email)
        for kommune in rng.sample(calm, min(size.follow_ups_without_basic, len(calm))):
            register(kommune, free_seminar(follow_up_seminars))
    if not program.funds_registrations_after_start:
        for kommune in rng.sample(calm, min(size.late_registrations, len(calm))):
            register(kommune, free_seminar(seminars_second), late=True)
    # Withdrawn are basic courses registered in time, each releasing money or a place.
    withdrawable = [
        r
        for r in scenario.registrations
        if program.eligible(r.kommune) and r.course is Course.BASIC and not r.late
    ]
    scenario.withdrawals = rng.sample(withdrawable, min(size.withdrawals, len(withdrawable)))
    return scenario
