"""The report folds the published events; these cases build small logs by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

from lotse.present import euros
from lotse.report import Area, PeriodTerms, ProgrammeFigures, build_report
from lotse.scenario import SMALL, build_scenario
from shared.directory import KommuneKind, load_directory
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE

HANNOVER = Area("kreis", "03241", "Region Hannover", "Landkreis", frozenset({"03241", "032410001001"}))
NIEDERSACHSEN = ProgrammeFigures(
    program_id="niedersachsen",
    name="Digitallotsen Niedersachsen",
    lands=("03",),
    eligible_kommunen=440,
    places=880,
    periods=(
        PeriodTerms("2021-2022", date(2021, 3, 4), date(2022, 12, 31), None),
        PeriodTerms("2023", date(2023, 1, 1), date(2023, 12, 31), 200_000),
    ),
    areas=(HANNOVER,),
)


def event(event_type: str, **data: Any) -> dict[str, Any]:
    return {"event_type": event_type, "data": data}


def approved(reg: str, kommune: str, period: str, amount: int, promoted: bool = False) -> dict[str, Any]:
    return event(
        "funding.approved",
        registration_id=reg,
        kommune_key=kommune,
        period_id=period,
        amount_cents=amount,
        promoted=promoted,
    )


def test_report_counts_current_states_budgets_and_funded_kommunen() -> None:
    registration_events = [
        event("registration.accepted", registration_id="R1", kommune_key="03241"),
        event("registration.accepted", registration_id="R2", kommune_key="03241"),
        event("registration.accepted", registration_id="R3", kommune_key="03241"),
        event("registration.accepted", registration_id="R4", kommune_key="031515406001"),
        event(
            "registration.withdrawn", registration_id="R1", kommune_key="03241", reason="withdrawn_by_portal"
        ),
        event("registration.rejected", registration_id="R5", kommune_key="x", reason="invalid_kommune_key"),
    ]
    funding_events = [
        approved("R1", "03241", "2023", 50_000),
        approved("R2", "03241", "2023", 50_000),
        event("funding.waitlisted", registration_id="R3", kommune_key="03241", reason="quota_exhausted"),
        event(
            "funding.declined",
            registration_id="R4",
            kommune_key="031515406001",
            reason="kommune_not_eligible",
        ),
        event(
            "funding.released",
            registration_id="R1",
            kommune_key="03241",
            period_id="2023",
            amount_cents=50_000,
        ),
        approved("R3", "03241", "2023", 50_000, promoted=True),
    ]
    notification_events = [
        event("notification.sent", notification_id="N1"),
        event("notification.sent", notification_id="N2"),
        event("notification.failed", notification_id="N3"),
        event("notification.failed", notification_id="N2"),  # failed once, then sent: it was sent
    ]
    report = build_report(
        registration_events=registration_events,
        funding_events=funding_events,
        notification_events=notification_events,
        programme=NIEDERSACHSEN,
        mail_location="var/mail",
    )
    assert report.registrations == {
        "accepted": 3,
        "withdrawn.withdrawn_by_portal": 1,
        "rejected.invalid_kommune_key": 1,
    }
    assert report.funding == {
        "released": 1,
        "approved": 1,
        "approved.promoted": 1,
        "declined.kommune_not_eligible": 1,
    }
    by_period = {p.period_id: p for p in report.periods}
    assert (by_period["2023"].used_cents, by_period["2023"].remaining_cents) == (100_000, 100_000)
    assert (by_period["2021-2022"].used_cents, by_period["2021-2022"].remaining_cents) == (0, None)
    assert report.funded_kommunen == 1
    assert report.funded_share == 1 / 440
    assert (report.emails_sent, report.emails_failed) == (2, 1)
    assert [(p.area.key, p.eligible_kommunen, p.funded_kommunen) for p in report.participation] == [
        ("03241", 2, 1)
    ]
    rows = {(section, item): value for section, item, value in report.as_rows()}
    assert rows[("programme", "id")] == "niedersachsen"
    assert rows[("programme", "lands")] == "03"
    assert (rows[("kommunen", "eligible")], rows[("kommunen", "places")]) == (440, 880)
    assert (rows[("budget", "2023.starts_on")], rows[("budget", "2023.ends_on")]) == (
        "2023-01-01",
        "2023-12-31",
    )
    assert rows[("budget", "2023.remaining_cents")] == 100_000
    assert rows[("participation.kreis", "03241.name")] == "Region Hannover (Landkreis)"
    assert rows[("participation.kreis", "03241.with_funded_participant")] == 1


def test_a_registration_withdrawn_from_the_funding_waitlist_is_not_counted_as_waiting() -> None:
    report = build_report(
        registration_events=[
            event("registration.accepted", registration_id="R3", kommune_key="03241"),
            event(
                "registration.withdrawn",
                registration_id="R3",
                kommune_key="03241",
                reason="withdrawn_by_portal",
            ),
        ],
        funding_events=[
            event("funding.waitlisted", registration_id="R3", kommune_key="03241", reason="quota_exhausted"),
        ],
        notification_events=[],
        programme=ProgrammeFigures("niedersachsen", "Niedersachsen", ("03",), 440, 880, ()),
        mail_location="",
    )
    assert report.funding == {"withdrawn.from_waitlist": 1}


def test_money_is_formatted_the_german_way() -> None:
    assert [euros(c) for c in (0, 50_000, 20_000_000, 123_456_789, -5, None)] == [
        "0,00 €",
        "500,00 €",
        "200.000,00 €",
        "1.234.567,89 €",
        "-0,05 €",
        "unbegrenzt",
    ]


def test_the_scenario_is_reproducible_and_mixes_the_cases_the_demo_needs() -> None:
    directory = load_directory(str(DEFAULT_DIRECTORY_FILE))
    program = load_program(DEFAULT_PROGRAM_FILE)
    first, second = build_scenario(directory, program, SMALL), build_scenario(directory, program, SMALL)
    assert [r.registration_id for r in first.registrations] == [
        r.registration_id for r in second.registrations
    ]
    assert [r.kommune.key for r in first.registrations] == [r.kommune.key for r in second.registrations]
    kinds = {r.kommune.kind for r in first.registrations}
    assert KommuneKind.MITGLIEDSGEMEINDE in kinds
    per_kommune: dict[str, int] = {}
    for registration in first.registrations:
        per_kommune[registration.kommune.key] = per_kommune.get(registration.kommune.key, 0) + 1
    assert max(per_kommune.values()) == 3  # some Kommunen try a third participant
    assert {r.seminar.starts_on.year for r in first.registrations} == {2022, 2023}
    assert first.withdrawals and set(first.withdrawals) <= set(first.registrations)
