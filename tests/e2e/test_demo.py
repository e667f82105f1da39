"""A small programme year through the real stack (`deploy.local.stack up`: Kafka, PostgreSQL, the
SMTP sink and the three services as processes), then every operator command against it.

The expected figures are computed here from the scenario and the directory, by the programme's
rules as the issue states them; they are never taken from the report under test.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from lotse.log import read_all
from lotse.scenario import Registration, Scenario, ScenarioSize, build_scenario
from lotse.status import consumer_lag
from shared.directory import KommuneKind, load_directory
from shared.dlq import HEADER_ERROR, HEADER_SERVICE
from shared.kafka import make_producer
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE
from shared.topics import Topics, dlq_topic
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

# Seats for everyone, so that which registration gets a seat never depends on arrival order.
SIZE = ScenarioSize(
    seminars_first_year=2,
    seminars_second_year=3,
    capacity=40,
    kommunen=20,
    not_eligible=3,
    over_quota=4,
    withdrawals=5,
    fee_cents=100_000,
)
ELIGIBLE = {
    KommuneKind.LANDKREIS,
    KommuneKind.KREISFREIE_STADT,
    KommuneKind.EINHEITSGEMEINDE,
    KommuneKind.SAMTGEMEINDE,
}
QUOTA = 2
SHARE_CENTS = SIZE.fee_cents // 2


@dataclass(frozen=True)
class Expected:
    registrations: dict[str, int]
    funded_now: int
    waitlisted_now: int
    withdrawn_funding: int  # released or taken off the waitlist: which one depends on order
    declined_not_eligible: int
    funded_kommunen: int


def expected_figures(scenario: Scenario) -> Expected:
    withdrawn = {r.registration_id for r in scenario.withdrawals}
    by_kommune: dict[str, list[Registration]] = defaultdict(list)
    for registration in scenario.registrations:
        by_kommune[registration.kommune.key].append(registration)
    funded = waitlisted = declined = funded_kommunen = 0
    for registrations in by_kommune.values():
        active = [r for r in registrations if r.registration_id not in withdrawn]
        if registrations[0].kommune.kind not in ELIGIBLE or registrations[0].kommune.land != "03":
            declined += len(registrations)
            continue
        funded += min(QUOTA, len(active))
        waitlisted += max(0, len(active) - QUOTA)
        funded_kommunen += 1 if active else 0
    return Expected(
        registrations={
            "accepted": len(scenario.registrations) - len(withdrawn),
            "withdrawn.withdrawn_by_portal": len(withdrawn),
        },
        funded_now=funded,
        waitlisted_now=waitlisted,
        withdrawn_funding=len(withdrawn),
        declined_not_eligible=declined,
        funded_kommunen=funded_kommunen,
    )


def submission(registration_id: str, kommune_key: str, seminar_id: str, contact_email: str) -> bytes:
    """A portal's registration.submitted, as the bytes it would publish."""
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "registration.submitted",
            "schema_version": 1,
            "occurred_at": "2023-05-02T09:00:00+02:00",
            "source": "nsi-portal",
            "data": {
                "registration_id": registration_id,
                "kommune_key": kommune_key,
                "seminar_id": seminar_id,
                "participant": {
                    "given_name": "Özlem",
                    "family_name": "Weiß",
                    "email": f"{registration_id.lower()}@kommunen.example",
                },
                "contact_email": contact_email,
            },
        }
    ).encode()


def publish(
    stack: Stack, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]] | None = None
) -> None:
    async def send() -> None:
        producer = make_producer(stack.bootstrap, client_id="e2e")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=key, headers=headers or [])
        finally:
            await producer.stop()

    asyncio.run(send())


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(
        load_directory(str(DEFAULT_DIRECTORY_FILE)), load_program(DEFAULT_PROGRAM_FILE), SIZE, seed=7
    )


