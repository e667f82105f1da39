"""Issue 19: for random programmes within the format and random histories of basic and follow-up
courses, withdrawals (some before their acceptance) and redeliveries, the invariants hold.

The in-memory unit of work checks on every commit that no quota or budget is overdrawn and that
the counters agree with the records (a follow-up that takes no place holds none). On top: exactly
one first decision per accepted registration; nothing waits for a place or money that is free; a
follow-up that needs a funded basic course is approved first only if its participant held one.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.funding.domain import Application, Approve, Status, Waitlist
from services.funding.participants import participant_hash
from shared.events import Envelope
from shared.program import Course, Program, parse_program
from tests.unit.funding.fakes import InMemoryFundingService, accepted_event, withdrawn_event
from tests.unit.funding.samples import (
    EINHEITSGEMEINDE,
    KREISFREIE_STADT,
    LANDKREIS,
    MITGLIEDSGEMEINDE,
    PARTICIPANT_KEY,
    directory,
)
from tests.unit.funding.test_properties import is_first_decision

KEYS = [EINHEITSGEMEINDE, KREISFREIE_STADT, LANDKREIS] * 3 + [MITGLIEDSGEMEINDE]
EMAILS = ["a@example.org", "b@example.org", "c@example.org"]
AMOUNTS = [
    'rule = "share_of_fee"\nshare = "0.5"',
    'rule = "share_of_fee"\nshare = "1"',
    'rule = "per_seminar_day"\ncents_per_day = 10_000',
    'rule = "per_seminar_day"\ncents_per_day = 25_000',
]


@st.composite
def programs(draw: st.DrawFn) -> Program:
    follow_up = draw(st.sampled_from(["none", "funded"]))
    if follow_up == "none":
        courses = "[courses.follow_up]\nfunded = false\n"
    else:
        courses = (
            "[courses.follow_up]\nfunded = true\n"
            f"requires_funded_basic = {str(draw(st.booleans())).lower()}\n"
            f"takes_quota_place = {str(draw(st.booleans())).lower()}\n"
            f"[courses.follow_up.amount]\n{draw(st.sampled_from(AMOUNTS))}\n"
        )
    budget = draw(st.sampled_from([None, 0, 50_000, 150_000, 400_000]))
    text = f"""
id = "random"
name = "A random programme"
funds_registrations_after_start = {str(draw(st.booleans())).lower()}

[amount]
{draw(st.sampled_from(AMOUNTS))}

{courses}
[quota]
places = {draw(st.integers(0, 2))}

[eligibility]
lands = ["03"]
kinds = ["landkreis", "kreisfreie_stadt", "einheitsgemeinde", "samtgemeinde"]

[[periods]]
id = "2022"
starts_on = 2022-01-01
ends_on = 2022-12-31
budget_cents = 100_000

