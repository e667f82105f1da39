"""A registration that arrives before its seminar's offer: real Kafka and PostgreSQL.

Kafka orders nothing across topics, so a portal's submission may be consumed before the offer it
refers to. It waits for the offer for REGISTRATION_SEMINAR_GRACE_SECONDS, then it is rejected.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.integration.registration.portal import Message, Portal, history, one, seminar, submission
from tests.support.service import ServiceFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HANNOVER_AGS = "03241001"


def follow_up_course(seminar_id: str, capacity: int) -> Message:
    key, value = seminar(seminar_id, capacity)
    value["data"] = {**value["data"], "course": "follow_up", "location": "Lüneburg"}
    return key, value


async def test_a_registration_before_its_seminar_is_placed_when_the_offer_comes(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    first, second = submission("R-1", HANNOVER_AGS, "S-1"), submission("R-2", HANNOVER_AGS, "S-1")
    async with registration_service():  # the default grace: minutes
        await portal.registrations(first, second)

        async def parked() -> bool:
            count: int = await portal.db.fetchval("SELECT count(*) FROM parked_submissions")
            return count == 2

        await wait_until(parked)
        assert await portal.statuses() == {}  # nothing decided, nothing published yet

        await portal.seminars(follow_up_course("S-1", 1))
        records = await portal.outcomes(2, settle=2)

    assert history(records) == {"R-1": ["registration.accepted"], "R-2": ["registration.waitlisted"]}
    accepted = one(records, "registration.accepted", "R-1")
    assert (accepted["course"], accepted["seminar_location"]) == ("follow_up", "Lüneburg")
    assert datetime.fromisoformat(accepted["submitted_at"]) == datetime.fromisoformat(first[1]["occurred_at"])
    assert one(records, "registration.waitlisted", "R-2")["position"] == 1
    assert await portal.statuses() == {"R-1": "accepted", "R-2": "waitlisted"}
    assert await portal.db.fetchval("SELECT count(*) FROM parked_submissions") == 0


async def test_a_registration_whose_seminar_does_not_come_within_the_grace_is_rejected_once(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    late = submission("R-1", HANNOVER_AGS, "S-9")
    async with registration_service(seminar_grace_seconds=1):
        await portal.registrations(late)
        records = await portal.outcomes(1)
        assert history(records) == {"R-1": ["registration.rejected"]}
        assert one(records, "registration.rejected", "R-1")["reason"] == "unknown_seminar"

        # The offer comes too late: the registration stays rejected, nothing else is published.
        await portal.seminars(seminar("S-9", 2))
        records = await portal.outcomes(1, settle=3)

    assert history(records) == {"R-1": ["registration.rejected"]}
    assert await portal.statuses() == {"R-1": "rejected"}
    assert await portal.db.fetchval("SELECT count(*) FROM parked_submissions") == 0


async def test_without_a_grace_a_registration_before_its_seminar_is_rejected_at_once(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    async with registration_service(seminar_grace_seconds=0):
        await portal.registrations(submission("R-1", HANNOVER_AGS, "S-9"))
        records = await portal.outcomes(1)
    assert one(records, "registration.rejected", "R-1")["reason"] == "unknown_seminar"
    assert await portal.db.fetchval("SELECT count(*) FROM parked_submissions") == 0
