"""The fault suite's model replays funding's inputs in the claimed order through the real applier."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared.events import Envelope
from shared.topics import Topics
from tests.reliability.history import FundingOutcome
from tests.reliability.model import funding_state, replay_funding, replay_registration
from tests.unit.funding.fakes import accepted_event, withdrawn_event
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    KREISFREIE_STADT,
    application,
    directory,
    small_program,
)
from tests.unit.registration.portal_events import published, submitted, withdrawal_requested


def raw(envelope: Envelope[Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(envelope.model_dump_json())
    return value


def test_the_model_follows_the_claimed_order_and_ignores_the_topic_order() -> None:
    ids = [uuid.UUID(int=n) for n in range(1, 7)]
    events = {
        str(ids[0]): raw(accepted_event(application("E1"), ids[0])),
        str(ids[1]): raw(accepted_event(application("E2"), ids[1])),
        str(ids[2]): raw(accepted_event(application("E3"), ids[2])),
        str(ids[3]): raw(withdrawn_event("E1", EINHEITSGEMEINDE, ids[3])),
        str(ids[4]): raw(accepted_event(application("K1", KREISFREIE_STADT), ids[4])),
        str(ids[5]): raw(accepted_event(application("K2", KREISFREIE_STADT), ids[5])),
    }
    in_topic_order = replay_funding([str(i) for i in ids], events, small_program(), directory(), None)
    # Claimed with K2 before K1: the budget of 150,000 has room for three approvals.
    claimed = [str(ids[i]) for i in (0, 1, 2, 5, 4, 3)]
    model = replay_funding(claimed, events, small_program(), directory(), None)
    # E1's release frees a place of its Kommune and money: E3 (waiting for the place) takes both.
    e, k = EINHEITSGEMEINDE, KREISFREIE_STADT
    shared = {
        "E1": FundingOutcome("released", "2023", None, 50_000, e),
        "E2": FundingOutcome("approved", "2023", None, 50_000, e),
        "E3": FundingOutcome("approved", "2023", None, 50_000, e),
    }
    waiting = FundingOutcome("waitlisted", "2023", "budget_exhausted", 50_000, k, rank=1)
    assert model == {**shared, "K2": FundingOutcome("approved", "2023", None, 50_000, k), "K1": waiting}
    assert in_topic_order == {
        **shared,
        "K1": FundingOutcome("approved", "2023", None, 50_000, k),
        "K2": waiting,
    }


def test_the_system_state_is_read_with_the_same_ranks() -> None:
    def row(rid: str, status: str, reason: str, sequence: int | None) -> dict[str, Any]:
        period, amount = ("2023", 5) if sequence is not None else (None, None)
        return {
            "registration_id": rid,
            "kommune_key": "03241",
            "status": status,
            "period_id": period,
            "reason": reason,
            "amount_cents": amount,
            "waitlist_seq": sequence,
        }

    rows = [
        row("A", "waitlisted", "budget_exhausted", 40),
        row("B", "waitlisted", "budget_exhausted", 3),
        row("C", "declined", "kommune_not_eligible", None),
    ]
    state = funding_state(rows)
    assert (state["A"].rank, state["B"].rank, state["C"].rank) == (2, 1, None)


def test_the_registration_model_seats_in_the_claimed_order() -> None:
    topics = Topics()
    inputs = [
        (topics.portal_seminars, published("S-1", 1)),
        (topics.portal_registrations, submitted("R1")),
        (topics.portal_registrations, submitted("R2")),
        (topics.portal_registrations, withdrawal_requested("R9")),  # before its submission
        (topics.portal_registrations, submitted("R9")),
    ]
    events = {str(e.event_id): raw(e) for _, e in inputs}

    def claimed(order: tuple[int, ...]) -> list[tuple[str, str]]:
        return [(str(inputs[i][1].event_id), inputs[i][0]) for i in order]

    in_order = replay_registration(claimed((0, 1, 2, 3, 4)), events, directory(), topics)
    swapped = replay_registration(claimed((0, 2, 1, 3, 4)), events, directory(), topics)
    assert in_order.seats == swapped.seats == {"S-1": 1}
    assert (in_order.outcomes["R1"].status, in_order.outcomes["R2"].rank) == ("accepted", 1)
    assert (swapped.outcomes["R2"].status, swapped.outcomes["R1"].rank) == ("accepted", 1)
    assert in_order.outcomes["R9"].status == swapped.outcomes["R9"].status == "withdrawn"