[[periods]]
id = "2023"
starts_on = 2023-01-01
ends_on = 2023-12-31
{"" if budget is None else f"budget_cents = {budget}"}
"""
    return parse_program(text)


@dataclass(frozen=True)
class Accept:
    registration: int
    key: str
    in_2023: bool
    fee_cents: int
    days: int
    follow_up: bool
    email: int
    late: bool


@dataclass(frozen=True)
class Withdraw:
    registration: int


@dataclass(frozen=True)
class Redeliver:
    step: int


Step = Accept | Withdraw | Redeliver

accepts = st.builds(
    Accept,
    st.integers(0, 12),
    st.sampled_from(KEYS),
    st.sampled_from([True, True, False]),
    st.sampled_from([0, 50_000, 100_000, 300_000]),
    st.integers(1, 4),
    st.booleans(),
    st.integers(0, len(EMAILS) - 1),
    st.sampled_from([False, False, False, True]),
)
histories = st.lists(
    st.one_of(
        *[accepts] * 5,
        *[st.builds(Withdraw, st.integers(0, 12))] * 2,
        st.builds(Redeliver, st.integers(0, 60)),
    ),
    min_size=5,
    max_size=60,
)


def deliveries(history: list[Step]) -> list[tuple[Envelope[Any], str | None]]:
    """Events with the email of an acceptance (None for a withdrawal)."""
    delivered: list[tuple[Envelope[Any], str | None]] = []
    first_keys: dict[str, str] = {}
    for number, step in enumerate(history):
        event_id = uuid.UUID(int=number + 1)
        if isinstance(step, Accept):
            registration_id = f"R{step.registration}"
            first_keys.setdefault(registration_id, step.key)
            starts_on = date(2023, 5, 2) if step.in_2023 else date(2022, 5, 2)
            submitted = datetime(2023 if step.in_2023 else 2022, 5, 1, 21, 59, tzinfo=UTC)  # 23:59 Berlin
            found = Application(
                registration_id,
                step.key,
                "S-1",
                starts_on,
                starts_on + timedelta(days=step.days - 1),
                step.fee_cents,
                course=Course.FOLLOW_UP if step.follow_up else Course.BASIC,
                submitted_at=submitted + timedelta(minutes=1) if step.late else submitted,
            )
            email = EMAILS[step.email]
            delivered.append((accepted_event(found, event_id, email), email))
        elif isinstance(step, Withdraw):
            registration_id = f"R{step.registration}"
            key = first_keys.get(registration_id, EINHEITSGEMEINDE)
            delivered.append((withdrawn_event(registration_id, key, event_id), None))
        elif step.step < len(delivered):
            delivered.append(delivered[step.step])
    return delivered


@settings(max_examples=250, deadline=None)
@given(programs(), histories)
def test_random_programmes_and_histories_keep_every_invariant(program: Program, history: list[Step]) -> None:
    funding = InMemoryFundingService(program, directory(), PARTICIPANT_KEY)
    needs_basic = program.requires_funded_basic(Course.FOLLOW_UP)
    accepted: set[str] = set()
    first_decisions: Counter[str] = Counter()
    seen: set[uuid.UUID] = set()
    for event, email in deliveries(history):
        before = funding.tables.copy()
        effects = funding.deliver([event])
        _assert_nothing_waits_for_what_is_free(funding)
        if event.event_id in seen:
            assert effects == []
            continue
        seen.add(event.event_id)
        firsts = [e for e in effects if is_first_decision(e)]
        first_decisions.update(e.registration_id for e in firsts)
        if event.event_type != "registration.accepted":
            assert firsts == []
            continue
        registration_id = event.data.registration_id
        if registration_id in accepted:
            assert effects == []
            continue
        accepted.add(registration_id)
        assert [e.registration_id for e in firsts] == [registration_id]
        (first,) = firsts
        if event.data.course == "follow_up" and isinstance(first, Approve | Waitlist):
            assert program.course_funded(Course.FOLLOW_UP)
            assert first.takes_place is program.takes_quota_place(Course.FOLLOW_UP)
            if needs_basic:
                assert email is not None
                hashed = participant_hash(PARTICIPANT_KEY, email)
                assert any(
                    f.holds_funded_basic and f.participant_hash == hashed for f in before.fundings.values()
                )
    assert first_decisions == Counter(accepted)
    for record in funding.tables.fundings.values():
        if record.course is Course.FOLLOW_UP and record.status is Status.APPROVED:
            assert program.course_funded(Course.FOLLOW_UP)


def _assert_nothing_waits_for_what_is_free(funding: InMemoryFundingService) -> None:
    tables = funding.tables
    for entry in tables.waiting("quota_exhausted"):
        assert not tables.quotas[entry.kommune_key].has_room, f"{entry} waits for a free place"
    for period_id, budget in tables.budgets.items():
        waiting = [
            e
            for e in tables.waiting("budget_exhausted")
            if e.period_id == period_id and (not e.takes_place or tables.quotas[e.kommune_key].has_room)
        ]
        if waiting and not budget.closed:
            assert waiting[0].amount_cents is not None
            assert not budget.allows(waiting[0].amount_cents), f"{waiting[0]} waits for money that is there"
