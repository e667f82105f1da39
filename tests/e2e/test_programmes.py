"""Each programme once through a real stack of its own (`deploy.local.stack up` with its
FUNDING_PROGRAM_FILE, in a state folder of its own: a database keeps the programme it was started
with): seminars, registrations, withdrawals and promotions, with the decisions and the letters.

The expected decisions are computed here from the scenario by the programme's rules (a model of
the engine, registration by registration in the order of its Kommune), never taken from the
stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from lotse.log import read_all
from lotse.present import euros
from lotse.scenario import Registration, Scenario, ScenarioSize, build_scenario
from shared.directory import Directory, load_directory
from shared.program import PROGRAMS_DIR, Course, Program, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT
from shared.topics import Topics
from tests.support.stack import Stack, stack_env

pytestmark = pytest.mark.e2e

PROGRAMMES = ("niedersachsen", "bayern", "baden-wuerttemberg")
# Beside the stack of test_demo.py (+10,000), which stays up for the whole session.
PORT_OFFSET = 11_000
# Small, and seats for everyone, so that the seat waitlist never decides.
SIZE = ScenarioSize(
    seminars_first_year=1,
    seminars_second_year=2,
    capacity=60,
    kommunen=8,
    not_eligible=2,
    over_quota=3,
    withdrawals=3,
    follow_up_seminars=1,
    follow_ups=2,
    follow_ups_without_basic=1,
    late_registrations=1,
)


@dataclass(frozen=True)
class Decision:
    """The registration's latest event on funding.decisions, as the model expects it."""

    event_type: str
    reason: str | None = None
    amount_cents: int | None = None
    promoted: bool = False


def expected_decisions(program: Program, scenario: Scenario) -> dict[str, Decision]:
    decisions: dict[str, Decision] = {}
    held: dict[str, list[Registration]] = defaultdict(list)  # place-taking approvals per Kommune
    waiting: dict[str, list[Registration]] = defaultdict(list)
    funded_basic: set[str] = set()  # participants' emails with an approved basic course

    def course(registration: Registration) -> Course:
        return registration.course

    def amount(registration: Registration) -> int:
        seminar = registration.seminar
        days = (seminar.ends_on - seminar.starts_on).days + 1
        return program.course_amount_cents(course(registration), seminar.fee_cents, days)

    def approve(registration: Registration, promoted: bool) -> None:
        decisions[registration.registration_id] = Decision(
            "funding.approved", amount_cents=amount(registration), promoted=promoted
        )
        if program.takes_quota_place(course(registration)):
            held[registration.kommune.key].append(registration)
        if course(registration) is Course.BASIC:
            funded_basic.add(registration.email)

    for registration in scenario.registrations:
        kommune, given = registration.kommune, course(registration)
        declined = None
        if not program.eligible(kommune):
            declined = "kommune_not_eligible"
        elif not program.course_funded(given):
            declined = "course_not_funded"
        elif program.registered_too_late(registration.submitted_at, registration.seminar.starts_on):
            declined = "registered_after_start"
        elif program.requires_funded_basic(given) and registration.email not in funded_basic:
            declined = "prerequisite_missing"
        if declined is not None:
            decisions[registration.registration_id] = Decision("funding.declined", declined)
        elif program.takes_quota_place(given) and len(held[kommune.key]) >= program.quota_for(kommune):
            decisions[registration.registration_id] = Decision("funding.waitlisted", "quota_exhausted")
            waiting[kommune.key].append(registration)
        else:
            approve(registration, promoted=False)
    for registration in scenario.withdrawals:
        key, decision = registration.kommune.key, decisions[registration.registration_id]
        if decision.event_type == "funding.approved":
            decisions[registration.registration_id] = Decision(
                "funding.released", amount_cents=decision.amount_cents
            )
            held[key].remove(registration)
            if waiting[key]:
                approve(waiting[key].pop(0), promoted=True)
        elif decision.event_type == "funding.waitlisted":
            waiting[key].remove(registration)  # no funding event: it stays the latest
    return decisions


