"""Bad input on the portal topics, against the real broker and the registration service.

Hypothesis generates garbage (invalid JSON, wrong types, missing and extra fields, huge strings,
~1 MB payloads, control characters and header injection, SQL metacharacters, dates out of range,
negative fees, zero capacity) mixed with valid events. Every invalid message must end in the
topic's DLQ with a readable reason, every valid one must be processed, and the service must keep
going. A poison message (a handler that raises) is retried a bounded number of times and then
dead-lettered alone; an oversized message never gets half-processed.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.dlq import HEADER_ERROR, HEADER_SERVICE, HEADER_SOURCE_OFFSET, HEADER_SOURCE_TOPIC
from shared.kafka import client_options
from shared.topics import dlq_topic
from tests.integration.registration.conftest import ServiceFactory
from tests.integration.registration.portal import Portal, seminar, submission, wait_until
from tests.support.kafka import Record, header, read_topic

pytestmark = pytest.mark.integration

T = TypeVar("T")
KOMMUNE = "03241"  # Region Hannover: a valid 5-digit key
MAX_EXAMPLES = 60
ONE_MB_STRING = 1_000_000  # a payload of about 1 MB that the broker still takes (limit 1048588)

# Strings that must be rejected wherever a name or an address is expected.
HEADER_INJECTION = [
    "Anna\r\nBcc: victim@evil.example",
    "x\nSubject: gewonnen",
    "Jörg\x00",
    "tab\there",
    "line\u2028separator",
    "del\x7f",
]
SQL_METACHARACTERS = [
    "Robert'); DROP TABLE registrations;--",
    "O'Brien",
    '"; SELECT pg_sleep(10); --',
    "%_\\' OR '1'='1",
    "$1 $$ ;; /* */",
]


@dataclass(frozen=True)
class Fuzzed:
    """One message to publish: its key and raw value, and whether the contract accepts it."""

    key: str
    value: bytes
    valid: bool
    ident: str | None = None  # registration_id or seminar_id of a valid message


def collect(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """Draws `count` examples from a strategy reproducibly (derandomized, no example database)."""
    drawn: list[T] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(example: T) -> None:
        drawn.append(example)

    draw()
    return drawn


def envelope(event_type: str, data: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": "2023-02-01T10:00:00+01:00",
        "source": "fuzz-portal",
        "data": data,
    }


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


WRONG_TYPES: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
EXTRA_FIELDS = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12).map(lambda s: "x_" + s),
    st.one_of(st.text(max_size=30), st.integers(), st.none()),
    max_size=3,
)


def _not_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


INVALID_JSON = st.one_of(
    st.binary(min_size=1, max_size=200).filter(_not_json),
    st.text(max_size=100).map(lambda s: ("{" + s).encode()),
    st.just(b'{"event_id": '),
    st.just(b"\xff\xfe\xfd"),
)


# --- portal.registrations ----------------------------------------------------------------------


@st.composite
def registrations(draw: st.DrawFn) -> Fuzzed:
    rid = f"FZ-{uuid.uuid4().hex[:12]}"
    data: dict[str, Any] = {
        "registration_id": rid,
        "kommune_key": KOMMUNE,
        "seminar_id": "FS-known",
        "participant": {"given_name": "Anna", "family_name": "Müller", "email": f"{rid.lower()}@x.example"},
        "contact_email": "it@kommune.example",
    }
    event = envelope("registration.submitted", data)
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid_extra",
                "valid_sql",
                "valid_bad_key_shape",
                "invalid_json",
                "wrong_type",
                "missing_field",
                "huge_string",
                "header_injection",
                "bad_email",
                "bad_identifier",
                "wrong_event_type",
                "bad_envelope",
            ]
        )
    )
    if kind == "valid_extra":
        data.update(draw(EXTRA_FIELDS))
        event.update(draw(EXTRA_FIELDS))
    elif kind == "valid_sql":
        field = draw(st.sampled_from(["given_name", "family_name"]))
        data["participant"][field] = draw(st.sampled_from(SQL_METACHARACTERS))
    elif kind == "valid_bad_key_shape":
        # Right size, wrong shape: an outcome (rejected, invalid_kommune_key), not a dead letter.
        data["kommune_key"] = draw(st.sampled_from(["0324", "abcde", "03241'--", "1234567"]))
    elif kind == "invalid_json":
        return Fuzzed(KOMMUNE, draw(INVALID_JSON), valid=False)
    elif kind == "wrong_type":
        field = draw(
            st.sampled_from(["registration_id", "kommune_key", "seminar_id", "participant", "contact_email"])
        )
        replacement = draw(WRONG_TYPES)
        data[field] = replacement
    elif kind == "missing_field":
        where = draw(st.sampled_from(["data", "envelope", "participant"]))
        if where == "data":
            del data[draw(st.sampled_from(sorted(data)))]
        elif where == "participant":
            del data["participant"][draw(st.sampled_from(sorted(data["participant"])))]
        else:
            del event[
                draw(
                    st.sampled_from(
                        ["event_id", "event_type", "schema_version", "occurred_at", "source", "data"]
                    )
                )
            ]
    elif kind == "huge_string":
        field = draw(st.sampled_from(["given_name", "family_name"]))
        data["participant"][field] = "A" * draw(st.integers(min_value=201, max_value=20_000))
    elif kind == "header_injection":
        field = draw(st.sampled_from(["given_name", "family_name", "email", "contact_email"]))
        bad = draw(st.sampled_from(HEADER_INJECTION))
        if field == "contact_email":
            data["contact_email"] = "it@kommune.example" + bad
        elif field == "email":
            data["participant"]["email"] = f"{rid.lower()}@x.example{bad}"
        else:
            data["participant"][field] = bad
    elif kind == "bad_email":
        data["contact_email"] = draw(
            st.sampled_from(["kein-at", "a@b", "@x.example", "a b@x.example", "a@x.example,b@y.example"])
        )
    elif kind == "bad_identifier":
        data["registration_id"] = draw(
            st.sampled_from(["", "'; DROP TABLE x; --", "-leading", "A" * 101, "mit leerzeichen"])
        )
    elif kind == "wrong_event_type":
        event["event_type"] = draw(st.sampled_from(["seminar.published", "registration.accepted", "", "x"]))
    elif kind == "bad_envelope":
        field, value = draw(
            st.sampled_from(
                [
                    ("schema_version", 2),
                    ("schema_version", "1"),
                    ("event_id", "not-a-uuid"),
                    ("occurred_at", "2023-02-01T10:00:00"),  # no offset
                    ("occurred_at", "gestern"),
                    ("source", ""),
                    ("correlation_id", 42),
                ]
            )
        )
        event[field] = value
    valid = kind.startswith("valid")
    return Fuzzed(KOMMUNE, encode(event), valid=valid, ident=rid if valid else None)


# --- portal.seminars ---------------------------------------------------------------------------


@st.composite
def seminars(draw: st.DrawFn) -> Fuzzed:
    sid = f"FS-{uuid.uuid4().hex[:12]}"
    data: dict[str, Any] = {
        "seminar_id": sid,
        "title": "Digitallotsen",
        "starts_on": "2023-03-06",
        "ends_on": "2023-03-08",
        "location": "Hannover",
        "fee_cents": 100_000,
        "capacity": 20,
    }
    event = envelope("seminar.published", data)
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid_extra",
                "valid_sql_title",
                "invalid_json",
                "wrong_type",
                "missing_field",
                "negative_fee",
                "zero_capacity",
                "date_out_of_range",
                "ends_before_start",
                "impossible_date",
                "control_chars",
                "huge_title",
            ]
        )
    )
    if kind == "valid_extra":
        data.update(draw(EXTRA_FIELDS))
    elif kind == "valid_sql_title":
        data["title"] = draw(st.sampled_from(SQL_METACHARACTERS))
    elif kind == "invalid_json":
        return Fuzzed(sid, draw(INVALID_JSON), valid=False)
    elif kind == "wrong_type":
        field = draw(st.sampled_from(sorted(data)))
        data[field] = draw(WRONG_TYPES)
        if field == "fee_cents" and isinstance(data[field], int) and not isinstance(data[field], bool):
            data[field] = str(data[field])  # an int would be valid when in range
        if field == "capacity" and isinstance(data[field], int) and not isinstance(data[field], bool):
            data[field] = str(data[field])
    elif kind == "missing_field":
        del data[draw(st.sampled_from(sorted(data)))]
    elif kind == "negative_fee":
        data["fee_cents"] = draw(st.integers(max_value=-1))
    elif kind == "zero_capacity":
        data["capacity"] = draw(st.integers(max_value=0))
    elif kind == "date_out_of_range":
        field = draw(st.sampled_from(["starts_on", "ends_on"]))
        data[field] = draw(st.sampled_from(["1999-12-31", "2101-01-01", "0001-01-01", "9999-12-31"]))
        if field == "starts_on":
            data["ends_on"] = "2101-01-05"
    elif kind == "ends_before_start":
        data["ends_on"] = "2023-03-01"
    elif kind == "impossible_date":
        data["starts_on"] = draw(st.sampled_from(["2023-02-30", "2023-13-01", "06.03.2023", "2023-3-6"]))
    elif kind == "control_chars":
        field = draw(st.sampled_from(["title", "location"]))
        data[field] = draw(st.sampled_from(HEADER_INJECTION))
    elif kind == "huge_title":
        data["title"] = "T" * draw(st.integers(min_value=301, max_value=20_000))
    valid = kind.startswith("valid")
    return Fuzzed(sid, encode(event), valid=valid, ident=sid if valid else None)


def one_megabyte(make: Callable[[str], Fuzzed]) -> Fuzzed:
    return make("Ä" * (ONE_MB_STRING // 2))  # 2 bytes each in UTF-8: about 1 MB


async def produce(bootstrap: str, topic: str, messages: list[Fuzzed]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=1_048_576,
        **client_options(),
    )
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(topic, message.value, key=message.key.encode())
    finally:
        await producer.stop()


async def dead_letters(portal: Portal, topic: str, count: int) -> list[Record]:
    """The topic's DLQ once it holds `count` records, and a second more to catch extra ones."""
    return await read_topic(
        portal.bootstrap, dlq_topic(topic), until=lambda found: len(found) >= count, timeout=60, settle=1
    )


