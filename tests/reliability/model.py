"""The model of the fault suite: funding's inputs replayed through the real applier over the
in-memory database (tests/unit/funding/fakes.py), one event at a time, in the order the system
claimed them in its inbox. Batching must not change an outcome, so the model's final state must
equal the system's."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.directory import Directory
from shared.events import REGISTRATION_OUTCOME_EVENTS, EventDecoder
from shared.program import Program
from tests.reliability.history import FundingOutcome, ranked
from tests.unit.funding.fakes import InMemoryFundingService

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
    model = InMemoryFundingService(program, directory, key)
    for event_id in claimed:
        model.deliver([decoder.decode(json.dumps(events[event_id]).encode())])
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