def with_a_promotion(program: Program, scenario: Scenario) -> Scenario:
    """The scenario plus the withdrawal of a funded registration in a Kommune over its quota, so
    that someone is promoted whatever the random withdrawals hit."""
    per_kommune: dict[str, list[Registration]] = defaultdict(list)
    for registration in scenario.registrations:
        if registration.course is Course.BASIC and not registration.late:
            per_kommune[registration.kommune.key].append(registration)
    over = next(
        registrations
        for registrations in per_kommune.values()
        if program.eligible(registrations[0].kommune)
        and len(registrations) > program.quota_for(registrations[0].kommune)
    )
    withdrawals = list(scenario.withdrawals)
    if over[0] not in withdrawals:
        withdrawals.append(over[0])
    return Scenario(scenario.program_id, scenario.seminars, scenario.registrations, withdrawals)


@dataclass(frozen=True)
class Run:
    stack: Stack
    program: Program
    directory: Directory
    scenario: Scenario
    report: dict[tuple[str, str], Any]
    registration_events: list[dict[str, Any]]
    funding_events: list[dict[str, Any]]
    emails: list[EmailMessage]

    def latest_funding(self) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for event in self.funding_events:
            latest[event["data"]["registration_id"]] = event
        return latest

    def letters_of(self, registration_id: str) -> list[str]:
        return [body_text(mail) for mail in self.emails if mail["X-Registration-ID"] == registration_id]


