"""The model of the fault suite: registration's and funding's inputs replayed through their real
appliers over the in-memory databases (tests/unit/<service>/fakes.py), one event at a time, in
the order each service committed them. Batching must not change an outcome, so the model's final
state must equal the system's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.registration.handlers import PortalRegistrationsApplier, PortalSeminarsApplier
from services.registration.unit_of_work import RegistrationUnitOfWork
from shared.directory import Directory
from shared.events import (
    PORTAL_REGISTRATION_EVENTS,
    PORTAL_SEMINAR_EVENTS,
    REGISTRATION_OUTCOME_EVENTS,
    EventDecoder,
)
from shared.program import Program
from shared.topics import Topics
from shared.unit_of_work import BatchApplier
from tests.reliability.history import FundingOutcome, RegistrationOutcome, ranked, ranked_registrations
from tests.unit.funding.fakes import InMemoryFundingService, check_books, completed
from tests.unit.registration.fakes import InMemoryDatabase, consume

FUNDING_STATE = """
SELECT registration_id, kommune_key, status, period_id, reason, amount_cents, waitlist_seq FROM fundings
"""
# Funding's inputs from registration.events in the order it applied them: by the commit of the
# transaction that claimed them (conflicting batches, two instances' included, serialise on the
# locks of their periods and Kommunen, so commit order is their order), then as claimed within it.
FUNDING_INPUTS = """
SELECT event_id::text FROM inbox WHERE topic LIKE '%registration.events'
ORDER BY pg_xact_commit_timestamp(xmin), claim_order
"""


def funding_state(rows: Sequence[Mapping[str, Any]]) -> dict[str, FundingOutcome]:
    """The system's final state from its `fundings` rows (FUNDING_STATE)."""
    return ranked(
        [
            (
                row["registration_id"],
                FundingOutcome(
                    row["status"], row["period_id"], row["reason"], row["amount_cents"], row["kommune_key"]
                ),
                row["waitlist_seq"],
            )
            for row in rows
        ]
    )


def replay_funding(
    claimed: Sequence[str],
    events: Mapping[str, Mapping[str, Any]],
    program: Program,
    directory: Directory,
    participant_key_file: str | None,
) -> dict[str, FundingOutcome]:
    """The final state of the pure domain after the claimed events, one by one."""
    key = Path(participant_key_file).read_text("utf-8").strip().encode() if participant_key_file else None
    decoder = EventDecoder("registration.events", REGISTRATION_OUTCOME_EVENTS)
    model = InMemoryFundingService(program, directory, key, isolated=False)
    for event_id in claimed:
        model.deliver([decoder.decode(json.dumps(events[event_id]).encode())])
    check_books(model.tables)
    return ranked(
        [
            (
                funding.registration_id,
                FundingOutcome(
                    funding.status.value,
                    funding.period_id,
                    funding.reason,
                    funding.amount_cents,
                    funding.kommune_key,
                ),
                funding.seq,
            )
            for funding in model.tables.fundings.values()
        ]
    )


REGISTRATION_STATE = """
SELECT registration_id, seminar_id, status, coalesce(rejection_reason, withdrawal_reason) AS reason,
       waitlist_seq
FROM registrations
"""
SEMINAR_SEATS = "SELECT seminar_id, accepted_count FROM seminars"
# Registration's inputs from both portal topics, in the order it applied them (as FUNDING_INPUTS).
REGISTRATION_INPUTS = """
SELECT event_id::text, topic FROM inbox WHERE topic LIKE '%portal.%' AND topic NOT LIKE '%.dlq'
ORDER BY pg_xact_commit_timestamp(xmin), claim_order
"""


def registration_state(rows: Sequence[Mapping[str, Any]]) -> dict[str, RegistrationOutcome]:
    """The system's final state from its `registrations` rows (REGISTRATION_STATE)."""
    return ranked_registrations(
        [
            (
                row["registration_id"],
                RegistrationOutcome(row["status"], row["seminar_id"], row["reason"]),
                row["waitlist_seq"],
            )
            for row in rows
        ]
    )


@dataclass(frozen=True)
class RegistrationModel:
    outcomes: dict[str, RegistrationOutcome]
    seats: dict[str, int]  # accepted registrations per seminar


def replay_registration(
    claimed: Sequence[tuple[str, str]],
    events: Mapping[str, Mapping[str, Any]],
    directory: Directory,
    topics: Topics,
) -> RegistrationModel:
    """Registration's final state after the claimed (event id, topic) inputs, one by one, through
    its real appliers over the in-memory database. Without a grace for unknown seminars: the fault
    suite publishes every seminar before any registration."""
    appliers: dict[str, BatchApplier[RegistrationUnitOfWork]] = {
        topics.portal_seminars: PortalSeminarsApplier(topics),
        topics.portal_registrations: PortalRegistrationsApplier(topics, directory),
    }
    decoders = {
        topics.portal_seminars: EventDecoder(topics.portal_seminars, PORTAL_SEMINAR_EVENTS),
        topics.portal_registrations: EventDecoder(topics.portal_registrations, PORTAL_REGISTRATION_EVENTS),
    }
    database = InMemoryDatabase(isolated=False)
    for event_id, topic in claimed:
        event = decoders[topic].decode(json.dumps(events[event_id]).encode())
        completed(consume(database, topic, appliers[topic], [event]))
    tables = database.tables
    tables.check_constraints()
    outcomes = ranked_registrations(
        [
            (
                row.registration_id,
                RegistrationOutcome(
                    row.status.value, row.content.seminar_id, row.rejection_reason or row.withdrawal_reason
                ),
                row.waitlist_seq,
            )
            for row in tables.registrations.values()
        ]
    )
    return RegistrationModel(outcomes, {sid: row.accepted_count for sid, row in tables.seminars.items()})