@pytest.fixture(scope="module")
def demo_report(stack: Stack, scenario: Scenario) -> dict[tuple[str, str], Any]:
    """Run the demo (the same code as `make demo`, at a small size) and read `lotse report`."""
    from lotse.demo import publish_scenario, wait_until_handled

    async def replay() -> None:
        await publish_scenario(stack.bootstrap, Topics(), scenario)
        await wait_until_handled(stack.bootstrap, Topics(), scenario, None, timeout=600)

    asyncio.run(replay())
    printed = stack.lotse("report", "--format", "json").stdout
    return {(row["section"], row["item"]): row["value"] for row in json.loads(printed)}


def test_the_report_matches_the_figures_computed_from_the_scenario(
    demo_report: dict[tuple[str, str], Any], scenario: Scenario
) -> None:
    expected = expected_figures(scenario)
    registrations = {
        item: value for (section, item), value in demo_report.items() if section == "registration"
    }
    assert registrations == expected.registrations
    funding = Counter({item: value for (section, item), value in demo_report.items() if section == "funding"})
    assert funding["approved"] + funding["approved.promoted"] == expected.funded_now
    assert funding["waitlisted.quota_exhausted"] == expected.waitlisted_now
    assert funding["released"] + funding["withdrawn.from_waitlist"] == expected.withdrawn_funding
    assert funding["declined.kommune_not_eligible"] == expected.declined_not_eligible
    assert sum(funding.values()) == len(scenario.registrations)
    used = demo_report[("budget", "2023.used_cents")] + demo_report[("budget", "2021-2022.used_cents")]
    assert used == expected.funded_now * SHARE_CENTS
    assert demo_report[("budget", "2023.budget_cents")] == 20_000_000
    assert (
        demo_report[("budget", "2023.remaining_cents")]
        == 20_000_000 - demo_report[("budget", "2023.used_cents")]
    )
    assert demo_report[("budget", "2021-2022.remaining_cents")] is None
    assert demo_report[("kommunen", "eligible")] == 440
    assert demo_report[("kommunen", "with_funded_participant")] == expected.funded_kommunen


def test_every_outcome_was_emailed_once_to_the_kommune(
    stack: Stack, demo_report: dict[tuple[str, str], Any], scenario: Scenario
) -> None:
    registration_events = asyncio.run(read_all(stack.bootstrap, Topics().registration_events))
    funding_events = asyncio.run(read_all(stack.bootstrap, Topics().funding_decisions))
    # Each submission and each withdrawal has one registration outcome; each accepted one a decision.
    assert len(registration_events) == len(scenario.registrations) + len(scenario.withdrawals)
    assert len(funding_events) >= len(scenario.registrations)
    emails = [
        message_from_bytes(path.read_bytes(), policy=policy.default) for path in stack.mail_dir.glob("*.eml")
    ]
    assert demo_report[("emails", "sent")] == len(emails) == len(registration_events) + len(funding_events)
    assert len({mail["Message-ID"] for mail in emails}) == len(emails)
    contacts = {r.registration_id: r.contact_email for r in scenario.registrations}
    for mail in emails:
        assert mail["To"].addresses[0].addr_spec == contacts[mail["X-Registration-ID"]]
    assert str(stack.mail_dir) in demo_report[("emails", "location")]


def test_status_reports_every_component_healthy(
    stack: Stack, demo_report: dict[tuple[str, str], Any]
) -> None:
    shown = stack.lotse("status").stdout
    for component in ("kafka", "database registration", "database funding", "database notification", "smtp"):
        assert component in shown
    for service in ("registration", "funding", "notification"):
        assert f"service {service}" in shown
    assert "down" not in shown
    assert "portal.registrations" in shown  # consumer lag per topic


def test_every_consumer_has_committed_all_it_applied(
    stack: Stack, demo_report: dict[tuple[str, str], Any]
) -> None:
    """Offsets are committed behind the batch (ADR 0027), past the transaction markers of the
    relays' topics: once the demo is done, no group lags on any topic, not by one marker."""
    deadline = time.monotonic() + 30
    while True:
        lags = asyncio.run(consumer_lag(stack.bootstrap, Topics()))
        lagging = [entry for entry in lags if entry.lag != 0]
        if not lagging or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {entry.topic for entry in lags} >= {Topics().registration_events, Topics().funding_decisions}
    assert lagging == []


