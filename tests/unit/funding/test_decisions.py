"""First decisions, one case per reason, in the order the rules apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pytest

from services.funding.domain import (
    Application,
    Approve,
    Budget,
    Decline,
    FirstDecision,
    Funding,
    QuotaState,
    Status,
    Waitlist,
    decide_first,
)
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    GEMEINDEFREI,
    IN_2022,
    KREISFREIE_STADT,
    LANDKREIS,
    MITGLIEDSGEMEINDE,
    OUTSIDE_LAND,
    REGION_HANNOVER,
    SAMTGEMEINDE,
    UNKNOWN,
    application,
    directory,
    small_program,
)

OPEN_2023 = Budget("2023", 150_000)


@dataclass(frozen=True)
class Case:
    name: str
    application: Application
    expected: FirstDecision
    budget_2023: Budget = OPEN_2023
    quota: QuotaState | None = None
    quota_waiting: int = 0
    budget_waiting: dict[str, int] = field(default_factory=dict)


CASES = [
    Case("unknown key", application("R1", UNKNOWN), Decline("R1", UNKNOWN, "unknown_kommune")),
    Case(
        "Mitgliedsgemeinde",
        application("R1", MITGLIEDSGEMEINDE),
        Decline("R1", MITGLIEDSGEMEINDE, "kommune_not_eligible"),
    ),
    Case(
        "gemeindefreies Gebiet",
        application("R1", GEMEINDEFREI),
        Decline("R1", GEMEINDEFREI, "kommune_not_eligible"),
    ),
    Case(
        "outside Land 03",
        application("R1", OUTSIDE_LAND),
        Decline("R1", OUTSIDE_LAND, "kommune_not_eligible"),
    ),
    Case(
        "the day before the programme started",
        application("R1", starts_on=date(2021, 3, 3)),
        Decline("R1", EINHEITSGEMEINDE, "outside_funding_period"),
    ),
    Case(
        "after the last period",
        application("R1", starts_on=date(2024, 1, 1)),
        Decline("R1", EINHEITSGEMEINDE, "outside_funding_period"),
    ),
    Case(
        "a closed period, even with the quota used up",
        application("R1"),
        Decline("R1", EINHEITSGEMEINDE, "period_closed", "2023"),
        budget_2023=Budget("2023", 150_000, closed=True),
        quota=QuotaState(EINHEITSGEMEINDE, 2, 2),
    ),
    Case(
        "quota used up, even with the budget used up: behind 3 others of the Kommune",
        application("R1"),
        Waitlist("R1", EINHEITSGEMEINDE, "2023", 50_000, "quota_exhausted", 4),
        budget_2023=Budget("2023", 150_000, approved_cents=150_000),
        quota=QuotaState(EINHEITSGEMEINDE, 2, 2),
        quota_waiting=3,
    ),
    Case(
        "budget one cent short: behind 1 other in the period",
        application("R1"),
        Waitlist("R1", EINHEITSGEMEINDE, "2023", 50_000, "budget_exhausted", 2),
        budget_2023=Budget("2023", 150_000, approved_cents=150_000, released_cents=49_999),
        budget_waiting={"2023": 1, "2021-2022": 7},
    ),
    Case(
        "budget exactly enough",
        application("R1"),
        Approve("R1", EINHEITSGEMEINDE, "2023", 50_000),
        budget_2023=Budget("2023", 150_000, approved_cents=150_000, released_cents=50_000),
        quota=QuotaState(EINHEITSGEMEINDE, 2, 1),
    ),
    Case(
        "half the fee, rounded down to the cent",
        application("R1", fee_cents=99_999),
        Approve("R1", EINHEITSGEMEINDE, "2023", 49_999),
    ),
    Case(
        "unlimited period, first day of the programme",
        application("R1", KREISFREIE_STADT, starts_on=date(2021, 3, 4), fee_cents=10**9),
        Approve("R1", KREISFREIE_STADT, "2021-2022", 5 * 10**8),
    ),
    Case(
        "Samtgemeinde on the last day of 2023",
        application("R1", SAMTGEMEINDE, starts_on=date(2023, 12, 31)),
        Approve("R1", SAMTGEMEINDE, "2023", 50_000),
    ),
    Case("Landkreis", application("R1", LANDKREIS), Approve("R1", LANDKREIS, "2023", 50_000)),
    Case(
        "Region Hannover, 2022",
        application("R1", REGION_HANNOVER, starts_on=IN_2022),
        Approve("R1", REGION_HANNOVER, "2021-2022", 50_000),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_first_decision(case: Case) -> None:
    decision = decide_first(
        small_program(),
        directory().get(case.application.kommune_key),
        case.application,
        existing=None,
        budgets={"2021-2022": Budget("2021-2022", None), "2023": case.budget_2023},
        quota=case.quota,
        quota_waiting=case.quota_waiting,
        budget_waiting=case.budget_waiting,
    )
    assert decision == case.expected


@pytest.mark.parametrize("status", list(Status))
def test_a_decided_registration_gets_no_second_first_decision(status: Status) -> None:
    existing = Funding("R1", EINHEITSGEMEINDE, status, "2023", None, 50_000)
    decision = decide_first(
        small_program(),
        directory().get(EINHEITSGEMEINDE),
        application("R1"),
        existing=existing,
        budgets={"2023": OPEN_2023},
        quota=QuotaState(EINHEITSGEMEINDE, 2),
        quota_waiting=0,
        budget_waiting={},
    )
    assert decision is None
