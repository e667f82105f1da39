"""The public event contract: the envelope and every event's data, as pydantic v2 models.

Inbound messages are validated strictly (wrong types are contract violations, not coerced), and
readers ignore fields they don't know, so producers can add fields without breaking consumers.
"""

from __future__ import annotations

import functools
import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from shared.kommune_key import WellShapedKey

SCHEMA_VERSION: Literal[1] = 1

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# Deliberately simple: a local part and a domain without whitespace, control characters or
# header metacharacters. Deliverability is the SMTP server's business, not the contract's.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_EARLIEST_DATE = date(2000, 1, 1)
_LATEST_DATE = date(2100, 12, 31)


def _no_control_chars(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _valid_email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.fullmatch(value):  # fullmatch: `$` also matches before a final "\n"
        raise ValueError("is not a valid email address")
    return value


def _date_in_range(value: date) -> date:
    if not _EARLIEST_DATE <= value <= _LATEST_DATE:
        raise ValueError(f"must lie between {_EARLIEST_DATE} and {_LATEST_DATE}")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(_no_control_chars)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control_chars)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Email = Annotated[str, AfterValidator(_valid_email)]
ContractDate = Annotated[date, AfterValidator(_date_in_range)]
# The shape is checked by the registration service, which answers a bad shape with
# `invalid_kommune_key` instead of a dead letter; here only the size is bounded.
RawKommuneKey = Annotated[
    str, StringConstraints(min_length=1, max_length=32), AfterValidator(_no_control_chars)
]
KommuneKey = WellShapedKey  # ASCII digits only: shared.kommune_key
Cents = Annotated[int, Field(ge=0, le=10**11)]


class ContractModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


# --- portal.seminars -------------------------------------------------------------------------


class SeminarPublished(ContractModel):
    seminar_id: Identifier
    title: Text
    starts_on: ContractDate
    ends_on: ContractDate
    location: Text
    fee_cents: Cents
    capacity: Annotated[int, Field(ge=1, le=10_000)]
    course: Literal["basic", "follow_up"] = "basic"

    @model_validator(mode="after")
    def _ends_after_start(self) -> SeminarPublished:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on lies before starts_on")
        return self


class SeminarCancelled(ContractModel):
    seminar_id: Identifier


# --- portal.registrations --------------------------------------------------------------------


class Participant(ContractModel):
    given_name: Name
    family_name: Name
    email: Email


class RegistrationSubmitted(ContractModel):
    registration_id: Identifier
    kommune_key: RawKommuneKey
    seminar_id: Identifier
    participant: Participant
    contact_email: Email


class RegistrationWithdrawalRequested(ContractModel):
    registration_id: Identifier
    kommune_key: RawKommuneKey


# --- registration.events ---------------------------------------------------------------------

RejectionReason = Literal[
    "unknown_seminar",
    "seminar_cancelled",
    "duplicate_participant",
    "registration_id_conflict",
    "invalid_kommune_key",
]
WithdrawalReason = Literal["withdrawn_by_portal", "seminar_cancelled"]


class RegistrationAccepted(ContractModel):
    registration_id: Identifier
    kommune_key: KommuneKey
    seminar_id: Identifier
    seminar_title: Text
    seminar_starts_on: ContractDate
    seminar_ends_on: ContractDate
    fee_cents: Cents
    participant: Participant
    contact_email: Email
    course: Literal["basic", "follow_up"] = "basic"
    seminar_location: Text | None = None
    submitted_at: AwareDatetime | None = None


class RegistrationWaitlisted(RegistrationAccepted):
    position: Annotated[int, Field(ge=1)]


class RegistrationRejected(ContractModel):
    registration_id: Identifier
    # A rejected key may have any shape: it is reported back as it was given.
    kommune_key: RawKommuneKey
    contact_email: Email
    reason: RejectionReason


class RegistrationWithdrawn(ContractModel):
    registration_id: Identifier
    kommune_key: KommuneKey
    seminar_id: Identifier
    contact_email: Email
    reason: WithdrawalReason


# --- funding.decisions -----------------------------------------------------------------------

FundingWaitlistReason = Literal["quota_exhausted", "budget_exhausted"]
FundingDeclineReason = Literal[
    "unknown_kommune",
    "kommune_not_eligible",
    "outside_funding_period",
    "period_closed",
    "prerequisite_missing",
    "registered_after_start",
    "course_not_funded",
]


class FundingApproved(ContractModel):
    registration_id: Identifier
    kommune_key: KommuneKey
    period_id: Identifier
    amount_cents: Cents
    promoted: bool


class FundingWaitlisted(ContractModel):
    registration_id: Identifier
    kommune_key: KommuneKey
    period_id: Identifier
    reason: FundingWaitlistReason
    position: Annotated[int, Field(ge=1)]


class FundingDeclined(ContractModel):
    registration_id: Identifier
    kommune_key: KommuneKey
    reason: FundingDeclineReason


class FundingReleased(ContractModel):
    registration_id: Identifier
    kommune_key: KommuneKey
    period_id: Identifier
    amount_cents: Cents


# --- notification.events ---------------------------------------------------------------------


class NotificationSent(ContractModel):
    notification_id: Identifier
    registration_id: Identifier
    template: Identifier
    to: Email


class NotificationFailed(NotificationSent):
    error: Annotated[str, StringConstraints(max_length=2000)]


# --- the envelope ----------------------------------------------------------------------------

DataT = TypeVar("DataT", bound=ContractModel)


class Envelope(ContractModel, Generic[DataT]):
    event_id: uuid.UUID
    event_type: str
    schema_version: Literal[1]
    occurred_at: AwareDatetime
    source: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    correlation_id: uuid.UUID | None = None
    data: DataT

    @property
    def effective_correlation_id(self) -> uuid.UUID:
        """What an output of this event carries: its correlation_id, or its own event_id."""
        return self.correlation_id or self.event_id