def test_budget_shows_each_period_with_its_figures(
    stack: Stack, demo_report: dict[tuple[str, str], Any]
) -> None:
    shown = stack.lotse("budget").stdout
    assert "2021-2022" in shown and "2023" in shown
    assert "200.000,00 €" in shown  # the 2023 budget
    assert "unbegrenzt" in shown  # 2021-2022 has no budget figure


def test_kommune_explains_eligibility_and_lists_registrations(stack: Stack, scenario: Scenario) -> None:
    member = next(r for r in scenario.registrations if r.kommune.kind is KommuneKind.MITGLIEDSGEMEINDE)
    shown = stack.lotse("kommune", member.kommune.key).stdout
    assert member.kommune.name in shown
    assert "not eligible" in shown.lower()
    assert member.registration_id in shown
    assert "kommune_not_eligible" in shown
    withdrawn = {r.registration_id for r in scenario.withdrawals}
    funded = next(
        r for r in scenario.registrations if r.kommune.kind in ELIGIBLE and r.registration_id not in withdrawn
    )
    shown = stack.lotse("kommune", funded.kommune.key).stdout
    assert funded.kommune.name in shown and funded.registration_id in shown
    assert "eligible" in shown.lower()
    refused = stack.lotse("kommune", "12", check=False)
    assert refused.returncode != 0


def test_waitlist_lists_the_waiting_in_promotion_order(
    stack: Stack, scenario: Scenario, demo_report: dict[tuple[str, str], Any]
) -> None:
    expected = expected_figures(scenario)
    shown = stack.lotse("waitlist").stdout
    waiting = [r.registration_id for r in scenario.registrations if r.registration_id in shown]
    assert len(waiting) == expected.waitlisted_now


def test_a_dead_letter_is_listed_and_its_replay_takes_effect_once(stack: Stack) -> None:
    topics = Topics()
    registration_id = f"REG-DLQ-{uuid.uuid4().hex[:8]}"
    valid = submission(registration_id, "03241", "NSI-DL-2023-01", "digitallotsen.03241@kommunen.example")
    # A message that breaks the contract is dead-lettered by the service, with its reason.
    publish(stack, topics.portal_registrations, b'{"event_type": "registration.submitted"', b"03241")
    # A valid one that a (since fixed) fault had dead-lettered: replaying it must take effect once.
    letter_headers = [(HEADER_ERROR, b"bug"), (HEADER_SERVICE, b"registration")]
    publish(stack, dlq_topic(topics.portal_registrations), valid, b"03241", letter_headers)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listed = stack.lotse("dlq", "list", "portal.registrations").stdout
        if "not a valid envelope" in listed and "bug" in listed:
            break
        time.sleep(1)
    assert "not a valid envelope" in listed and "bug" in listed
    # The registration service replays its own letters on the operator's command.
    replayed = stack.lotse("dlq", "replay", "portal.registrations", "--reason", "Fehler behoben").stdout
    assert "Replayed 2 dead letter(s)" in replayed
    again = stack.lotse("dlq", "replay", "portal.registrations", "--reason", "noch einmal").stdout
    assert "Replayed 0 dead letter(s)" in again  # only new letters: nothing twice
    letters = stack.lotse("dlq", "list", "portal.registrations").stdout
    letter_id = next(
        line.split("│")[1].strip() for line in letters.splitlines() if "bug" in line and "│" in line
    )
    # Again by id: the inbox drops it.
    stack.lotse("dlq", "replay", "portal.registrations", "--id", letter_id, "--reason", "per id")

    def outcomes() -> list[dict[str, Any]]:
        events = asyncio.run(read_all(stack.bootstrap, topics.registration_events))
        return [e for e in events if e["data"]["registration_id"] == registration_id]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not outcomes():
        time.sleep(1)
    time.sleep(3)  # give a duplicate the chance to appear
    assert [e["event_type"] for e in outcomes()] == ["registration.accepted"]