def body_text(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.fixture(scope="module", params=PROGRAMMES)
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    from lotse.demo import publish_scenario, wait_until_handled

    name: str = request.param
    program_file = PROGRAMS_DIR / f"{name}.toml"
    program = load_program(program_file)
    directory = load_directory(str(DEFAULT_DIRECTORY_FILE))
    scenario = with_a_promotion(program, build_scenario(directory, program, SIZE, seed=19))
    var_dir = REPO_ROOT / "var" / f"e2e-{name}"
    shutil.rmtree(var_dir, ignore_errors=True)  # a database keeps the programme it began with
    var_dir.mkdir(parents=True)
    os.chmod(var_dir, 0o755)  # the postgres system user must reach its data folder
    env = {
        **stack_env(var_dir, PORT_OFFSET),
        "FUNDING_PROGRAM_FILE": str(program_file),
        # A programme that checks the prerequisite of follow-up courses needs the key of the
        # participant's pseudonym; the other programmes ignore it.
        "FUNDING_PARTICIPANT_KEY": secrets.token_hex(32),
    }
    stack = Stack(env, var_dir)
    try:
        up = stack.run("-m", "deploy.local.stack", "up", check=False, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr

        async def replay() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            await publish_scenario(stack.bootstrap, Topics(), scenario)
            await wait_until_handled(stack.bootstrap, Topics(), scenario, None, timeout=300)
            return (
                await read_all(stack.bootstrap, Topics().registration_events),
                await read_all(stack.bootstrap, Topics().funding_decisions),
            )

        registration_events, funding_events = asyncio.run(replay())
        printed = stack.lotse("report", "--format", "json").stdout
        yield Run(
            stack=stack,
            program=program,
            directory=directory,
            scenario=scenario,
            report={(row["section"], row["item"]): row["value"] for row in json.loads(printed)},
            registration_events=registration_events,
            funding_events=funding_events,
            emails=[
                message_from_bytes(path.read_bytes(), policy=policy.default)
                for path in sorted(Path(stack.env["MAIL_DIR"]).glob("*.eml"))
            ],
        )
    finally:
        down = stack.run("-m", "deploy.local.stack", "down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr


def test_the_stack_runs_the_selected_programme(run: Run) -> None:
    assert run.report[("programme", "id")] == run.program.id
    assert run.report[("programme", "lands")] == ",".join(run.program.eligibility.lands)
    budget = run.stack.lotse("budget").stdout
    for period in run.program.periods:
        assert period.id in budget and period.starts_on.isoformat() in budget


def test_every_registration_gets_the_decision_of_its_programme(run: Run) -> None:
    expected = expected_decisions(run.program, run.scenario)
    found = {
        registration_id: Decision(
            event["event_type"],
            event["data"].get("reason"),
            event["data"].get("amount_cents"),
            bool(event["data"].get("promoted", False)),
        )
        for registration_id, event in run.latest_funding().items()
    }
    assert found == expected
    # The cases the scenario is made of, each present: eligible Kommunen approved with the
    # programme's amount, a Kommune it does not fund declined, the quota's waitlist, a promotion.
    outcomes = {(d.event_type, d.reason, d.promoted) for d in expected.values()}
    assert ("funding.approved", None, False) in outcomes
    assert ("funding.approved", None, True) in outcomes
    assert ("funding.declined", "kommune_not_eligible", False) in outcomes
    assert ("funding.waitlisted", "quota_exhausted", False) in outcomes
    assert ("funding.released", None, False) in outcomes
    # Each approval in the period of its seminar's first day.
    seminars = {r.registration_id: r.seminar for r in run.scenario.registrations}
    for event in run.funding_events:
        if event["event_type"] == "funding.approved":
            period = run.program.period_for(seminars[event["data"]["registration_id"]].starts_on)
            assert period is not None and event["data"]["period_id"] == period.id


def test_registrations_are_accepted_and_withdrawn_as_sent(run: Run) -> None:
    latest: dict[str, str] = {}
    for event in run.registration_events:
        latest[event["data"]["registration_id"]] = event["event_type"]
    withdrawn = {r.registration_id for r in run.scenario.withdrawals}
    assert latest == {
        r.registration_id: "registration.withdrawn"
        if r.registration_id in withdrawn
        else "registration.accepted"
        for r in run.scenario.registrations
    }


def test_the_report_counts_the_programmes_kommunen_places_periods_and_areas(run: Run) -> None:
    report, program = run.report, run.program
    assert report[("kommunen", "eligible")] == len(program.eligible_kommunen(run.directory))
    assert report[("kommunen", "places")] == program.places_in(run.directory)
    approved = [e for e in run.latest_funding().values() if e["event_type"] == "funding.approved"]
    for period in program.periods:
        assert report[("budget", f"{period.id}.starts_on")] == period.starts_on.isoformat()
        assert report[("budget", f"{period.id}.ends_on")] == period.ends_on.isoformat()
        assert report[("budget", f"{period.id}.budget_cents")] == period.budget_cents
        used = sum(e["data"]["amount_cents"] for e in approved if e["data"]["period_id"] == period.id)
        assert report[("budget", f"{period.id}.used_cents")] == used
    funded = {e["data"]["kommune_key"] for e in approved}
    assert report[("kommunen", "with_funded_participant")] == len(funded)
    # Per Kreis of the programme's Land (and per Bezirk in Bayern): each funded Kommune counts
    # in the Kreis whose key begins its own.
    kreise = {item.split(".")[0] for (section, item) in report if section == "participation.kreis"}
    assert kreise and all(key[:2] in program.eligibility.lands for key in kreise)
    for key in kreise:
        in_kreis = {k for k in funded if k.startswith(key)}
        assert report[("participation.kreis", f"{key}.with_funded_participant")] == len(in_kreis)
    bezirke = {item.split(".")[0] for (section, item) in report if section == "participation.bezirk"}
    assert len(bezirke) == (7 if program.id == "bayern" else 0)


def test_every_decision_is_a_letter_to_the_kommune_with_the_programmes_amount(run: Run) -> None:
    assert len(run.emails) == len(run.registration_events) + len(run.funding_events)
    contacts = {r.registration_id: r for r in run.scenario.registrations}
    for mail in run.emails:
        assert mail["To"].addresses[0].addr_spec == contacts[mail["X-Registration-ID"]].contact_email
    for event in run.funding_events:
        if event["event_type"] == "funding.approved":
            registration = contacts[event["data"]["registration_id"]]
            letters = run.letters_of(registration.registration_id)
            assert any(euros(event["data"]["amount_cents"]) in text for text in letters)
            assert any(registration.kommune.name in text for text in letters)


def test_the_letters_speak_of_the_programmes_land(run: Run) -> None:
    letters = run.program.letter_texts()
    texts = [body_text(mail) for mail in run.emails]
    approved = {
        e["data"]["registration_id"] for e in run.funding_events if e["event_type"] == "funding.approved"
    }
    assert any(letters.land.nominative in text for r in approved for text in run.letters_of(r))
    if run.program.id != "niedersachsen":
        assert not [text for text in texts if "Niedersachsen" in text]
