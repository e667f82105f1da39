"""The service as real `python -m services.registration` processes: two racing instances, and logs."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import islice
from typing import Any

import pytest

from shared.directory import load_directory
from shared.settings import DEFAULT_DIRECTORY_FILE
from tests.integration.registration.conftest import ProcessFactory, consumers_with_partitions
from tests.integration.registration.portal import (
    Message,
    Portal,
    history,
    outcomes,
    participant,
    seminar,
    submission,
    withdrawal,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SEMINARS = 12
PER_SEMINAR = 8


def gemeinde_keys(count: int) -> list[str]:
    """Canonical keys of distinct Gemeinden in Niedersachsen: spread over every partition."""
    directory = load_directory(str(DEFAULT_DIRECTORY_FILE))
    keys = sorted(key for key in directory.kommunen if len(key) == 12 and key.startswith("03"))
    return list(islice(keys, 0, len(keys), len(keys) // count))[:count]


async def test_two_instances_never_hand_out_the_same_last_seat(
    portal: Portal, registration_process: ProcessFactory
) -> None:
    keys = iter(gemeinde_keys(SEMINARS * PER_SEMINAR))
    seminar_ids = [f"S-{n}" for n in range(1, SEMINARS + 1)]
    # Interleaved, each with its own Kommune key: every seminar's submissions are spread over
    # all partitions, so both instances decide about the same seminars at the same time.
    submissions = [
        submission(f"R-{seminar_id}-{n}", next(keys), seminar_id)
        for n in range(PER_SEMINAR)
        for seminar_id in seminar_ids
    ]
    group = portal.topics.prefix + "registration"
    async with registration_process("first") as first, registration_process("second") as second:

        async def both_consuming() -> bool:
            holders = await consumers_with_partitions(
                portal.bootstrap, group, portal.topics.portal_registrations
            )
            return holders == 2

        await wait_until(both_consuming, timeout=120)
        await portal.seminars(*(seminar(seminar_id, 1) for seminar_id in seminar_ids))
        await portal.registrations(*submissions)
        records = await portal.outcomes(len(submissions), settle=2)

    assert len(records) == len(submissions)
    assert all(len(types) == 1 for types in history(records).values())
    accepted: dict[str, int] = defaultdict(int)
    positions: dict[str, list[int]] = defaultdict(list)
    for event in outcomes(records):
        data = event["data"]
        if event["event_type"] == "registration.accepted":
            accepted[data["seminar_id"]] += 1
        else:
            assert event["event_type"] == "registration.waitlisted"
            positions[data["seminar_id"]].append(data["position"])
    assert accepted == {seminar_id: 1 for seminar_id in seminar_ids}
    assert {seminar_id: sorted(found) for seminar_id, found in positions.items()} == {
        seminar_id: list(range(1, PER_SEMINAR)) for seminar_id in seminar_ids
    }
    seats = await portal.db.fetch("SELECT accepted_count FROM seminars")
    assert [row["accepted_count"] for row in seats] == [1] * SEMINARS

    # Both instances decided, and their logs name registrations by id, never by person.
    logs = {name: service.log() for name, service in (("first", first), ("second", second))}
    for log in logs.values():
        assert "registration placed" in log
    assert_no_personal_data("\n".join(logs.values()), submissions)


def assert_no_personal_data(log: str, submissions: list[Message]) -> None:
    """Every submission's registration id is logged, but none of its names and addresses."""
    for _key, event in submissions:
        data = event["data"]
        assert data["registration_id"] in log
        personal = {*data["participant"].values(), data["contact_email"]}
        found = {value for value in personal if value.lower() in log.lower()}
        assert not found, f"personal data in the log of {data['registration_id']}"


def log_lines(log: str) -> list[dict[str, Any]]:
    """The service's JSON log lines (the process writes nothing else as a JSON object)."""
    lines = []
    for line in log.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_the_service_process_warns_about_withdrawals_it_cannot_apply_and_logs_no_personal_data(
    portal: Portal, registration_process: ProcessFactory
) -> None:
    key = "03241001"
    submissions = [
        submission("R-1", key, "S-1"),
        submission("R-2", key, "S-1", person=participant("R-1")),  # duplicate participant
        submission("R-1", key, "S-1", contact_email="andere@kommune.example"),  # id conflict
        submission("R-3", "0324", "S-1"),  # invalid key
        submission("R-4", key, "S-404"),  # unknown seminar: waits for its offer (the default grace)
        submission("R-5", key, "S-1"),  # waitlisted
    ]
    broken = submission("R-9", key, "S-1", person={**participant("R-9"), "given_name": "Heimlich\nName"})
    async with registration_process("only") as service:
        await portal.seminars(seminar("S-1", 1))
        await portal.registrations(
            *submissions,
            broken,  # dead-lettered: the reason names the field, not its value
            withdrawal("R-1", key),  # withdrawn, R-5 takes the seat
            withdrawal("R-1", key),  # already withdrawn
            withdrawal("R-3", "0324"),  # rejected (same key as its submission: same partition, so after it)
            withdrawal("R-77", key),  # unknown: remembered
            submission("R-6", key, "S-1"),  # shows that everything before it was processed
        )
        # Every submission but the waiting, and R-1's withdrawal with R-5's promotion.
        records = await portal.outcomes(len(submissions) + 2, settle=2)

    assert history(records)["R-6"] == ["registration.waitlisted"]
    assert "R-4" not in history(records)
    assert len(records) == len(submissions) + 2
    warnings = {
        (line["event"], line.get("registration_id"))
        for line in log_lines(service.log())
        if line.get("level") == "warning"
    }
    assert ("withdrawal ignored", "R-1") in warnings
    assert ("withdrawal ignored", "R-3") in warnings
    assert any(event.startswith("withdrawal of an unknown") and rid == "R-77" for event, rid in warnings)
    assert_no_personal_data(service.log(), [*submissions, submission("R-6", key, "S-1")])
    dead = [line for line in log_lines(service.log()) if line["event"].startswith("dead-lettering")]
    assert len(dead) == 1
    assert "given_name" in dead[0]["reason"]
    assert "Heimlich" not in service.log()
    assert participant("R-9")["email"] not in service.log()