def _envelope(event_type: str, data_model: type[DataT]) -> type[Envelope[DataT]]:
    name = "".join(part.capitalize() for part in re.split(r"[._]", event_type)) + "Event"
    model: type[Envelope[DataT]] = type(
        name,
        (Envelope[data_model],),  # type: ignore[valid-type]
        {"__annotations__": {"event_type": Literal[event_type]}, "__module__": __name__},
    )
    return model


# Event type -> data model, per topic. The topic decides which event types are legal on it.
PORTAL_SEMINAR_EVENTS: dict[str, type[ContractModel]] = {
    "seminar.published": SeminarPublished,
    "seminar.cancelled": SeminarCancelled,
}
PORTAL_REGISTRATION_EVENTS: dict[str, type[ContractModel]] = {
    "registration.submitted": RegistrationSubmitted,
    "registration.withdrawn": RegistrationWithdrawalRequested,
}
REGISTRATION_OUTCOME_EVENTS: dict[str, type[ContractModel]] = {
    "registration.accepted": RegistrationAccepted,
    "registration.waitlisted": RegistrationWaitlisted,
    "registration.rejected": RegistrationRejected,
    "registration.withdrawn": RegistrationWithdrawn,
}
FUNDING_DECISION_EVENTS: dict[str, type[ContractModel]] = {
    "funding.approved": FundingApproved,
    "funding.waitlisted": FundingWaitlisted,
    "funding.declined": FundingDeclined,
    "funding.released": FundingReleased,
}
NOTIFICATION_EVENTS: dict[str, type[ContractModel]] = {
    "notification.sent": NotificationSent,
    "notification.failed": NotificationFailed,
}


class ContractError(ValueError):
    """A message that cannot be parsed or breaks the contract. Its text is the dead-letter reason."""


class _PeekEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_type: str


class EventDecoder:
    """Decodes raw Kafka values into typed envelopes for the event types legal on one topic."""

    def __init__(self, topic: str, event_models: dict[str, type[ContractModel]]) -> None:
        self.topic = topic
        self._adapters: dict[str, TypeAdapter[Envelope[Any]]] = {
            event_type: TypeAdapter(_envelope(event_type, model))
            for event_type, model in event_models.items()
        }

    def decode(self, raw: bytes | None) -> Envelope[Any]:
        if raw is None:
            raise ContractError("message has no value")
        try:
            event_type = _PeekEnvelope.model_validate_json(raw).event_type
        except ValidationError as exc:
            raise ContractError(f"not a valid envelope: {_describe(exc)}") from exc
        adapter = self._adapters.get(event_type)
        if adapter is None:
            raise ContractError(f"event_type {_shown_event_type(event_type)} is not allowed on {self.topic}")
        try:
            return adapter.validate_json(raw, strict=True)
        except ValidationError as exc:
            raise ContractError(f"{event_type} breaks the contract: {_describe(exc)}") from exc


# A dead-letter reason is kept and logged: it names places and what is wrong, never a value
# (docs/personal-data.md). A location part that is not a field name (a mapping's key) is input,
# and so is the tag of a union; an event type is shown only in the contract's own form.
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_EVENT_TYPE_FORM = re.compile(r"[a-z_]{1,32}\.[a-z_]{1,32}")
_MESSAGES_QUOTING_INPUT = frozenset({"union_tag_invalid"})


def _shown_event_type(event_type: str) -> str:
    return repr(event_type) if _EVENT_TYPE_FORM.fullmatch(event_type) else "(not of the form kind.name)"


def _location_part(part: object) -> str:
    return str(part) if isinstance(part, int) or _FIELD_NAME.fullmatch(str(part)) else "?"


def _describe(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        location = ".".join(_location_part(item) for item in error["loc"]) or "message"
        message = error["type"] if error["type"] in _MESSAGES_QUOTING_INPUT else error["msg"]
        parts.append(f"{location}: {message}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


@functools.cache
def _envelope_model(data_type: type[Any]) -> type[Envelope[Any]]:
    """`Envelope[data_type]`, held for good. Pydantic keeps its parametrised models only weakly,
    and one that no decoder holds (an event a service produces but does not consume) is freed by
    the next full garbage collection and built again, schema and all, by the next envelope."""
    return Envelope[data_type]  # type: ignore[valid-type]


def new_envelope(
    event_type: str,
    data: DataT,
    *,
    source: str,
    correlation_id: uuid.UUID | None,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope[DataT]:
    model: type[Envelope[DataT]] = _envelope_model(type(data))
    return model(
        event_id=event_id or uuid.uuid4(),
        event_type=event_type,
        schema_version=SCHEMA_VERSION,
        occurred_at=occurred_at or datetime.now(UTC),
        source=source,
        correlation_id=correlation_id,
        data=data,
    )


def derived_event_id(cause_event_id: uuid.UUID, purpose: str) -> uuid.UUID:
    """A deterministic id for an output, so a reprocessed input yields the same output id."""
    return uuid.uuid5(cause_event_id, purpose)


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(definitions[ref.removeprefix("#/$defs/")], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def topic_json_schema(topic_title: str, event_models: dict[str, type[ContractModel]]) -> dict[str, Any]:
    """One self-contained JSON schema for every envelope legal on a topic (for the AsyncAPI document)."""
    variants = []
    for event_type, model in event_models.items():
        schema = TypeAdapter(_envelope(event_type, model)).json_schema()
        variants.append(_inline_refs(schema, schema.get("$defs", {})))
    return {"title": topic_title, "oneOf": variants}
