"""A submission that arrives before its seminar's offer waits for it, for the grace at most.

The real appliers and the sweep, driven through the in-memory unit of work and its clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.registration.handlers import ParkingSweeper, PortalRegistrationsApplier, PortalSeminarsApplier
from shared.events import Envelope, derived_event_id
from shared.outbox import OutboxMessage
from tests.unit.registration.fakes import InMemoryDatabase, consume
from tests.unit.registration.portal_events import (
    BRAUNSCHWEIG,
    cancelled,
    published,
    submitted,
    withdrawal_requested,
)
from tests.unit.registration.test_appliers import DIRECTORY, TOPICS, comparable, outcomes, without_times

GRACE = timedelta(seconds=300)
SEMINARS = PortalSeminarsApplier(TOPICS)
REGISTRATIONS = PortalRegistrationsApplier(TOPICS, DIRECTORY, seminar_grace=GRACE)


async def seminars(database: InMemoryDatabase, *events: Envelope[Any]) -> list[OutboxMessage]:
    return await consume(database, TOPICS.portal_seminars, SEMINARS, events)


async def registrations(database: InMemoryDatabase, *events: Envelope[Any]) -> list[OutboxMessage]:
    return await consume(database, TOPICS.portal_registrations, REGISTRATIONS, events)


async def sweep(database: InMemoryDatabase, grace: timedelta = GRACE) -> list[OutboxMessage]:
    before = len(database.tables.outbox)
    async with database.unit_of_work() as uow:
        await ParkingSweeper(TOPICS, grace).sweep(uow)
    return database.tables.outbox[before:]


def decided(messages: Sequence[OutboxMessage]) -> list[tuple[str, str, Any]]:
    """(event type, registration id, reason or position) of each message."""
    return [
        (
            m.envelope.event_type.removeprefix("registration."),
            m.envelope.data.registration_id,
            getattr(m.envelope.data, "reason", getattr(m.envelope.data, "position", None)),
        )
        for m in messages
    ]


async def test_submissions_before_the_offer_wait_and_take_seats_in_arrival_order() -> None:
    database = InMemoryDatabase()
    early = [
        submitted("R-1", "S-1"),
        submitted("R-2", "S-1"),
        submitted("R-3", "S-1", kommune_key=BRAUNSCHWEIG),
    ]
    assert await registrations(database, *early[:2]) == []
    database.now += timedelta(seconds=10)
    assert await registrations(database, early[2]) == []
    assert list(database.tables.parked_submissions) == ["R-1", "R-2", "R-3"]
    assert database.tables.registrations == {}

    database.now += GRACE - timedelta(seconds=11)  # are one second short of the grace
    assert await sweep(database) == []

    out = await seminars(database, published("S-1", 2))
    assert decided(out) == [("accepted", "R-1", None), ("accepted", "R-2", None), ("waitlisted", "R-3", 1)]
    # Published as the submission would have been at its arrival: its ids, its correlation.
    for message, submission in zip(out, early, strict=True):
        purpose = (
            f"{message.envelope.event_type.removeprefix('registration.')}:{submission.data.registration_id}"
        )
        assert message.envelope.event_id == derived_event_id(submission.event_id, purpose)
        assert message.envelope.correlation_id == submission.event_id
        assert message.envelope.data.submitted_at == submission.occurred_at
        assert message.envelope.data.seminar_location == "Hannover"
    assert database.tables.parked_submissions == {}
    assert {r.registration_id: r.status.value for r in database.tables.registrations.values()} == {
        "R-1": "accepted",
        "R-2": "accepted",
        "R-3": "waitlisted",
    }

    database.now += GRACE
    assert await sweep(database) == []  # never both
    # The waitlist works as for any registration: a withdrawal promotes the parked one.
    out = await registrations(database, withdrawal_requested("R-1"))
    assert decided(out) == [("withdrawn", "R-1", "withdrawn_by_portal"), ("accepted", "R-3", None)]


async def test_a_parked_submission_is_decided_as_it_would_have_been_after_the_offer() -> None:
    """The same events, once with the submission first and once with the offer first."""
    offer, submission = published("S-1", 1), submitted("R-1", "S-1")
    late_offer = InMemoryDatabase()
    await registrations(late_offer, submission)
    await seminars(late_offer, offer)
    offer_first = InMemoryDatabase()
    await seminars(offer_first, offer)
    await registrations(offer_first, submission)
    assert without_times(late_offer.tables.outbox) == without_times(offer_first.tables.outbox)
    assert late_offer.tables.registrations == offer_first.tables.registrations


async def test_a_parked_submission_still_waiting_after_the_grace_is_rejected_once() -> None:
    database = InMemoryDatabase()
    submission = submitted("R-1", "S-404")
    await registrations(database, submission)
    database.now += GRACE
    out = await sweep(database)
    assert decided(out) == [("rejected", "R-1", "unknown_seminar")]
    assert out[0].envelope.event_id == derived_event_id(submission.event_id, "rejected:R-1")
    assert out[0].key == "032410001001"
    assert database.tables.parked_submissions == {}
    assert await sweep(database) == []
    assert await seminars(database, published("S-404", 3)) == []  # never both
    assert await registrations(database, submission) == []  # a redelivery: nothing new
    assert await registrations(database, withdrawal_requested("R-1")) == []  # rejected before
    assert outcomes(database) == [("rejected", "R-1", "unknown_seminar")]


async def test_without_a_grace_the_sweep_rejects_what_an_earlier_start_parked() -> None:
    database = InMemoryDatabase()
    await registrations(database, submitted("R-1", "S-404"))
    assert decided(await sweep(database, timedelta(0))) == [("rejected", "R-1", "unknown_seminar")]


async def test_without_a_grace_an_unknown_seminar_is_rejected_at_once() -> None:
    database = InMemoryDatabase()
    applier = PortalRegistrationsApplier(TOPICS, DIRECTORY)
    out = await consume(database, TOPICS.portal_registrations, applier, [submitted("R-1", "S-404")])
    assert decided(out) == [("rejected", "R-1", "unknown_seminar")]
    assert database.tables.parked_submissions == {}


async def test_withdrawing_a_parked_submission_rejects_it_as_without_a_grace() -> None:
    database = InMemoryDatabase()
    submission = submitted("R-1", "S-1")
    await registrations(database, submission)
    out = await registrations(database, withdrawal_requested("R-1"))
    assert decided(out) == [("rejected", "R-1", "unknown_seminar")]
    assert out[0].envelope.event_id == derived_event_id(submission.event_id, "rejected:R-1")
    assert database.tables.parked_submissions == {}
    assert database.tables.pending_withdrawals == {}
    assert await seminars(database, published("S-1", 1)) == []
    database.now += GRACE
    assert await sweep(database) == []


async def test_a_withdrawal_waiting_for_its_submission_rejects_it_instead_of_parking_it() -> None:
    database = InMemoryDatabase()
    assert await registrations(database, withdrawal_requested("R-1")) == []
    out = await registrations(database, submitted("R-1", "S-1"))
    assert decided(out) == [("rejected", "R-1", "unknown_seminar")]
    assert database.tables.parked_submissions == {}
    assert database.tables.pending_withdrawals == {}


async def test_a_parked_submission_sent_again_is_the_same_submission() -> None:
    database = InMemoryDatabase()
    first = submitted("R-1", "S-1")
    assert await registrations(database, first, submitted("R-1", "S-1")) == []  # the same content
    out = await registrations(database, submitted("R-1", "S-1", contact_email="andere@kommune.example"))
    assert decided(out) == [("rejected", "R-1", "registration_id_conflict")]
    out = await seminars(database, published("S-1", 1))
    assert decided(out) == [("accepted", "R-1", None)]
    assert out[0].envelope.data.contact_email == first.data.contact_email


async def test_the_offer_finds_duplicates_among_the_parked_and_a_cancellation_withdraws_them() -> None:
    database = InMemoryDatabase()
    await registrations(
        database,
        submitted("R-1", "S-1", email="same@mail.example"),
        submitted("R-2", "S-1", email="SAME@mail.example"),
        submitted("R-3", "S-1"),
        submitted("R-4", "S-2"),
    )
    out = await seminars(database, published("S-1", 1), cancelled("S-1"))
    assert decided(out) == [
        ("accepted", "R-1", None),
        ("rejected", "R-2", "duplicate_participant"),
        ("waitlisted", "R-3", 1),
        ("withdrawn", "R-1", "seminar_cancelled"),
        ("withdrawn", "R-3", "seminar_cancelled"),
    ]
    assert list(database.tables.parked_submissions) == ["R-4"]  # another seminar's


async def test_a_cancellation_of_a_seminar_not_known_yet_leaves_its_parked_submissions_waiting() -> None:
    database = InMemoryDatabase()
    await registrations(database, submitted("R-1", "S-1"))
    assert await seminars(database, cancelled("S-1")) == []
    assert list(database.tables.parked_submissions) == ["R-1"]


# --- properties --------------------------------------------------------------------------------

SEMINAR_IDS = ("S-1", "S-2", "S-3")
REGISTRATION_IDS = tuple(f"R-{n}" for n in range(6))
EMAILS = ("p0@mail.example", "p1@mail.example", "P1@mail.example")

step = st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(SEMINAR_IDS), st.integers(1, 3), st.just("")),
    st.tuples(st.just("cancel"), st.sampled_from(SEMINAR_IDS), st.just(0), st.just("")),
    st.tuples(
        st.just("submit"), st.sampled_from(REGISTRATION_IDS), st.integers(0, 2), st.sampled_from(EMAILS)
    ),
    st.tuples(st.just("withdraw"), st.sampled_from(REGISTRATION_IDS), st.just(0), st.just("")),
    st.tuples(st.just("wait"), st.just(""), st.sampled_from([60, 300]), st.just("")),
)


def first_decisions(messages: Sequence[OutboxMessage]) -> Counter[str]:
    """Per registration id, how many first decisions it got (a promotion or a conflict is none)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for m in messages:
        kind = m.envelope.event_type.removeprefix("registration.")
        if kind == "rejected" and m.envelope.data.reason == "registration_id_conflict":
            continue
        seen[m.envelope.data.registration_id].append(kind)
    return Counter(
        {
            rid: sum(1 for kind in kinds if kind in ("waitlisted", "rejected")) + (kinds[0] == "accepted")
            for rid, kinds in seen.items()
        }
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.lists(step, max_size=25), batch_size=st.sampled_from([2, 3, 50]))
async def test_every_submission_is_decided_once_however_the_topics_interleave(
    spec: list[tuple[str, str, int, str]], batch_size: int
) -> None:
    """Seminars and registrations in any order, batched or one by one: the same outputs and state,
    and once the grace has passed every submission has exactly one first decision."""

    # The same envelopes for both plays; a wait moves the clock and sweeps.
    actions: list[tuple[str, Envelope[Any]] | int] = []
    for kind, target, number, email in spec:
        if kind == "publish":
            actions.append(("seminars", published(target, number)))
        elif kind == "cancel":
            actions.append(("seminars", cancelled(target)))
        elif kind == "submit":
            actions.append(("registrations", submitted(target, SEMINAR_IDS[number], email=email)))
        elif kind == "withdraw":
            actions.append(("registrations", withdrawal_requested(target)))
        else:
            actions.append(number)
    actions.append(int(GRACE.total_seconds()))

    async def play(size: int) -> InMemoryDatabase:
        database = InMemoryDatabase()
        pending: list[tuple[str, Envelope[Any]]] = []

        async def flush() -> None:
            # Consecutive events of one topic go in batches of `size`.
            while pending:
                topic = pending[0][0]
                end = next((i for i, (other, _) in enumerate(pending) if other != topic), len(pending))
                run = [event for _, event in pending[:end]]
                del pending[:end]
                applier = SEMINARS if topic == "seminars" else REGISTRATIONS
                for start in range(0, len(run), size):
                    await consume(
                        database, getattr(TOPICS, f"portal_{topic}"), applier, run[start : start + size]
                    )

        for action in actions:
            if isinstance(action, int):
                await flush()
                database.now += timedelta(seconds=action)
                await sweep(database)
            else:
                pending.append(action)
        return database

    batched, alone = await play(batch_size), await play(1)
    assert without_times(batched.tables.outbox) == without_times(alone.tables.outbox)
    assert comparable(batched.tables) == comparable(alone.tables)
    assert batched.tables.parked_submissions == {}
    submitted_ids = {target for kind, target, _, _ in spec if kind == "submit"}
    assert set(first_decisions(alone.tables.outbox)) == submitted_ids
    assert all(count == 1 for count in first_decisions(alone.tables.outbox).values())
