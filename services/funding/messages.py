"""What funding effects publish on funding.decisions, and the log line each writes.

Logs carry registration ids and Kommune keys, never names or email addresses.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.funding.domain import (
    Approve,
    Decline,
    Effect,
    LeaveWaitlist,
    Release,
    RememberWithdrawal,
    Waitlist,
    WithdrawnBeforeAcceptance,
)
from shared.events import (
    FundingApproved,
    FundingDeclined,
    FundingReleased,
    FundingWaitlisted,
    derived_event_id,
    new_envelope,
)
from shared.logging import get_logger
from shared.outbox import OutboxMessage

log = get_logger(__name__)

SOURCE = "funding"

DecisionData = FundingApproved | FundingWaitlisted | FundingDeclined | FundingReleased

# Each published effect carries the fields of its event's data under the same names.
_EVENTS: dict[type[Effect], tuple[str, type[DecisionData]]] = {
    Approve: ("funding.approved", FundingApproved),
    Waitlist: ("funding.waitlisted", FundingWaitlisted),
    Decline: ("funding.declined", FundingDeclined),
    Release: ("funding.released", FundingReleased),
}


def decision_messages(
    topic: str, cause_id: uuid.UUID, correlation_id: uuid.UUID, effects: Sequence[Effect]
) -> list[OutboxMessage]:
    """The funding.decisions messages for effects, keyed by kommune_key.

    Event ids derive from the cause and name the event type and registration, so that a
    reprocessed cause yields the same ids (the outbox then keeps one row per id).
    """
    messages = []
    for effect in effects:
        published = _event(effect)
        if published is None:
            continue
        event_type, data = published
        envelope = new_envelope(
            event_type,
            data,
            source=SOURCE,
            correlation_id=correlation_id,
            event_id=derived_event_id(cause_id, f"{event_type}:{effect.registration_id}"),
        )
        messages.append(OutboxMessage(topic, data.kommune_key, envelope))
    return messages


def _event(effect: Effect) -> tuple[str, DecisionData] | None:
    """The event an effect publishes; None for leaving a waitlist, and for a withdrawal that came
    before its acceptance and that acceptance (the registration is withdrawn: nothing to tell)."""
    if isinstance(effect, LeaveWaitlist | RememberWithdrawal | WithdrawnBeforeAcceptance):
        return None
    event_type, model = _EVENTS[type(effect)]
    return event_type, model(**{name: getattr(effect, name) for name in model.model_fields})


def log_effects(effects: Sequence[Effect]) -> None:
    for effect in effects:
        log.info(
            "funding " + type(effect).__name__.lower(),
            registration_id=effect.registration_id,
            **{
                name: getattr(effect, name)
                for name in ("kommune_key", "period_id", "reason", "amount_cents", "position", "promoted")
                if getattr(effect, name, None) is not None
            },
        )
