"""A history under the benchmark's bursts (`python -m bench --history N`; issue 21, "flat with
history"): N earlier registrations with their decisions and letters, written with COPY into the
three databases before the warm-up, so that every table and index the bursts touch is that much
bigger.

What it writes is what the services would hold after such a history, as far as the bursts can
tell: registration's seminars (full, of this year, ended) and registrations (accepted, withdrawn,
rejected) with their inbox rows; funding's records (released, withdrawn from a waitlist,
declined), none of which holds a place or money, so the bursts are decided as on empty
databases, with the periods' books kept; notification's registrations and two delivered letters
each, their facts dropped as the letter retention leaves them. The synthetic people are
`Vorname H<n>` at `h<n>@history.example`: no real name or address.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

PER_SEMINAR = 20
STARTS_ON = date(2026, 3, 2)
SENT_AT = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)  # more than LETTER_RETENTION_DAYS ago
FEE_CENTS = 100_000
AMOUNT_CENTS = FEE_CENTS // 2
PERIOD = "2021-2022"  # unlimited: the released amounts leave every limit as it was
SEMINAR_COLUMNS = [
    "seminar_id",
    "title",
    "starts_on",
    "ends_on",
    "location",
    "fee_cents",
    "capacity",
    "accepted_count",
]
# What a funding record needs, as `funding_rows` (and bench/waitlist.py) write it.
FUNDING_COLUMNS = [
    "registration_id",
    "kommune_key",
    "seminar_id",
    "seminar_starts_on",
    "fee_cents",
    "status",
    "period_id",
    "reason",
    "amount_cents",
]
# The released amounts were approved first: the period's books say both.
BOOK_RELEASED = """
UPDATE periods
SET approved_cents = approved_cents + h.cents, released_cents = released_cents + h.cents
FROM (
    SELECT coalesce(sum(amount_cents), 0) AS cents FROM fundings
    WHERE status = 'released' AND registration_id LIKE 'H-%'
) AS h
WHERE period_id = $1
"""
TOPIC_IN = {"registration": "portal.registrations", "funding": "registration.events"}


def _status(number: int) -> str:
    """Of twenty: 14 accepted, 3 withdrawn, 3 rejected."""
    slot = number % PER_SEMINAR
    return "accepted" if slot < 14 else "withdrawn" if slot < 17 else "rejected"


def _seminar(number: int) -> str:
    return f"S-H-{number // PER_SEMINAR}"


def _starts_on(seminar_number: int) -> date:
    return STARTS_ON + timedelta(days=seminar_number % 90)


def seminar_rows(count: int) -> Iterator[tuple[Any, ...]]:
    for seminar_number in range(-(-count // PER_SEMINAR)):
        starts_on = _starts_on(seminar_number)
        in_it = range(seminar_number * PER_SEMINAR, min(count, (seminar_number + 1) * PER_SEMINAR))
        accepted = sum(1 for number in in_it if _status(number) == "accepted")
        yield (
            f"S-H-{seminar_number}",
            "Kommunale Digitallotsen (Verlauf)",
            starts_on,
            starts_on + timedelta(days=2),
            "Hannover",
            FEE_CENTS,
            PER_SEMINAR,
            accepted,
        )


def registration_rows(count: int, keys: list[str]) -> Iterator[tuple[Any, ...]]:
    for number in range(count):
        status = _status(number)
        yield (
            f"H-{number}",
            _seminar(number),
            keys[number % len(keys)],
            keys[number % len(keys)],
            "Vorname",
            f"H{number}",
            f"h{number}@history.example",
            f"kontakt-{number % len(keys)}@history.example",
            status,
            "duplicate_participant" if status == "rejected" else None,
            "withdrawn_by_portal" if status == "withdrawn" else None,
        )


def funding_rows(count: int, keys: list[str]) -> Iterator[tuple[Any, ...]]:
    """The accepted and withdrawn ones: released after approval (accepted), left a waitlist
    (withdrawn); every fifth of the accepted ones declined instead."""
    for number in range(count):
        status = _status(number)
        if status == "rejected":
            continue
        seminar_number = number // PER_SEMINAR
        funded = status == "accepted" and number % 5 != 0
        yield (
            f"H-{number}",
            keys[number % len(keys)],
            _seminar(number),
            _starts_on(seminar_number),
            FEE_CENTS,
            "released" if funded else "withdrawn" if status == "withdrawn" else "declined",
            None if status == "accepted" and not funded else PERIOD,
            "outside_funding_period" if status == "accepted" and not funded else None,
            None if status == "accepted" and not funded else AMOUNT_CENTS,
        )


def notification_registration_rows(count: int, keys: list[str]) -> Iterator[tuple[Any, ...]]:
    for number in range(count):
        if _status(number) == "rejected":
            continue
        seminar_number = number // PER_SEMINAR
        starts_on = _starts_on(seminar_number)
        yield (
            f"H-{number}",
            keys[number % len(keys)],
            f"kontakt-{number % len(keys)}@history.example",
            "Vorname",
            f"H{number}",
            _seminar(number),
            "Kommunale Digitallotsen (Verlauf)",
            starts_on,
            starts_on + timedelta(days=2),
            FEE_CENTS,
            "basic",
            "Hannover",
            _status(number) == "accepted",
        )


def email_rows(count: int, keys: list[str]) -> Iterator[tuple[Any, ...]]:
    """Two delivered letters per registration (its outcome, its funding), facts dropped."""
    for number in range(count):
        status = _status(number)
        templates = {
            "accepted": ("registration_accepted", "funding_released"),
            "withdrawn": ("registration_withdrawn", "funding_waitlisted"),
            "rejected": ("registration_rejected",),
        }[status]
        for template in templates:
            event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"history/{number}/{template}")
            yield (
                uuid.uuid5(event_id, template),
                event_id,
                template,
                f"H-{number}",
                keys[number % len(keys)],
                f"kontakt-{number % len(keys)}@history.example",
                f"Digitallotsen-Seminar (Anmeldung H-{number})",
                event_id,
                "sent",
                1,
                SENT_AT,
                SENT_AT,
                SENT_AT,
            )


def inbox_rows(count: int, topic: str, per_registration: int = 1) -> Iterator[tuple[Any, ...]]:
    for number in range(count):
        for copy in range(per_registration):
            yield (uuid.uuid5(uuid.NAMESPACE_URL, f"history/{topic}/{number}/{copy}"), topic)


async def _copy(dsn: str, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(table, records=rows, columns=columns)
        await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


async def seed(env: dict[str, str], count: int, keys: list[str], log: Callable[[str], None]) -> None:
    """Write the history of `count` registrations into the bench stack's three databases."""
    registration, funding = env["REGISTRATION_DATABASE_URL"], env["FUNDING_DATABASE_URL"]
    notification = env["NOTIFICATION_DATABASE_URL"]
    log(f"history: {count:,} registrations with their decisions and letters, by COPY")
    await _copy(
        registration,
        "seminars",
        SEMINAR_COLUMNS,
        seminar_rows(count),
    )
    await _copy(
        registration,
        "registrations",
        [
            "registration_id",
            "seminar_id",
            "given_kommune_key",
            "kommune_key",
            "given_name",
            "family_name",
            "participant_email",
            "contact_email",
            "status",
            "rejection_reason",
            "withdrawal_reason",
        ],
        registration_rows(count, keys),
    )
    await _copy(registration, "inbox", ["event_id", "topic"], inbox_rows(count, TOPIC_IN["registration"]))
    await _copy(
        funding,
        "fundings",
        FUNDING_COLUMNS,
        funding_rows(count, keys),
    )
    conn = await asyncpg.connect(funding)
    try:
        await conn.execute(BOOK_RELEASED, PERIOD)
    finally:
        await conn.close()
    await _copy(funding, "inbox", ["event_id", "topic"], inbox_rows(count, TOPIC_IN["funding"]))
    await _copy(
        notification,
        "registrations",
        [
            "registration_id",
            "kommune_key",
            "contact_email",
            "given_name",
            "family_name",
            "seminar_id",
            "seminar_title",
            "seminar_starts_on",
            "seminar_ends_on",
            "fee_cents",
            "course",
            "seminar_location",
            "seat_confirmed",
        ],
        notification_registration_rows(count, keys),
    )
    await _copy(
        notification,
        "emails",
        [
            "id",
            "event_id",
            "template",
            "registration_id",
            "kommune_key",
            "recipient",
            "subject",
            "correlation_id",
            "status",
            "attempts",
            "created_at",
            "next_attempt_at",
            "sent_at",
        ],
        email_rows(count, keys),
    )
    await _copy(notification, "inbox", ["event_id", "topic"], inbox_rows(count, "registration.events", 2))
    log("history: written")
