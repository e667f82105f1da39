"""Two instances of the service, as real processes in one consumer group, race for the last seats."""

from __future__ import annotations

from collections import defaultdict
from itertools import islice

import pytest

from shared.directory import load_directory
from shared.settings import DEFAULT_DIRECTORY_FILE
from tests.integration.registration.conftest import ProcessFactory, consumers_with_partitions
from tests.integration.registration.portal import (
    Portal,
    contact,
    history,
    outcomes,
    participant,
    seminar,
    submission,
    wait_until,
)

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
    every_log = "\n".join(logs.values())
    for _key, event in submissions:
        data = event["data"]
        assert data["registration_id"] in every_log
        for personal in (*participant(data["registration_id"]).values(), contact(data["kommune_key"])):
            assert personal not in every_log
