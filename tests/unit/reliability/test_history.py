"""The fault suite's history checker catches each defect it is there for, and passes a clean history."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.reliability.history import (
    FundingOutcome,
    Produced,
    final_state_differences,
    first_decisions,
    funding_violations,
    order_violations,
    ranked,
    seat_violations,
)


def event(event_type: str, event_id: str = "", **data: Any) -> dict[str, Any]:
    return {
        "event_id": event_id or f"{event_type}-{data.get('registration_id')}",
        "event_type": event_type,
        "data": data,
    }


def rows(*events: dict[str, Any], key: str = "03241001") -> list[Produced]:
    return [Produced(sequence, key, e) for sequence, e in enumerate(events, start=1)]


def seat(event_type: str, rid: str, seminar: str = "S1") -> dict[str, Any]:
    return event(event_type, registration_id=rid, seminar_id=seminar)


@pytest.mark.parametrize(
    ("history", "violations"),
    [
        ([seat("registration.accepted", "R1"), seat("registration.accepted", "R2")], []),
        (
            [
                seat("registration.accepted", "R1"),
                seat("registration.accepted", "R2"),
                seat("registration.accepted", "R3"),
            ],
            ["S1: 3 seats taken of 2"],
        ),
        # A withdrawal frees the seat before the third acceptance.
        (
            [
                seat("registration.accepted", "R1"),
                seat("registration.accepted", "R2"),
                seat("registration.withdrawn", "R1"),
                seat("registration.accepted", "R3"),
            ],
            [],
        ),
        # The freed seat counts only where the acceptance came first: over capacity in between.
        (
            [
                seat("registration.accepted", "R1"),
                seat("registration.accepted", "R2"),
                seat("registration.accepted", "R3"),
                seat("registration.withdrawn", "R1"),
            ],
            ["S1: 3 seats taken of 2"],
        ),
        # A withdrawal of a waitlisted registration frees no seat; a repeated acceptance takes none.
        (
            [
                seat("registration.accepted", "R1"),
                seat("registration.accepted", "R1"),
                seat("registration.withdrawn", "R9"),
                seat("registration.accepted", "R2"),
            ],
            [],
        ),
        ([seat("registration.accepted", "R1", seminar="S2")], ["S2: 1 seats taken of 0"]),
    ],
)
def test_seats_are_checked_at_every_prefix(history: list[dict[str, Any]], violations: list[str]) -> None:
    assert [v.detail for v in seat_violations(rows(*history), {"S1": 2})] == violations


def money(
    event_type: str, rid: str, kommune: str = "K1", period: str = "2023", amount: int = 50
) -> dict[str, Any]:
    return event(event_type, registration_id=rid, kommune_key=kommune, period_id=period, amount_cents=amount)


@pytest.mark.parametrize(
    ("history", "violations"),
    [
        ([money("funding.approved", "R1"), money("funding.approved", "R2", kommune="K2")], []),
        (
            [
                money("funding.approved", "R1"),
                money("funding.approved", "R2", kommune="K2"),
                money("funding.approved", "R3", kommune="K3"),
            ],
            [("budget", "period 2023: 150 committed of 100")],
        ),
        (
            [
                money("funding.approved", "R1"),
                money("funding.released", "R1"),
                money("funding.approved", "R2"),
                money("funding.approved", "R3", period="2022"),
            ],
            [],
        ),
        (
            [
                money("funding.approved", "R1", period="2022"),
                money("funding.approved", "R2", period="2022"),
                money("funding.approved", "R3", period="2022"),
            ],
            [("quota", "K1: 3 funded places of 2")],
        ),
        # A period without a budget is bounded by the quota alone; waitlistings cost nothing.
        (
            [money("funding.approved", f"R{i}", kommune=f"K{i}", period="2022") for i in range(5)]
            + [event("funding.waitlisted", registration_id="R9", kommune_key="K1", period_id="2023")],
            [],
        ),
    ],
)
def test_quota_and_budget_are_checked_at_every_prefix(
    history: list[dict[str, Any]], violations: list[tuple[str, str]]
) -> None:
    found = funding_violations(rows(*history), quota=2, budgets={"2023": 100, "2022": None})
    assert [(v.kind, v.detail) for v in found] == violations


def test_rows_are_taken_in_id_order_not_list_order() -> None:
    withdrawn, accepted = seat("registration.withdrawn", "R1"), seat("registration.accepted", "R1")
    history = [
        Produced(2, "k", withdrawn),
        Produced(1, "k", accepted),
        Produced(3, "k", seat("registration.accepted", "R2")),
    ]
    assert seat_violations(history, {"S1": 1}) == []


A1, A2, A3 = (event("x", f"a{i}") for i in (1, 2, 3))
B1 = event("x", "b1")
PRODUCED = [Produced(1, "A", A1), Produced(2, "B", B1), Produced(3, "A", A2), Produced(4, "A", A3)]


@pytest.mark.parametrize(
    ("delivered", "inversions"),
    [
        ([A1, A2, A3, B1], 0),
        ([B1, A1, A2, A3], 0),  # across keys, any interleaving
        ([A1, A2, A1, A3, A2], 0),  # a republished copy is a duplicate, not an inversion
        ([A1, A3, A2], 1),
        ([A2, A1, A3], 1),
        ([A3, A2, A1], 2),
        ([event("y", "unknown"), A1], 0),  # not produced by this service: another check's business
    ],
)
def test_per_key_order_is_the_production_order(delivered: list[dict[str, Any]], inversions: int) -> None:
    found = order_violations("funding.decisions", PRODUCED, delivered)
    assert len(found) == inversions
    assert all(v.kind == "order" and "key A" in v.detail for v in found)


def test_order_is_per_registration_within_a_key() -> None:
    r1a, r2, r1b = (event("x", i, registration_id=r) for i, r in (("1a", "R1"), ("2", "R2"), ("1b", "R1")))
    produced = [Produced(1, "A", r1a), Produced(2, "A", r2), Produced(3, "A", r1b)]
    # R2's event (an independent transaction) may come first; R1's two events may not swap.
    assert order_violations("t", produced, [r2, r1a, r1b]) == []
    assert len(order_violations("t", produced, [r1b, r2, r1a])) == 1


def decision(event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
    return event(event_type, event_id, registration_id="R1", **data)


@pytest.mark.parametrize(
    ("history", "firsts"),
    [
        ([], []),
        ([decision("funding.approved", "1", promoted=False)], ["1"]),
        (
            [
                decision("funding.approved", "1", promoted=False),
                decision("funding.approved", "1", promoted=False),
            ],
            ["1"],
        ),
        (
            [
                decision("funding.approved", "1", promoted=False),
                decision("funding.approved", "2", promoted=False),
            ],
            ["1", "2"],
        ),
        (
            [
                decision("funding.waitlisted", "1", reason="budget_exhausted"),
                decision("funding.approved", "2", promoted=True),
                decision("funding.released", "3"),
            ],
            ["1"],
        ),
        # Quota waitlist, then the freed place meets an empty budget: a change of reason (ADR 0006).
        (
            [
                decision("funding.waitlisted", "1", reason="quota_exhausted"),
                decision("funding.waitlisted", "2", reason="budget_exhausted"),
            ],
            ["1"],
        ),
        (
            [
                decision("funding.waitlisted", "1", reason="budget_exhausted"),
                decision("funding.waitlisted", "2", reason="budget_exhausted"),
            ],
            ["1", "2"],
        ),
        (
            [
                decision("funding.waitlisted", "1", reason="quota_exhausted"),
                decision("funding.declined", "2", reason="period_closed"),
            ],
            ["1"],
        ),
        ([decision("funding.declined", "1", reason="kommune_not_eligible")], ["1"]),
    ],
)
def test_first_decisions(history: list[dict[str, Any]], firsts: list[str]) -> None:
    assert [e["event_id"] for e in first_decisions(history)] == firsts


APPROVED = FundingOutcome("approved", "2023", None, 50)


def test_quota_waitlists_are_ranked_per_kommune_and_the_money_waitlist_across_them() -> None:
    def waiting(reason: str, kommune: str) -> FundingOutcome:
        return FundingOutcome("waitlisted", "2023", reason, 50, kommune)

    outcomes = ranked(
        [
            ("A1", waiting("quota_exhausted", "A"), 5),
            ("B1", waiting("quota_exhausted", "B"), 3),
            ("A2", waiting("quota_exhausted", "A"), 9),
            ("A3", waiting("budget_exhausted", "A"), 8),
            ("B2", waiting("budget_exhausted", "B"), 4),
        ]
    )
    assert {rid: o.rank for rid, o in outcomes.items()} == {"A1": 1, "B1": 1, "A2": 2, "B2": 1, "A3": 2}


def test_ranked_orders_each_waitlist_by_sequence_and_leaves_the_rest() -> None:
    quota = FundingOutcome("waitlisted", "2023", "quota_exhausted", 50)
    budget = FundingOutcome("waitlisted", "2023", "budget_exhausted", 50)
    outcomes = ranked([("R1", APPROVED, None), ("R2", quota, 90), ("R3", budget, 12), ("R4", quota, 7)])
    assert outcomes == {
        "R1": APPROVED,
        "R2": replace(quota, rank=2),
        "R3": replace(budget, rank=1),
        "R4": replace(quota, rank=1),
    }


@pytest.mark.parametrize(
    ("model", "differences"),
    [
        ({"R1": APPROVED, "R2": FundingOutcome("released", "2023", None, 50)}, 0),
        # A registration the system left funded after its withdrawal.
        ({"R1": APPROVED, "R2": FundingOutcome("approved", "2023", None, 50)}, 2),
        ({"R1": APPROVED}, 1),  # the system decided one the model never saw
        # R1 in another period: its record, and the money of both periods.
        ({"R1": replace(APPROVED, period_id="2022"), "R2": FundingOutcome("released", "2023", None, 50)}, 3),
    ],
)
def test_a_final_state_that_differs_from_the_model_is_caught(
    model: dict[str, FundingOutcome], differences: int
) -> None:
    system = {"R1": APPROVED, "R2": FundingOutcome("released", "2023", None, 50)}
    found = final_state_differences(system, model)
    assert len(found) == differences
    assert all(v.kind == "final state" for v in found)
