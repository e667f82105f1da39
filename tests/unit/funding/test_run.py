"""A batch in the domain: which rows it may change (`plan_locks`) and how its run folds decisions.

That a batch decides what its events decide one at a time, and that its lock plan covers every
row it changes, is checked on random histories through the applier (test_properties.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from services.funding.domain import (
    AcceptanceOutcome,
    Approve,
    BatchState,
    Budget,
    Decline,
    Funding,
    FundingRun,
    LeaveWaitlist,
    NewFunding,
    QuotaState,
    RegistrationEvent,
    Release,
    Status,
    Waitlist,
    WaitlistsNotLoadedError,
    Withdrawal,
    WithdrawalOutcome,
    plan_locks,
)
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE as E,
)
from tests.unit.funding.samples import (
    IN_2022,
    UNKNOWN,
    application,
    directory,
    small_program,
)
from tests.unit.funding.samples import (
    KREISFREIE_STADT as K,
)
from tests.unit.funding.samples import (
    LANDKREIS as L,
)

EVERY_PERIOD = frozenset({"2021-2022", "2023"})


def funding(
    registration_id: str, key: str, status: Status, *, reason: str | None = None, seq: int | None = None
) -> Funding:
    return Funding(registration_id, key, status, "2023", reason, 50_000, seq)


# --- plan_locks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanCase:
    name: str
    events: list[RegistrationEvent]
    existing: dict[str, Funding]
    periods: frozenset[str]
    kommunen: frozenset[str]
    may_release: bool


PLAN_CASES = [
    PlanCase(
        "an acceptance: its period and Kommune",
        [application("R1")],
        {},
        frozenset({"2023"}),
        frozenset({E}),
        False,
    ),
    PlanCase(
        "acceptances in two periods",
        [application("R1"), application("R2", K, starts_on=IN_2022)],
        {},
        EVERY_PERIOD,
        frozenset({E, K}),
        False,
    ),
    PlanCase(
        "an acceptance outside every period: its Kommune only",
        [application("R1", starts_on=IN_2022.replace(year=2030))],
        {},
        frozenset(),
        frozenset({E}),
        False,
    ),
    PlanCase(
        "a withdrawal before its acceptance may release: every period",
        [Withdrawal("R1", E)],
        {},
        EVERY_PERIOD,
        frozenset({E}),
        True,
    ),
    PlanCase(
        "an acceptance and its withdrawal in one batch",
        [application("R1"), Withdrawal("R1", E)],
        {},
        EVERY_PERIOD,
        frozenset({E}),
        True,
    ),
    PlanCase(
        "the withdrawal of an approved registration: its record's Kommune too",
        [Withdrawal("R1", E)],
        {"R1": funding("R1", L, Status.APPROVED)},
        EVERY_PERIOD,
        frozenset({E, L}),
        True,
    ),
    PlanCase(
        "the withdrawal of a waitlisted registration (another instance may promote it first)",
        [Withdrawal("R1", E)],
        {"R1": funding("R1", E, Status.WAITLISTED, reason="quota_exhausted", seq=1)},
        EVERY_PERIOD,
        frozenset({E}),
        True,
    ),
    *[
        PlanCase(
            f"the withdrawal of a {status} registration reaches nothing",
            [Withdrawal("R1", E)],
            {"R1": funding("R1", E, status)},
            frozenset(),
            frozenset(),
            False,
        )
        for status in (Status.DECLINED, Status.RELEASED, Status.WITHDRAWN)
    ],
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=[case.name for case in PLAN_CASES])
def test_plan_locks(case: PlanCase) -> None:
    plan = plan_locks(small_program(), case.events, case.existing)
    assert (plan.period_ids, plan.kommune_keys, plan.may_release) == (
        case.periods,
        case.kommunen,
        case.may_release,
    )


def test_the_plan_names_each_registration_once_in_order_of_arrival() -> None:
    events: list[RegistrationEvent] = [application("R2"), Withdrawal("R1", E), application("R2")]
    assert plan_locks(small_program(), events, {}).registration_ids == ("R2", "R1")


def test_a_possible_release_also_locks_every_kommune_waiting_for_money() -> None:
    waiting = [funding("R9", K, Status.WAITLISTED, reason="budget_exhausted", seq=3)]
    releasing = plan_locks(small_program(), [Withdrawal("R1", E)], {})
    assert releasing.kommunen_to_lock(waiting) == {E, K}
    accepting = plan_locks(small_program(), [application("R1")], {})
    assert accepting.kommunen_to_lock(waiting) == {E}


# --- FundingRun ------------------------------------------------------------------------------


def state(
    *,
    fundings: Mapping[str, Funding] | None = None,
    budget_2023: Budget | None = None,
    quotas: Mapping[str, QuotaState] | None = None,
    quota_waiting: Mapping[str, int] | None = None,
    budget_waiting: Mapping[str, int] | None = None,
    waitlists_loaded: bool = True,
) -> BatchState:
    return BatchState(
        fundings=fundings or {},
        budgets={"2021-2022": Budget("2021-2022", None), "2023": budget_2023 or Budget("2023", 150_000)},
        quotas=quotas or {key: QuotaState(key, 2) for key in (E, K, L)},
        quota_waiting=quota_waiting or {},
        budget_waiting=budget_waiting or {},
        waitlists_loaded=waitlists_loaded,
    )


def effects(state_: BatchState, events: list[RegistrationEvent]) -> list[list[object]]:
    outcomes = FundingRun(small_program(), directory(), state_).decide(events)
    return [list(outcome.effects) for outcome in outcomes]


@dataclass(frozen=True)
class RunCase:
    name: str
    state: BatchState
    events: list[RegistrationEvent]
    expected: list[list[object]]


RUN_CASES = [
    RunCase(
        "the third acceptance of a Kommune waits for a place",
        state(),
        [application("R1"), application("R2"), application("R3")],
        [
            [Approve("R1", E, "2023", 50_000)],
            [Approve("R2", E, "2023", 50_000)],
            [Waitlist("R3", E, "2023", 50_000, "quota_exhausted", 1)],
        ],
    ),
    RunCase(
        "positions count the stored entries and the batch's",
        state(quotas={E: QuotaState(E, 2, 2)}, quota_waiting={E: 2}),
        [application("R1"), application("R2")],
        [
            [Waitlist("R1", E, "2023", 50_000, "quota_exhausted", 3)],
            [Waitlist("R2", E, "2023", 50_000, "quota_exhausted", 4)],
        ],
    ),
    RunCase(
        "the money runs out inside the batch",
        state(budget_2023=Budget("2023", 150_000, approved_cents=100_000), budget_waiting={"2023": 0}),
        [application("R1", K), application("R2", L), application("R3", L)],
        [
            [Approve("R1", K, "2023", 50_000)],
            [Waitlist("R2", L, "2023", 50_000, "budget_exhausted", 1)],
            [Waitlist("R3", L, "2023", 50_000, "budget_exhausted", 2)],
        ],
    ),
    RunCase(
        "a registration accepted twice in one batch is decided once",
        state(),
        [application("R1"), application("R1", K)],
        [[Approve("R1", E, "2023", 50_000)], []],
    ),
    RunCase(
        "a stored record gets no second first decision",
        state(fundings={"R1": funding("R1", E, Status.RELEASED)}),
        [application("R1")],
        [[]],
    ),
    RunCase(
        "an unknown Kommune is declined and holds nothing",
        state(),
        [application("R1", UNKNOWN), Withdrawal("R1", UNKNOWN)],
        [[Decline("R1", UNKNOWN, "unknown_kommune")], []],
    ),
    RunCase(
        "accepted, waitlisted and withdrawn in one batch: the place goes to the entry behind",
        state(),
        [application("R1"), application("R2"), application("R3"), Withdrawal("R1", E)],
        [
            [Approve("R1", E, "2023", 50_000)],
            [Approve("R2", E, "2023", 50_000)],
            [Waitlist("R3", E, "2023", 50_000, "quota_exhausted", 1)],
            [Release("R1", E, "2023", 50_000), Approve("R3", E, "2023", 50_000, promoted=True)],
        ],
    ),
    RunCase(
        "a stored entry is ahead of the batch's new ones",
        state(
            fundings={
                "R1": funding("R1", E, Status.APPROVED),
                "R0": funding("R0", E, Status.WAITLISTED, reason="quota_exhausted", seq=7),
            },
            quotas={E: QuotaState(E, 2, 2)},
            quota_waiting={E: 1},
        ),
        [application("R2"), Withdrawal("R1", E)],
        [
            [Waitlist("R2", E, "2023", 50_000, "quota_exhausted", 2)],
            [Release("R1", E, "2023", 50_000), Approve("R0", E, "2023", 50_000, promoted=True)],
        ],
    ),
    RunCase(
        "a promotion counts: the next acceptance waits behind fewer",
        state(
            fundings={
                "R1": funding("R1", E, Status.APPROVED),
                "R0": funding("R0", E, Status.WAITLISTED, reason="quota_exhausted", seq=7),
                "R9": funding("R9", E, Status.WAITLISTED, reason="quota_exhausted", seq=8),
            },
            quotas={E: QuotaState(E, 2, 2)},
            quota_waiting={E: 2},
        ),
        [Withdrawal("R1", E), application("R2")],
        [
            [Release("R1", E, "2023", 50_000), Approve("R0", E, "2023", 50_000, promoted=True)],
            [Waitlist("R2", E, "2023", 50_000, "quota_exhausted", 2)],
        ],
    ),
    RunCase(
        "leaving a waitlist counts: the next acceptance waits behind fewer",
        state(
            fundings={"R0": funding("R0", E, Status.WAITLISTED, reason="quota_exhausted", seq=7)},
            quotas={E: QuotaState(E, 2, 2)},
            quota_waiting={E: 1},
        ),
        [Withdrawal("R0", E), application("R2")],
        [[LeaveWaitlist("R0")], [Waitlist("R2", E, "2023", 50_000, "quota_exhausted", 1)]],
    ),
    RunCase(
        "a requeued entry waits for money behind the stored ones and counts there",
        state(
            fundings={
                "R1": Funding("R1", E, Status.APPROVED, "2021-2022", None, 50_000),
                "R0": funding("R0", E, Status.WAITLISTED, reason="quota_exhausted", seq=9),
                "R5": funding("R5", K, Status.WAITLISTED, reason="budget_exhausted", seq=4),
            },
            budget_2023=Budget("2023", 150_000, approved_cents=150_000),
            quotas={E: QuotaState(E, 2, 2), K: QuotaState(K, 2, 0), L: QuotaState(L, 2)},
            quota_waiting={E: 1},
            budget_waiting={"2023": 1},
        ),
        [Withdrawal("R1", E), application("R2", L)],
        [
            [
                Release("R1", E, "2021-2022", 50_000),
                Waitlist("R0", E, "2023", 50_000, "budget_exhausted", 2, requeued=True),
            ],
            [Waitlist("R2", L, "2023", 50_000, "budget_exhausted", 3)],
        ],
    ),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[case.name for case in RUN_CASES])
def test_run(case: RunCase) -> None:
    assert effects(case.state, case.events) == case.expected


def test_a_release_without_the_waitlists_is_refused() -> None:
    run = FundingRun(
        small_program(),
        directory(),
        state(fundings={"R1": funding("R1", E, Status.APPROVED)}, waitlists_loaded=False),
    )
    with pytest.raises(WaitlistsNotLoadedError):
        run.decide([Withdrawal("R1", E)])


def test_outcomes_name_what_to_record() -> None:
    accepted = application("R1")
    outcomes = FundingRun(small_program(), directory(), state()).decide([accepted, Withdrawal("R1", E)])
    approval = Approve("R1", E, "2023", 50_000)
    release = Release("R1", E, "2023", 50_000)
    assert outcomes == [AcceptanceOutcome(NewFunding(accepted, approval)), WithdrawalOutcome([release])]
    assert [outcome.changes for outcome in outcomes] == [[NewFunding(accepted, approval)], [release]]