def test_a_parked_email_is_resent(stack: Stack) -> None:
    faults = stack.mail_dir / ".faults.json"
    address = "digitallotsen.031010000000@kommunen.example"
    faults.write_text(json.dumps({"reject_recipients": [address]}))
    try:
        registration_id = f"REG-PARK-{uuid.uuid4().hex[:8]}"
        value = submission(registration_id, "03101", "NSI-DL-2023-02", address)
        publish(stack, Topics().portal_registrations, value, b"03101")
        failed = wait_for_notifications(stack, registration_id, "notification.failed", 1)
    finally:
        faults.unlink()
    notification_id = failed[0]["data"]["notification_id"]
    assert notification_id in stack.lotse("mail", "parked").stdout
    assert stack.lotse("mail", "resend", notification_id, check=False).returncode == 2  # no --reason
    stack.lotse("mail", "resend", notification_id, "--reason", "Adresse korrigiert")
    sent = wait_for_notifications(stack, registration_id, "notification.sent", 1)
    assert notification_id in {e["data"]["notification_id"] for e in sent}
    refused = stack.lotse("mail", "resend", notification_id, "--reason", "noch einmal", check=False)
    assert refused.returncode == 1 and "not_parked" in refused.stdout  # no longer parked
    audit = stack.lotse("audit", "--action", "mail_resend").stdout
    assert "Adresse korrigiert" in audit and "done" in audit and "refused" in audit


def wait_for_notifications(
    stack: Stack, registration_id: str, event_type: str, count: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 180
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = asyncio.run(read_all(stack.bootstrap, Topics().notification_events))
        found = [
            e
            for e in events
            if e["event_type"] == event_type and e["data"]["registration_id"] == registration_id
        ]
        if len(found) >= count:
            return found
        time.sleep(1)
    raise AssertionError(f"no {event_type} for {registration_id} within 180 s")


def test_closing_a_period_declines_its_waitlist(stack: Stack, scenario: Scenario, demo_report: Any) -> None:
    before = asyncio.run(read_all(stack.bootstrap, Topics().funding_decisions))
    latest: dict[str, dict[str, Any]] = {}
    for event in before:
        latest[event["data"]["registration_id"]] = event
    withdrawn = {r.registration_id for r in scenario.withdrawals}
    waiting_2023 = {
        reg_id
        for reg_id, event in latest.items()
        if event["event_type"] == "funding.waitlisted"
        and event["data"]["period_id"] == "2023"
        and reg_id not in withdrawn
    }
    closed = stack.lotse("close-period", "2023", "--reason", "Förderjahr abgeschlossen").stdout
    assert f"declined={len(waiting_2023)}" in closed
    deadline = time.monotonic() + 120
    declined: set[str] = set()
    while time.monotonic() < deadline:
        after = asyncio.run(read_all(stack.bootstrap, Topics().funding_decisions))
        declined = {
            e["data"]["registration_id"]
            for e in after
            if e["event_type"] == "funding.declined" and e["data"]["reason"] == "period_closed"
        }
        if declined >= waiting_2023:
            break
        time.sleep(1)
    assert declined == waiting_2023
    assert not any(reg_id in stack.lotse("waitlist", "--period", "2023").stdout for reg_id in waiting_2023)
    # Closing twice is refused and changes nothing.
    twice = stack.lotse("close-period", "2023", "--reason", "noch einmal", check=False)
    assert twice.returncode == 1 and "already_closed" in twice.stdout
    time.sleep(2)
    again = asyncio.run(read_all(stack.bootstrap, Topics().funding_decisions))
    assert len([e for e in again if e["data"].get("reason") == "period_closed"]) == len(waiting_2023)


def test_mail_dir_is_under_the_stack_state(stack: Stack) -> None:
    assert Path(stack.env["MAIL_DIR"]).is_relative_to(stack.var_dir)


def test_report_as_csv_carries_the_same_figures_as_json(
    stack: Stack, demo_report: dict[tuple[str, str], Any]
) -> None:
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(stack.lotse("report", "--format", "csv").stdout)))
    as_csv = {(row["section"], row["item"]): row["value"] for row in rows}
    # A later test adds registrations, so compare the figures that no other test changes.
    for key in (("kommunen", "eligible"), ("budget", "2023.budget_cents")):
        assert as_csv[key] == str(demo_report[key])
    assert stack.lotse("report", "--format", "xml", check=False).returncode == 2
