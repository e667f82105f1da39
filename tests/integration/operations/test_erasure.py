"""Erasure of personal data (ADR 0018) against the real broker, PostgreSQL and an SMTP server,
with all three services running: `command.erase`, the retention schedule, `person export`.

What the databases hold is read the way an auditor would: a pg_dump of each as the superuser.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from deploy.local.stack import pg_bin
from lotse.commands import new_command, send_command
from lotse.erasure import export_json, export_of
from lotse.log import read_all
from lotse.report import build_report
from services.funding.app import build as build_funding
from services.funding.settings import FundingSettings
from services.notification.app import build as build_notification
from services.notification.settings import NotificationSettings
from services.registration.app import build as build_registration
from services.registration.settings import RegistrationSettings
from shared.commands import ERASE, MAIL_RESEND, REPLAY_DEAD_LETTERS
from shared.dlq import HEADER_SERVICE, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION
from shared.kafka import KafkaSecurity, client_options
from shared.topics import Topics, dlq_topic
from tests.conftest import DatabaseFactory
from tests.integration.notification.conftest import TEST_SETTINGS as NOTIFICATION_TEST_SETTINGS
from tests.integration.notification.smtp_sink import SmtpSink, smtp_sink
from tests.integration.registration.portal import contact, participant, send, submission
from tests.support.infra import Infrastructure, with_database
from tests.support.kafka import envelope, read_topic, values
from tests.support.service import ServiceFactory, in_process
from tests.support.waiting import wait_until
from tests.unit.funding.samples import EINHEITSGEMEINDE, SAMTGEMEINDE

pytestmark = pytest.mark.integration

SERVICES = ("registration", "funding", "notification")
FAST: dict[str, Any] = {"outbox_poll_interval_seconds": 0.2, "handler_retry_base_seconds": 0.05}
ERASED, KEPT = "R-ERASE", "R-KEEP"


@dataclass
class Stack:
    """The three services' factories, a connection to each database and the SMTP sink."""

    bootstrap: str
    topics: Topics
    dsns: dict[str, str]
    db: dict[str, asyncpg.Connection]
    services: dict[str, ServiceFactory]
    sink: SmtpSink
    admin_dsn: str

    @asynccontextmanager
    async def running(self, **overrides: Any) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for name in SERVICES:
                await stack.enter_async_context(self.services[name](**overrides))
            yield

    def dump(self) -> dict[str, str]:
        """pg_dump of each service's database, as the superuser."""
        env = dict(os.environ)
        password_file = os.environ.get("POSTGRES_ADMIN_PASSWORD_FILE")
        if password_file and Path(password_file).is_file():
            env["PGPASSWORD"] = Path(password_file).read_text().strip()
        dumps = {}
        for name, dsn in self.dsns.items():
            database = urlsplit(dsn).path.lstrip("/")
            dumps[name] = subprocess.run(
                [pg_bin("pg_dump"), "--data-only", "--dbname", with_database(self.admin_dsn, database)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        return {name: readable(dump) for name, dump in dumps.items()}

    async def export(self, email: str) -> dict[str, Any]:
        exported = await export_of(
            self.db["registration"], self.db["funding"], self.db["notification"], email
        )
        parsed: dict[str, Any] = json.loads(export_json(exported))
        return parsed

    async def figures(self) -> list[tuple[str, str, str]]:
        """`lotse report`'s figures (lotse.figures.gather_report, with the test's connections)."""
        from lotse.figures import programme_figures
        from lotse.reference import load_reference_data
        from shared.program import DEFAULT_PROGRAM_FILE
        from shared.settings import DEFAULT_DIRECTORY_FILE

        report = build_report(
            registration_events=await read_all(self.bootstrap, self.topics.registration_events),
            funding_events=await read_all(self.bootstrap, self.topics.funding_decisions),
            notification_events=await read_all(self.bootstrap, self.topics.notification_events),
            programme=programme_figures(load_reference_data(DEFAULT_PROGRAM_FILE, DEFAULT_DIRECTORY_FILE)),
            mail_location="-",
        )
        report.emails_sent = await self.db["notification"].fetchval(
            "SELECT count(*) FROM emails WHERE status = 'sent'"
        )
        return [(str(s), str(i), str(v)) for s, i, v in report.as_rows()]

    async def letters_sent(self, count: int) -> None:
        async def sent() -> bool:
            return bool(
                await self.db["notification"].fetchval("SELECT count(*) FROM emails WHERE status = 'sent'")
                == count
            )

        await wait_until(sent, timeout=90)


@pytest.fixture
async def stack(
    infra: Infrastructure,
    kafka_bootstrap: str,
    topics: Topics,
    make_database: DatabaseFactory,
    unused_tcp_port_factory: Callable[[], int],
) -> AsyncIterator[Stack]:
    dsns = {name: await make_database(name) for name in SERVICES}
    connections = {name: await asyncpg.connect(dsn) for name, dsn in dsns.items()}
    with smtp_sink(unused_tcp_port_factory()) as sink:

        def factory(
            build: Callable[[Any], Any], settings: type[Any], service: str, **extra: Any
        ) -> ServiceFactory:
            return in_process(
                build,
                settings,
                kafka_bootstrap=kafka_bootstrap,
                topics=topics,
                database_url=dsns[service],
                free_port=unused_tcp_port_factory,
                **extra,
            )

        services = {
            "registration": factory(build_registration, RegistrationSettings, "registration", **FAST),
            "funding": factory(build_funding, FundingSettings, "funding", **FAST),
            "notification": factory(
                build_notification,
                NotificationSettings,
                "notification",
                smtp_port=sink.port,
                **NOTIFICATION_TEST_SETTINGS,
            ),
        }
        yield Stack(kafka_bootstrap, topics, dsns, connections, services, sink, infra.admin_dsn)
    for conn in connections.values():
        await conn.close()


def seminar_message(seminar_id: str, starts: str, ends: str) -> tuple[str, dict[str, Any]]:
    data = {
        "seminar_id": seminar_id,
        "title": "Datenschutz im Rathaus",
        "starts_on": starts,
        "ends_on": ends,
        "location": "Hannover",
        "fee_cents": 45_000,
        "capacity": 10,
    }
    return seminar_id, envelope("seminar.published", data)


_BYTEA = re.compile(r"\\\\x([0-9a-f]+)")


def _decoded(match: re.Match[str]) -> str:
    raw = bytes.fromhex(match[1])
    text = raw.decode("utf-8", errors="replace")
    if b"MIME-Version" in raw:  # a letter: its parts as they read, whatever their transfer encoding
        message = BytesParser(policy=default).parsebytes(raw)
        parts = [part.get_payload(decode=True) for part in message.walk() if not part.is_multipart()]
        text += " ".join(p.decode("utf-8", errors="replace") for p in parts if isinstance(p, bytes))
    return text.replace("\n", " ")


def readable(dump: str) -> str:
    """The dump with every bytea value (outbox payloads, letters) decoded, so a search sees them."""
    return _BYTEA.sub(_decoded, dump)


def personal_strings(registration_id: str, kommune_key: str) -> list[str]:
    person = participant(registration_id)
    return [person["given_name"], person["family_name"], person["email"], contact(kommune_key)]


def holding(dumps: dict[str, str], needles: Sequence[str]) -> set[str]:
    return {needle for needle in needles if any(needle in dump for dump in dumps.values())}


def tables_holding(dumps: dict[str, str], needles: Sequence[str]) -> set[str]:
    """`service.table` of every table whose dumped rows hold one of the strings."""
    found: set[str] = set()
    for service, dump in dumps.items():
        table = None
        for line in dump.splitlines():
            if line.startswith("COPY "):
                table = line.split()[1].removeprefix("public.")
            elif line == "\\.":
                table = None
            elif table is not None and any(needle in line for needle in needles):
                found.add(f"{service}.{table}")
    return found


# Where each part of `person export` comes from.
EXPORT_TABLES = {
    ("registration", "registrations"): "registration.registrations",
    ("registration", "parked_submissions"): "registration.parked_submissions",
    ("registration", "outbox"): "registration.outbox",
    ("funding", "fundings"): "funding.fundings",
    ("funding", "outbox"): "funding.outbox",
    ("notification", "registrations"): "notification.registrations",
    ("notification", "letters"): "notification.emails",
    ("notification", "pending_decisions"): "notification.pending_decisions",
    ("notification", "outbox"): "notification.outbox",
}


def export_tables_holding(export: dict[str, Any], needles: Sequence[str]) -> set[str]:
    found = set()
    for (service, part), table in EXPORT_TABLES.items():
        text = json.dumps(export[service][part], ensure_ascii=False)
        if any(needle in text for needle in needles):
            found.add(table)
    return found


async def publish_dead_letter(
    bootstrap: str, topic: str, service: str, key: str, value: dict[str, Any]
) -> None:
    """A dead letter as the service writes it: its source's place and the service in the headers."""
    headers = [
        (HEADER_SERVICE, service.encode()),
        (HEADER_SOURCE_PARTITION, b"0"),
        (HEADER_SOURCE_OFFSET, str(abs(hash((service, value["event_id"]))) % 10**9).encode()),
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, **client_options(KafkaSecurity.from_environment())
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            dlq_topic(topic), json.dumps(value).encode(), key=key.encode(), headers=headers, partition=0
        )
    finally:
        await producer.stop()


def again(event: dict[str, Any]) -> dict[str, Any]:
    """The same event under a new id (a portal that sends it again; not deduplicated by the inbox)."""
    return {**event, "event_id": str(uuid.uuid4())}


async def in_inbox(db: asyncpg.Connection, event_ids: Sequence[str]) -> bool:
    ids = [uuid.UUID(event_id) for event_id in event_ids]
    return bool(
        await db.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::uuid[])", ids) == len(ids)
    )


async def test_an_erased_registration_is_gone_from_every_database_and_stays_gone(stack: Stack) -> None:
    bootstrap, topics = stack.bootstrap, stack.topics
    erased_strings = personal_strings(ERASED, EINHEITSGEMEINDE)
    kept_strings = personal_strings(KEPT, SAMTGEMEINDE)
    erased_key, erased_submission = submission(ERASED, EINHEITSGEMEINDE, "S-1")
    async with stack.running():
        await send(bootstrap, topics.portal_seminars, seminar_message("S-1", "2030-03-04", "2030-03-05"))
        await wait_until(lambda: _seminar_known(stack, "S-1"))
        await send(
            bootstrap,
            topics.portal_registrations,
            (erased_key, erased_submission),
            submission(KEPT, SAMTGEMEINDE, "S-1"),
        )
        await stack.letters_sent(4)  # each: registration_accepted and a funding letter
        before = await stack.figures()
        dumps = stack.dump()
        assert holding(dumps, erased_strings + kept_strings) == set(erased_strings + kept_strings)

        # Access: the export holds what the databases hold on the person, table by table.
        export = await stack.export(participant(ERASED)["email"])
        assert export["registration_ids"] == [ERASED]
        assert holding({"export": json.dumps(export, ensure_ascii=False)}, erased_strings) == set(
            erased_strings
        )
        assert export_tables_holding(export, erased_strings) == tables_holding(dumps, erased_strings)
        assert not holding({"export": json.dumps(export, ensure_ascii=False)}, kept_strings)

        # Erasure: all three confirm, with what they erased.
        command = new_command(ERASE, "Antrag nach Art. 17 DSGVO", registration_ids=(ERASED,))
        outcome = await send_command(bootstrap, topics, ERASE, command)
        assert not outcome.missing
        results = {service: result for service, result in outcome.results.items()}
        assert {result.outcome for result in results.values()} == {"done"}
        assert results["registration"].detail["registrations"] == 1
        assert results["notification"].detail["registrations"] == 1
        assert results["notification"].detail["letters"] == 2
        assert int(results["registration"].detail["outbox"]) >= 1

        dumps = stack.dump()
        assert not holding(dumps, erased_strings)
        assert holding(dumps, kept_strings) == set(kept_strings)
        assert await stack.figures() == before
        after = await stack.export(participant(ERASED)["email"])
        assert after.pop("email") == participant(ERASED)["email"]  # the question, not an answer
        assert after["registration_ids"] == []
        assert not holding({"export": json.dumps(after, ensure_ascii=False)}, erased_strings)
        for service in SERVICES:
            row = await stack.db[service].fetchrow(
                "SELECT requested_by, reason, cause FROM erasures WHERE command_id = $1", command.command_id
            )
            assert row is not None and (row["reason"], row["cause"]) == (
                "Antrag nach Art. 17 DSGVO",
                "request",
            )

        await redeliver_and_replay(stack, erased_key, erased_submission)
        # A resend of an erased letter is refused.
        email_id = await stack.db["notification"].fetchval(
            "SELECT id FROM emails WHERE registration_id = $1 LIMIT 1", ERASED
        )
        resend = await send_command(
            bootstrap, topics, MAIL_RESEND, new_command(MAIL_RESEND, "nochmal", email_id=email_id)
        )
        assert [(r.outcome, r.detail) for r in resend.results.values()] == [("refused", {"error": "erased"})]
        await stack.letters_sent(4)
        assert len(stack.sink.handler.received) == 4
        assert not holding(stack.dump(), erased_strings)
    assert len(stack.sink.handler.received) == 4  # the letters from before the erasure, no other


async def redeliver_and_replay(stack: Stack, erased_key: str, erased_submission: dict[str, Any]) -> None:
    """The erased registration's original events delivered again, the same under new ids, and as
    dead letters replayed by their consumers; returns once every service has taken them in."""
    bootstrap, topics = stack.bootstrap, stack.topics
    # Redelivered events, the same submission under a new id, dead letters replayed: nothing
    # comes back, no letter leaves.
    (accepted,) = [
        value
        for value in values(
            await read_topic(bootstrap, topics.registration_events, until=lambda r: len(r) >= 2)
        )
        if value["data"]["registration_id"] == ERASED
    ]
    resubmitted, reaccepted = again(erased_submission), again(accepted)
    await send(
        bootstrap, topics.portal_registrations, (erased_key, erased_submission), (erased_key, resubmitted)
    )
    await send(
        bootstrap,
        topics.registration_events,
        (EINHEITSGEMEINDE, accepted),
        (EINHEITSGEMEINDE, reaccepted),
    )
    replayed_submission, replayed_acceptance = again(erased_submission), again(accepted)
    await publish_dead_letter(
        bootstrap, topics.portal_registrations, "registration", erased_key, replayed_submission
    )
    for service in ("funding", "notification"):
        await publish_dead_letter(
            bootstrap, topics.registration_events, service, EINHEITSGEMEINDE, replayed_acceptance
        )
    for topic in ("portal.registrations", "registration.events"):
        replay = new_command(REPLAY_DEAD_LETTERS, "Fehler behoben", topic=topic)
        replayed = await send_command(bootstrap, topics, REPLAY_DEAD_LETTERS, replay)
        assert not replayed.missing and not replayed.refused
    await wait_until(
        lambda: in_inbox(stack.db["registration"], [resubmitted["event_id"], replayed_submission["event_id"]])
    )
    for service in ("funding", "notification"):
        await wait_until(
            lambda service=service: in_inbox(
                stack.db[service], [reaccepted["event_id"], replayed_acceptance["event_id"]]
            )  # type: ignore[misc]
        )


async def _seminar_known(stack: Stack, seminar_id: str) -> bool:
    return bool(
        await stack.db["registration"].fetchval(
            "SELECT count(*) FROM seminars WHERE seminar_id = $1", seminar_id
        )
    )


async def test_retention_erases_a_finished_seminars_registrations_and_keeps_a_running_ones(
    stack: Stack,
) -> None:
    bootstrap, topics = stack.bootstrap, stack.topics
    today = datetime.now(UTC).date()
    finished, running = "R-OLD", "R-NOW"
    old_strings = personal_strings(finished, EINHEITSGEMEINDE)
    now_strings = personal_strings(running, SAMTGEMEINDE)
    async with stack.running():
        await send(
            bootstrap,
            topics.portal_seminars,
            seminar_message(
                "S-OLD", (today - timedelta(days=10)).isoformat(), (today - timedelta(days=9)).isoformat()
            ),
            seminar_message(
                "S-NOW", (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
            ),
        )
        await wait_until(lambda: _seminar_known(stack, "S-OLD"))
        await wait_until(lambda: _seminar_known(stack, "S-NOW"))
        await send(
            bootstrap,
            topics.portal_registrations,
            submission(finished, EINHEITSGEMEINDE, "S-OLD"),
            submission(running, SAMTGEMEINDE, "S-NOW"),
        )
        await stack.letters_sent(4)
    assert holding(stack.dump(), old_strings + now_strings) == set(old_strings + now_strings)

    # One scheduled round at start-up, with the retention at zero days.
    async with stack.running(personal_data_retention_days=0):

        async def erased_everywhere() -> bool:
            for service in ("registration", "notification"):
                if not await stack.db[service].fetchval(
                    "SELECT count(*) FROM erased_registrations"
                    " WHERE registration_id = $1 AND cause = 'retention'",
                    finished,
                ):
                    return False
            return True

        await wait_until(erased_everywhere)
    dumps = stack.dump()
    assert not holding(dumps, old_strings)
    assert holding(dumps, now_strings) == set(now_strings)
    letters = await stack.db["notification"].fetch(
        "SELECT registration_id, status, facts IS NOT NULL AS held FROM emails ORDER BY registration_id"
    )
    assert sorted((r["registration_id"], r["status"], r["held"]) for r in letters) == [
        (running, "sent", True),
        (running, "sent", True),
        (finished, "sent", False),
        (finished, "sent", False),
    ]
    for service in ("registration", "notification"):
        assert await stack.db[service].fetchval(
            "SELECT requested_by FROM erasures WHERE cause = 'retention'"
        ) == ("retention")

    # The letters' facts a delivery ago with the letter retention at zero: the rows stay.
    async with stack.running(letter_retention_days=0):

        async def bytes_gone() -> bool:
            return not await stack.db["notification"].fetchval(
                "SELECT count(*) FROM emails WHERE facts IS NOT NULL OR message IS NOT NULL"
            )

        await wait_until(bytes_gone)
    letters = await stack.db["notification"].fetch("SELECT registration_id, status, recipient FROM emails")
    assert sorted((r["registration_id"], r["status"], r["recipient"]) for r in letters) == [
        (running, "sent", contact(SAMTGEMEINDE)),
        (running, "sent", contact(SAMTGEMEINDE)),
        (finished, "sent", None),
        (finished, "sent", None),
    ]


def test_lotse_erase_exits_3_when_a_service_does_not_confirm(topics: Topics) -> None:
    """No service runs on the test's topics: nobody confirms within the timeout."""
    from typer.testing import CliRunner

    from lotse.cli import app

    done = CliRunner().invoke(
        app,
        ["erase", "--registration", "R-1", "--reason", "Antrag", "--timeout", "3"],
        env={"KAFKA_TOPIC_PREFIX": topics.prefix, "COLUMNS": "200"},
    )
    assert done.exit_code == 3, done.output
    assert "no result from registration, funding, notification" in done.output


async def test_funding_keeps_an_identity_until_seminar_and_period_are_over(stack: Stack) -> None:
    """The retention round of funding, on its own database (the prerequisite rule needs the
    identity while the period runs)."""
    from services.funding.erasure import retention_round

    async with stack.services["funding"]():  # migrated and synced with the programme
        pass
    db = stack.db["funding"]
    ended, coming = "v1:" + "a" * 64, "v1:" + "b" * 64
    future = datetime.now(UTC).date() + timedelta(days=30)
    await db.execute(
        """
        INSERT INTO fundings (registration_id, kommune_key, seminar_id, seminar_starts_on, fee_cents,
                              status, period_id, reason, amount_cents, participant_hash)
        VALUES ('F-ENDED', $1, 'S-1', '2023-05-02', 100000, 'approved', '2023', NULL, 20000, $2),
               ('F-COMING', $1, 'S-2', $3, 100000, 'declined', NULL, 'outside_funding_period', NULL, $4)
        """,
        EINHEITSGEMEINDE,
        ended,
        future,
        coming,
    )
    async with db.transaction():
        counts = await retention_round(db, 0)
    assert (counts["participant_hashes"], counts["marked"]) == (1, 1)
    rows = await db.fetch("SELECT registration_id, status, amount_cents, participant_hash FROM fundings")
    assert sorted(tuple(row.values()) for row in rows) == [
        ("F-COMING", "declined", None, coming),
        ("F-ENDED", "approved", 20000, None),
    ]
    async with db.transaction():
        assert (await retention_round(db, 0))["participant_hashes"] == 0  # idempotent
