"""What a portal publishes, and reading the registration service's outcomes back."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.topics import Topics
from tests.support.kafka import Record, envelope, publish, read_topic
from tests.support.waiting import wait_until as wait_until  # noqa: PLC0414 - for tests/reliability

Message = tuple[str, dict[str, Any]]


def seminar(seminar_id: str, capacity: int, *, title: str = "Datenschutz im Rathaus") -> Message:
    data = {
        "seminar_id": seminar_id,
        "title": title,
        "starts_on": "2030-03-04",
        "ends_on": "2030-03-05",
        "location": "Hannover",
        "fee_cents": 45_000,
        "capacity": capacity,
    }
    return seminar_id, envelope("seminar.published", data)


def cancellation(seminar_id: str) -> Message:
    return seminar_id, envelope("seminar.cancelled", {"seminar_id": seminar_id})


def participant(registration_id: str) -> dict[str, str]:
    """Names and an address unique to the registration, so a test can look for them in logs."""
    tag = registration_id.lower().replace("-", "")
    return {
        "given_name": f"Vorname{tag}",
        "family_name": f"Nachname{tag}",
        "email": f"person.{tag}@mail.example",
    }


def contact(kommune_key: str) -> str:
    return f"it-{kommune_key}@kommune.example"


def submission(
    registration_id: str,
    kommune_key: str,
    seminar_id: str,
    *,
    person: dict[str, str] | None = None,
    contact_email: str | None = None,
) -> Message:
    data = {
        "registration_id": registration_id,
        "kommune_key": kommune_key,
        "seminar_id": seminar_id,
        "participant": person or participant(registration_id),
        "contact_email": contact_email or contact(kommune_key),
    }
    return kommune_key, envelope("registration.submitted", data)


def withdrawal(registration_id: str, kommune_key: str) -> Message:
    data = {"registration_id": registration_id, "kommune_key": kommune_key}
    return kommune_key, envelope("registration.withdrawn", data)


async def send(bootstrap: str, topic: str, *messages: Message | tuple[str, bytes]) -> None:
    await publish(bootstrap, topic, list(messages))


def outcomes(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [json.loads(record.value) for record in records]


@dataclass(frozen=True)
class Portal:
    """A test's portal: publishes to its portal topics, reads its outcomes and the service's state."""

    bootstrap: str
    topics: Topics
    db: asyncpg.Connection

    async def seminars(self, *messages: Message | tuple[str, bytes]) -> None:
        """Publish to portal.seminars and wait until the service has stored each seminar's last state.

        Seminars and registrations are on different topics, with no order between them.
        """
        await send(self.bootstrap, self.topics.portal_seminars, *messages)
        last: dict[str, dict[str, Any]] = {}
        for _key, value in messages:
            if isinstance(value, dict):
                last[value["data"]["seminar_id"]] = value
        for seminar_id, event in last.items():
            if event["event_type"] == "seminar.cancelled":
                await wait_until(self._seminar_is(seminar_id, cancelled=True))
            else:
                await wait_until(self._seminar_is(seminar_id, capacity=event["data"]["capacity"]))

    def _seminar_is(self, seminar_id: str, **expected: object) -> Callable[[], Awaitable[bool]]:
        async def stored() -> bool:
            row = await self.db.fetchrow("SELECT * FROM seminars WHERE seminar_id = $1", seminar_id)
            return row is not None and all(row[column] == value for column, value in expected.items())

        return stored

    async def registrations(self, *messages: Message | tuple[str, bytes]) -> None:
        await send(self.bootstrap, self.topics.portal_registrations, *messages)

    async def outcomes(self, count: int, *, settle: float = 0.0) -> list[Record]:
        """registration.events once it holds `count` events; `settle` s more to catch extra ones."""
        return await read_topic(
            self.bootstrap,
            self.topics.registration_events,
            until=lambda records: len(records) >= count,
            timeout=90,
            settle=settle,
        )

    async def statuses(self) -> dict[str, str]:
        rows = await self.db.fetch("SELECT registration_id, status FROM registrations")
        return {row["registration_id"]: row["status"] for row in rows}


def history(records: Sequence[Record]) -> dict[str, list[str]]:
    """Per registration, its outcome types in order (one registration stays on one partition)."""
    seen: dict[str, list[str]] = defaultdict(list)
    for event in outcomes(records):
        seen[event["data"]["registration_id"]].append(event["event_type"])
    return dict(seen)


def one(records: Sequence[Record], event_type: str, registration_id: str) -> dict[str, Any]:
    """The data of the only event of that type for that registration."""
    found = [
        event["data"]
        for event in outcomes(records)
        if event["event_type"] == event_type and event["data"]["registration_id"] == registration_id
    ]
    assert len(found) == 1, (event_type, registration_id, found)
    data: dict[str, Any] = found[0]
    return data