def readable(reason: str) -> bool:
    return 0 < len(reason) <= 2_000 and reason.isprintable()


def assert_dead_letters(dead: list[Record], invalid: list[Fuzzed], source_topic: str) -> None:
    assert Counter(record.value for record in dead) == Counter(message.value for message in invalid)
    for record in dead:
        reason = header(record, HEADER_ERROR) or ""
        assert readable(reason), reason[:300]
        assert header(record, HEADER_SERVICE) == "registration"
        assert header(record, HEADER_SOURCE_TOPIC) == source_topic
        assert (header(record, HEADER_SOURCE_OFFSET) or "").isdigit()
    by_value = {message.value: message for message in invalid}
    keys = {record.value: record.key for record in dead}
    assert all(keys[value] == by_value[value].key.encode() for value in keys)


async def test_fuzzed_seminars_and_registrations_are_dead_lettered_or_processed(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    seminar_messages = collect(seminars(), MAX_EXAMPLES)
    huge_seminar = one_megabyte(
        lambda filler: Fuzzed(
            "FS-huge",
            encode(envelope("seminar.published", {"seminar_id": "FS-huge", "title": filler})),
            False,
        )
    )
    seminar_messages.insert(len(seminar_messages) // 2, huge_seminar)
    registration_messages = collect(registrations(), MAX_EXAMPLES)

    def huge_registration(filler: str) -> Fuzzed:
        data = submission("FZ-huge", KOMMUNE, "FS-known")[1]
        data["data"]["participant"]["family_name"] = filler
        return Fuzzed(KOMMUNE, encode(data), valid=False)

    registration_messages.insert(len(registration_messages) // 2, one_megabyte(huge_registration))
    assert any(m.valid for m in seminar_messages) and any(not m.valid for m in seminar_messages)
    assert any(m.valid for m in registration_messages) and any(not m.valid for m in registration_messages)

    topics = portal.topics
    async with registration_service():
        await portal.seminars(seminar("FS-known", 1000))
        await produce(portal.bootstrap, topics.portal_seminars, seminar_messages)
        await produce(portal.bootstrap, topics.portal_registrations, registration_messages)
        # A last valid submission behind all the garbage: the partition was not blocked.
        await portal.registrations(submission("FZ-last", KOMMUNE, "FS-known"))

        valid_registrations = {m.ident for m in registration_messages if m.valid} | {"FZ-last"}
        outcomes = await read_topic(
            portal.bootstrap,
            topics.registration_events,
            until=lambda found: (
                valid_registrations <= {json.loads(r.value)["data"]["registration_id"] for r in found}
            ),
            timeout=120,
        )
        invalid_seminars = [m for m in seminar_messages if not m.valid]
        invalid_registrations = [m for m in registration_messages if not m.valid]
        dead_seminars = await dead_letters(portal, topics.portal_seminars, len(invalid_seminars))
        dead_registrations = await dead_letters(
            portal, topics.portal_registrations, len(invalid_registrations)
        )
        valid_seminars = {m.ident for m in seminar_messages if m.valid}

        async def seminars_stored() -> bool:
            rows = await portal.db.fetch(
                "SELECT seminar_id FROM seminars WHERE seminar_id = ANY($1)", list(valid_seminars)
            )
            return {row["seminar_id"] for row in rows} == valid_seminars

        await wait_until(seminars_stored)

    assert_dead_letters(dead_seminars, invalid_seminars, topics.portal_seminars)
    assert_dead_letters(dead_registrations, invalid_registrations, topics.portal_registrations)
    # One outcome per valid submission, none for an invalid one.
    decided = Counter(json.loads(r.value)["data"]["registration_id"] for r in outcomes)
    assert set(decided) == valid_registrations
    assert all(count == 1 for count in decided.values()), decided
    # Only valid messages left state behind, stored exactly as sent (SQL metacharacters included).
    stored = await portal.db.fetch("SELECT registration_id, given_name, family_name FROM registrations")
    assert {row["registration_id"] for row in stored} == valid_registrations
    sent_names = {}
    for message in registration_messages:
        if message.valid:
            data = json.loads(message.value)["data"]
            sent_names[data["registration_id"]] = (
                data["participant"]["given_name"],
                data["participant"]["family_name"],
            )
    for row in stored:
        if row["registration_id"] in sent_names:
            assert (row["given_name"], row["family_name"]) == sent_names[row["registration_id"]]
    seminar_ids = {row["seminar_id"] for row in await portal.db.fetch("SELECT seminar_id FROM seminars")}
    assert seminar_ids == valid_seminars | {"FS-known"}


POISON_TRIGGER = """
CREATE SEQUENCE poison_attempts;
CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('poison_attempts');  -- not transactional: counts every attempt
    RAISE EXCEPTION 'poisoned registration %', NEW.registration_id;
END $$;
CREATE TRIGGER poison BEFORE INSERT ON registrations
    FOR EACH ROW WHEN (NEW.registration_id = 'POISON') EXECUTE FUNCTION poison();
"""


async def test_a_poison_message_is_retried_a_bounded_number_of_times_then_dead_lettered_alone(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    max_attempts = 3
    async with registration_service(handler_max_attempts=max_attempts):
        await portal.seminars(seminar("S-1", 100))
        # A real, unexpected failure in the handler's own database, for one valid message only.
        await portal.db.execute(POISON_TRIGGER)
        poison = submission("POISON", KOMMUNE, "S-1")
        # Same key, so the same partition: the ones behind it must still go through.
        await portal.registrations(
            submission("P-before", KOMMUNE, "S-1"),
            poison,
            submission("P-after-1", KOMMUNE, "S-1"),
            submission("P-after-2", KOMMUNE, "S-1"),
        )
        outcomes = await portal.outcomes(3, settle=1)
        dead = await dead_letters(portal, portal.topics.portal_registrations, 1)
        await portal.registrations(submission("P-later", KOMMUNE, "S-1"))
        later = await portal.outcomes(4)

    decided = sorted(json.loads(r.value)["data"]["registration_id"] for r in outcomes)
    assert decided == ["P-after-1", "P-after-2", "P-before"]
    assert "P-later" in {json.loads(r.value)["data"]["registration_id"] for r in later}
    assert [record.value for record in dead] == [json.dumps(poison[1]).encode()]
    reason = header(dead[0], HEADER_ERROR) or ""
    assert f"after {max_attempts} attempts" in reason and "poisoned registration" in reason, reason
    # Bounded: the attempts alone, plus at most the batch attempts that preceded them.
    attempts = await portal.db.fetchval("SELECT last_value FROM poison_attempts")
    assert max_attempts <= attempts <= max_attempts + 2, attempts
    assert (
        await portal.db.fetchval("SELECT count(*) FROM registrations WHERE registration_id = 'POISON'") == 0
    )


async def test_an_oversized_message_is_rejected_by_the_broker_and_never_half_processed(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    oversized = submission("OVERSIZED", KOMMUNE, "S-1")[1]
    oversized["data"]["participant"]["family_name"] = "X" * 1_200_000  # above message.max.bytes
    raw = encode(oversized)
    async with registration_service():
        await portal.seminars(seminar("S-1", 100))
        producer = AIOKafkaProducer(
            bootstrap_servers=portal.bootstrap,
            acks="all",
            enable_idempotence=True,
            max_request_size=4_000_000,
            **client_options(),
        )
        await producer.start()
        rejected = False
        try:
            await producer.send_and_wait(portal.topics.portal_registrations, raw, key=KOMMUNE.encode())
        except KafkaError:
            rejected = True
        finally:
            await producer.stop()
        await portal.registrations(submission("AFTER-OVERSIZED", KOMMUNE, "S-1"))
        outcomes = await portal.outcomes(1, settle=1)
        if not rejected:  # taken by the broker: then it must be dead-lettered
            dead = await dead_letters(portal, portal.topics.portal_registrations, 1)
            assert [record.value for record in dead] == [raw]

    assert [json.loads(r.value)["data"]["registration_id"] for r in outcomes] == ["AFTER-OVERSIZED"]
    assert (
        await portal.db.fetchval("SELECT count(*) FROM registrations WHERE registration_id = 'OVERSIZED'")
        == 0
    )
    assert rejected, "the broker took a message above its 1 MB limit"
