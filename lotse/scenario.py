"""A realistic programme year, generated from the real municipality directory.

Pure and seeded: the same seed and directory give the same scenario, so a test can compute the
expected figures from the scenario on its own.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.directory import Directory, Kommune, KommuneKind

ELIGIBLE_KINDS = {
    KommuneKind.LANDKREIS,
    KommuneKind.KREISFREIE_STADT,
    KommuneKind.EINHEITSGEMEINDE,
    KommuneKind.SAMTGEMEINDE,
}
NSI_LOCATIONS = ["Hannover", "Oldenburg", "Braunschweig", "Lüneburg", "Osnabrück", "Online"]
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


@dataclass(frozen=True)
class Seminar:
    seminar_id: str
    title: str
    starts_on: date
    ends_on: date
    location: str
    fee_cents: int
    capacity: int

    def data(self) -> dict[str, Any]:
        return {
            "seminar_id": self.seminar_id,
            "title": self.title,
            "starts_on": self.starts_on.isoformat(),
            "ends_on": self.ends_on.isoformat(),
            "location": self.location,
            "fee_cents": self.fee_cents,
            "capacity": self.capacity,
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
    seminars: list[Seminar] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    withdrawals: list[Registration] = field(default_factory=list)

    def messages(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(topic name without prefix, key, envelope) in publishing order: seminars first."""
        out: list[tuple[str, str, dict[str, Any]]] = []
        for seminar in self.seminars:
            out.append(
                ("portal.seminars", seminar.seminar_id, _envelope("seminar.published", seminar.data()))
            )
        for registration in self.registrations:
            out.append(
                (
                    "portal.registrations",
                    registration.given_key,
                    _envelope("registration.submitted", registration.data()),
                )
            )
        for registration in self.withdrawals:
            data = {"registration_id": registration.registration_id, "kommune_key": registration.given_key}
            out.append(
                ("portal.registrations", registration.given_key, _envelope("registration.withdrawn", data))
            )
        return out


def _envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "nsi-portal",
        "data": data,
    }


@dataclass(frozen=True)
class ScenarioSize:
    seminars_2022: int = 24
    seminars_2023: int = 36
    capacity: int = 20
    kommunen: int = 300
    mitgliedsgemeinden: int = 20
    third_participants: int = 15
    withdrawals: int = 40
    fee_cents: int = 100_000


DEMO = ScenarioSize()
SMALL = ScenarioSize(
    seminars_2022=2,
    seminars_2023=3,
    capacity=12,
    kommunen=24,
    mitgliedsgemeinden=3,
    third_participants=2,
    withdrawals=4,
)


def _seminars(rng: random.Random, year: int, count: int, size: ScenarioSize) -> list[Seminar]:
    seminars = []
    first = date(year, 3, 6) if year == 2021 else date(year, 1, 9)
    for index in range(count):
        starts = first + timedelta(days=(index * 300) // max(count, 1))
        starts += timedelta(days=(7 - starts.weekday()) % 7)  # a Monday
        seminars.append(
            Seminar(
                seminar_id=f"NSI-DL-{year}-{index + 1:02d}",
                title=f"Qualifizierung kommunale Digitallotsen, Durchgang {index + 1}/{year}",
                starts_on=starts,
                ends_on=starts + timedelta(days=2),
                location=rng.choice(NSI_LOCATIONS),
                fee_cents=size.fee_cents,
                capacity=size.capacity,
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


def build_scenario(directory: Directory, size: ScenarioSize = DEMO, seed: int = 2023) -> Scenario:
    rng = random.Random(seed)
    seminars_2022 = _seminars(rng, 2022, size.seminars_2022, size)
    seminars_2023 = _seminars(rng, 2023, size.seminars_2023, size)
    lower_saxony = sorted(directory.in_land("03"), key=lambda k: k.key)
    eligible = [k for k in lower_saxony if k.kind in ELIGIBLE_KINDS]
    members = [k for k in lower_saxony if k.kind is KommuneKind.MITGLIEDSGEMEINDE]
    chosen = rng.sample(eligible, min(size.kommunen, len(eligible)))
    scenario = Scenario(seminars=seminars_2022 + seminars_2023)
    counter = 0

    def register(kommune: Kommune, seminar: Seminar) -> Registration:
        nonlocal counter
        counter += 1
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        registration = Registration(
            registration_id=f"REG-{counter:05d}",
            kommune=kommune,
            given_key=key_form(rng, kommune),
            seminar=seminar,
            given_name=given,
            family_name=family,
            email=f"teilnehmer{counter}@kommunen.example",
            contact_email=_contact(kommune),
        )
        scenario.registrations.append(registration)
        return registration

    # Every Kommune sends two people, the first in 2022 for about half of them ("gut die Hälfte").
    seats = {s.seminar_id: 0 for s in scenario.seminars}

    def free_seminar(candidates: list[Seminar]) -> Seminar:
        open_ones = [s for s in candidates if seats[s.seminar_id] < s.capacity] or candidates
        seminar = rng.choice(open_ones)
        seats[seminar.seminar_id] += 1
        return seminar

    for index, kommune in enumerate(chosen):
        first_year = seminars_2022 if index % 2 == 0 else seminars_2023
        register(kommune, free_seminar(first_year))
        register(kommune, free_seminar(seminars_2023))
    for kommune in rng.sample(chosen, min(size.third_participants, len(chosen))):
        register(kommune, free_seminar(seminars_2023))
    for kommune in rng.sample(members, min(size.mitgliedsgemeinden, len(members))):
        register(kommune, free_seminar(seminars_2023))
    withdrawable = [r for r in scenario.registrations if r.kommune.kind in ELIGIBLE_KINDS]
    scenario.withdrawals = rng.sample(withdrawable, min(size.withdrawals, len(withdrawable)))
    return scenario
