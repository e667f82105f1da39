"""Adversarial input on the topics the services consume from each other, against the real broker,
PostgreSQL and SMTP: registration.events (funding and notification), funding.decisions
(notification) and operations.commands (every service).

The portal topics have their own suite (test_fuzz.py). Here the input is made to slip past the
validators: line feeds at the end of an address, carriage returns and other control characters
inside texts that become headers and SMTP commands, look-alike (Cyrillic) letters in addresses,
lengths on both sides of every bound, dates and amounts at the edges, messages near the broker's
size limit. Each message ends as a clear dead letter with its reason, or is processed; no partition
stalls (a valid message behind the garbage gets through), no email stays pending, and nothing
reaches an SMTP command line but the addresses of valid events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from hypothesis import strategies as st

from shared.dlq import HEADER_ERROR, HEADER_SERVICE
from shared.topics import Topics, dlq_topic
from tests.integration.notification.smtp_sink import SmtpSink
from tests.reliability.test_fuzz import (
    INVALID_JSON,
    WRONG_TYPES,
    Fuzzed,
    collect,
    encode,
    produce,
    readable,
)
from tests.support.kafka import Record, header, read_topic, values
from tests.support.service import ServiceFactory

pytestmark = pytest.mark.integration

KOMMUNE = "031590016016"  # Göttingen, Stadt: eligible in Niedersachsen
EXAMPLES = 50
NEAR_BROKER_LIMIT = 1_000_000  # bytes of filler: the broker takes up to 1048588 per message
# Texts that become a header, a MIME part or an SMTP command: each must be refused.
SLIPPING_TEXTS = [
    "Seminar\r\nBcc: opfer@evil.example",
    "Seminar\n",
    "Seminar\r",
    "Seminar\x00",
    "Seminar\x1b[31m",
    "Seminar\u2028Bcc: x@evil.example",
    "Seminar\u2029",
    "Seminar\x7f",
]
SLIPPING_ADDRESSES = [
    "kommune@example.org\n",  # `$` of a Python pattern matches before a final line feed
    "kommune@example.org\r\nRCPT TO:<opfer@evil.example>",
    "kommune@exаmple.org",  # Cyrillic а
    "kоmmune@example.org",  # Cyrillic о
    "kommune@example.org>\r\nDATA",
    "kommune@example.org, opfer@evil.example",
    " kommune@example.org",
    "kommune@example.org ",
    "k" * 65 + "@example.org",  # a local part over 64 characters
    "kommune@" + "a" * 64 + ".org",  # a label over 63 characters
]


def envelope(event_type: str, data: Any, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": "2023-02-01T10:00:00+01:00",
        "source": "fuzz",
        "data": data,
    }


def accepted_data(rid: str, contact: str) -> dict[str, Any]:
    return {
        "registration_id": rid,
        "kommune_key": KOMMUNE,
        "seminar_id": "FZ-S1",
        "seminar_title": "Kommunale Digitallotsen",
        "seminar_starts_on": "2023-05-02",
        "seminar_ends_on": "2023-05-04",
        "fee_cents": 100_000,
        "participant": {"given_name": "Anna", "family_name": "Müller", "email": f"{rid.lower()}@x.example"},
        "contact_email": contact,
        "course": "basic",
        "seminar_location": "Hannover",
        "submitted_at": "2023-02-01T10:00:00+01:00",
    }


def mutate(
    draw: st.DrawFn, event: dict[str, Any], data: dict[str, Any], kind: str, texts: list[str]
) -> bytes:
    """One of the invalid kinds every topic shares, applied to a valid event."""
    if kind == "invalid_json":
        return draw(INVALID_JSON)
    if kind == "wrong_type":
        data[draw(st.sampled_from(sorted(data)))] = draw(WRONG_TYPES)
    elif kind == "missing_field":
        del data[draw(st.sampled_from(sorted(data)))]
    elif kind == "slipping_text":
        data[draw(st.sampled_from(texts))] = "X" + draw(st.sampled_from(SLIPPING_TEXTS))
    elif kind == "too_long":
        data[draw(st.sampled_from(texts))] = "Ä" * draw(st.integers(min_value=301, max_value=5_000))
    elif kind == "near_broker_limit":
        data[draw(st.sampled_from(texts))] = "A" * NEAR_BROKER_LIMIT
    elif kind == "wrong_event_type":
        event["event_type"] = draw(
            st.sampled_from(["registration.submitted", "seminar.published", "", "x" * 300])
        )
    elif kind == "bad_envelope":
        field, value = draw(
            st.sampled_from(
                [
                    ("schema_version", 2),
                    ("event_id", "not-a-uuid"),
                    ("occurred_at", "2023-02-01T10:00:00"),
                    ("source", ""),
                ]
            )
        )
        event[field] = value
    return encode(event)


SHARED_INVALID = [
    "invalid_json",
    "wrong_type",
    "missing_field",
    "slipping_text",
    "too_long",
    "near_broker_limit",
    "wrong_event_type",
    "bad_envelope",
]


@st.composite
def registration_outcomes(draw: st.DrawFn) -> Fuzzed:
    rid = f"FZ-{uuid.uuid4().hex[:10]}"
    contact = f"it.{rid.lower()}@kommune.example"
    data = accepted_data(rid, contact)
    event = envelope("registration.accepted", data)
    kind = draw(
        st.sampled_from(
            [
                *("valid", "valid_bounds", "valid_lookalike_name", "valid_rejected"),
                *SHARED_INVALID,
                *("slipping_address", "date_out_of_range", "negative_fee", "bad_kommune_key"),
            ]
        )
    )
    if kind == "valid_bounds":
        data["seminar_title"] = "Ä" * 300
        data["seminar_location"] = "ß" * 300
        data["participant"]["family_name"] = "Ö" * 200
    elif kind == "valid_lookalike_name":
        data["participant"]["given_name"] = "Аnna"  # a Cyrillic А: a name may hold any letter
    elif kind == "valid_rejected":
        event["event_type"] = "registration.rejected"
        event["data"] = {
            "registration_id": rid,
            "kommune_key": "0324'--",
            "contact_email": contact,
            "reason": "invalid_kommune_key",
        }
    elif kind == "slipping_address":
        where = draw(st.sampled_from(["contact_email", "participant"]))
        address = draw(st.sampled_from(SLIPPING_ADDRESSES))
        if where == "contact_email":
            data["contact_email"] = address
        else:
            data["participant"]["email"] = address
    elif kind == "date_out_of_range":
        data["seminar_starts_on"] = draw(
            st.sampled_from(["1999-12-31", "2101-01-01", "2023-02-30", "02.05.2023"])
        )
    elif kind == "negative_fee":
        data["fee_cents"] = draw(st.sampled_from([-1, 10**11 + 1, 1.5, "100000"]))
    elif kind == "bad_kommune_key":
        data["kommune_key"] = draw(st.sampled_from(["0315900160160", "03159001601", "０３１５９", "03159\n"]))
    if not kind.startswith("valid"):
        value = (
            mutate(draw, event, data, kind, ["seminar_title", "seminar_location"])
            if kind in SHARED_INVALID
            else encode(event)
        )
        return Fuzzed(KOMMUNE, value, valid=False)
    return Fuzzed(KOMMUNE, encode(event), valid=True, ident=rid)


def every_slipping_input() -> list[Fuzzed]:
    """Each address and text made to slip past a validator, in each place it could go: drawn at
    random, one of them could be missed."""
    found = []
    addresses, texts = ("contact_email", "participant"), ("seminar_title", "seminar_location")
    # An address-like title is a fine title: addresses go where an address is expected.
    tried = [(bad, addresses) for bad in SLIPPING_ADDRESSES] + [
        (bad, addresses + texts) for bad in SLIPPING_TEXTS
    ]
    for n, (bad, places) in enumerate(tried):
        for place in places:
            data = accepted_data(f"FZ-slip-{n}-{place}", "it@kommune.example")
            if place == "participant":
                data["participant"]["email"] = bad
            else:
                data[place] = bad
            found.append(Fuzzed(KOMMUNE, encode(envelope("registration.accepted", data)), valid=False))
    return found


def contact_of(message: Fuzzed) -> str:
    data: dict[str, Any] = json.loads(message.value)["data"]
    return str(data["contact_email"])


async def dead_letters(bootstrap: str, topic: str, service: str, count: int) -> list[Record]:
    found = await read_topic(
        bootstrap,
        dlq_topic(topic),
        until=lambda records: sum(header(r, HEADER_SERVICE) == service for r in records) >= count,
        timeout=90,
        settle=1,
    )
    return [r for r in found if header(r, HEADER_SERVICE) == service]


def assert_each_dead_lettered_once(dead: list[Record], invalid: list[Fuzzed]) -> None:
    assert sorted(r.value or b"" for r in dead) == sorted(m.value for m in invalid)
    for record in dead:
        reason = header(record, HEADER_ERROR) or ""
        assert readable(reason), reason[:300]


async def test_fuzzed_registration_outcomes_reach_funding_and_notification_only_when_valid(  # noqa: PLR0917
    kafka_bootstrap: str,
    topics: Topics,
    funding_service: ServiceFactory,
    notification_service: ServiceFactory,
    notification_db: asyncpg.Connection,
    sink: SmtpSink,
) -> None:
    messages = collect(registration_outcomes(), EXAMPLES) + every_slipping_input()
    valid = [m for m in messages if m.valid]
    invalid = [m for m in messages if not m.valid]
    assert valid and invalid
    last = Fuzzed(
        KOMMUNE,
        encode(envelope("registration.accepted", accepted_data("FZ-last", "last@kommune.example"))),
        True,
        "FZ-last",
    )
    async with funding_service(), notification_service():
        await produce(kafka_bootstrap, topics.registration_events, [*messages, last])
        accepted = {
            m.ident for m in [*valid, last] if json.loads(m.value)["event_type"] == "registration.accepted"
        }
        decisions = values(
            await read_topic(
                kafka_bootstrap,
                topics.funding_decisions,
                until=lambda found: (
                    accepted <= {json.loads(r.value)["data"]["registration_id"] for r in found if r.value}
                ),
                timeout=120,
                settle=1,
            )
        )
        # One letter per valid outcome and one per funding decision, each to its Kommune.
        await sink.wait_for(len(valid) + 1 + len(decisions), timeout=120)
        dead_for_funding = await dead_letters(
            kafka_bootstrap, topics.registration_events, "funding", len(invalid)
        )
        dead_for_notification = await dead_letters(
            kafka_bootstrap, topics.registration_events, "notification", len(invalid)
        )
        pending = await notification_db.fetchval("SELECT count(*) FROM emails WHERE status <> 'sent'")

    assert sorted(d["data"]["registration_id"] for d in decisions) == sorted(str(rid) for rid in accepted)
    assert_each_dead_lettered_once(dead_for_funding, invalid)
    assert_each_dead_lettered_once(dead_for_notification, invalid)
    assert pending == 0
    # Only the addresses of valid events reached an SMTP command line, and no header was added.
    allowed = {contact_of(m) for m in [*valid, last]}
    received = sink.handler.received
    assert len(received) == len(valid) + 1 + len(decisions)
    assert {address for r in received for address in r.rcpt_tos} <= allowed
    for message in sink.messages():
        assert message.get_all("Bcc") is None
        assert len(message.get_all("To") or []) == 1


@st.composite
def funding_decisions(draw: st.DrawFn, known: list[str]) -> Fuzzed:
    rid = draw(st.sampled_from(known))
    data: dict[str, Any] = {
        "registration_id": rid,
        "kommune_key": KOMMUNE,
        "period_id": "2023",
        "amount_cents": 50_000,
        "promoted": False,
    }
    event = envelope("funding.approved", data)
    kind = draw(
        st.sampled_from(
            ["valid", "valid_declined", *SHARED_INVALID, "bad_reason", "bad_amount", "bad_period"]
        )
    )
    if kind == "valid_declined":
        event["event_type"] = "funding.declined"
        event["data"] = {"registration_id": rid, "kommune_key": KOMMUNE, "reason": "kommune_not_eligible"}
    elif kind == "bad_reason":
        event["event_type"] = "funding.declined"
        event["data"] = {
            "registration_id": rid,
            "kommune_key": KOMMUNE,
            "reason": draw(st.sampled_from(["", "Period_Closed", "period_closed\n"])),
        }
    elif kind == "bad_amount":
        data["amount_cents"] = draw(st.sampled_from([-1, 10**11 + 1, "50000", 0.5]))
    elif kind == "bad_period":
        data["period_id"] = draw(st.sampled_from(["", "2023\n", "2023 ", "x" * 101]))
    if kind.startswith("valid"):
        return Fuzzed(KOMMUNE, encode(event), valid=True, ident=rid)
    value = mutate(draw, event, data, kind, ["period_id"]) if kind in SHARED_INVALID else encode(event)
    return Fuzzed(KOMMUNE, value, valid=False)


async def test_fuzzed_funding_decisions_are_dead_lettered_or_emailed(
    kafka_bootstrap: str,
    topics: Topics,
    notification_service: ServiceFactory,
    notification_db: asyncpg.Connection,
    sink: SmtpSink,
) -> None:
    known = [f"FD-{n}" for n in range(5)]
    registrations = [
        Fuzzed(
            KOMMUNE,
            encode(
                envelope("registration.accepted", accepted_data(rid, f"it.{rid.lower()}@kommune.example"))
            ),
            True,
            rid,
        )
        for rid in known
    ]
    messages = collect(funding_decisions(known), EXAMPLES)
    valid = [m for m in messages if m.valid]
    invalid = [m for m in messages if not m.valid]
    assert valid and invalid
    async with notification_service():
        await produce(kafka_bootstrap, topics.registration_events, registrations)
        await produce(kafka_bootstrap, topics.funding_decisions, messages)
        await sink.wait_for(len(registrations) + len(valid), timeout=120)
        dead = await dead_letters(kafka_bootstrap, topics.funding_decisions, "notification", len(invalid))
        pending = await notification_db.fetchval("SELECT count(*) FROM emails WHERE status <> 'sent'")

    assert_each_dead_lettered_once(dead, invalid)
    assert pending == 0
    assert len(sink.handler.received) == len(registrations) + len(valid)
    allowed = {contact_of(m) for m in registrations}
    assert {address for r in sink.handler.received for address in r.rcpt_tos} <= allowed


@st.composite
def commands(draw: st.DrawFn) -> Fuzzed:
    data: dict[str, Any] = {
        "command_id": str(uuid.uuid4()),
        "requested_by": "fuzz",
        "reason": "Test",
        "period_id": "1999",
    }
    event = envelope("command.close_period", data)
    kind = draw(st.sampled_from(["valid", *SHARED_INVALID, "bad_login", "unknown_command"]))
    if kind == "bad_login":
        data["requested_by"] = draw(st.sampled_from(["", "fuzz\n", "fu zz", "f" * 101, "füzz"]))
    elif kind == "unknown_command":
        event["event_type"] = "command.drop_everything"
    if kind == "valid":
        return Fuzzed("1999", encode(event), valid=True, ident=data["command_id"])
    value = mutate(draw, event, data, kind, ["reason"]) if kind in SHARED_INVALID else encode(event)
    return Fuzzed("1999", value, valid=False)


async def test_fuzzed_commands_are_dead_lettered_and_a_valid_one_behind_them_is_answered(
    kafka_bootstrap: str,
    topics: Topics,
    funding_service: ServiceFactory,
    notification_service: ServiceFactory,
) -> None:
    messages = collect(commands(), EXAMPLES)
    valid_ids = {m.ident for m in messages if m.valid}
    invalid = [m for m in messages if not m.valid]
    assert valid_ids and invalid

    def answered_by(found: list[Record]) -> set[tuple[str, str]]:
        return {(v["data"]["command_id"], v["data"]["service"]) for v in values(found)}

    async with funding_service(), notification_service():
        await produce(kafka_bootstrap, topics.operations_commands, messages)
        results = await read_topic(
            kafka_bootstrap,
            topics.operations_results,
            until=lambda found: {(c, "funding") for c in valid_ids} <= answered_by(found),
            timeout=120,
            settle=1,
        )
        dead_for_funding = await dead_letters(
            kafka_bootstrap, topics.operations_commands, "funding", len(invalid)
        )
        dead_for_notification = await dead_letters(
            kafka_bootstrap, topics.operations_commands, "notification", len(invalid)
        )

    # close_period is funding's: it refuses the unknown period, once per command; the others pass.
    funding_results = [v for v in values(results) if v["data"]["service"] == "funding"]
    assert sorted(v["data"]["command_id"] for v in funding_results) == sorted(str(c) for c in valid_ids)
    assert all(v["data"]["outcome"] != "done" for v in funding_results)
    assert_each_dead_lettered_once(dead_for_funding, invalid)
    assert_each_dead_lettered_once(dead_for_notification, invalid)
