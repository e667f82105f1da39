"""No personal data in any log (docs/personal-data.md): a small programme year through a stack of
its own at LOG_LEVEL=DEBUG, with failures on every error path that could quote a value, then
every file under the stack's var/log/ (the services', PostgreSQL's, Kafka's, the SMTP sink's) is
searched for every name and address of the run.

Failures injected: a duplicate submission (rejected by the domain), a submission whose insert
violates a unique constraint whose DETAIL quotes the participant's address (retried, logged,
dead-lettered), messages that break the contract and quote names and addresses (dead-lettered), a
Kommune whose mailbox refuses every letter (550: parked) and a relay that refuses everything for
a few seconds (451: retried).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from deploy.local.secrets import local_secrets
from deploy.local.smtp_sink import FAULTS_FILE
from lotse.credentials import kafka_security
from lotse.demo import publish_scenario, wait_until_handled
from lotse.log import read_all
from lotse.scenario import Scenario, ScenarioSize, build_scenario
from shared.directory import load_directory
from shared.kafka import make_producer
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT
from shared.topics import Topics, dlq_topic
from tests.support.infra import with_database
from tests.support.kafka import read_topic
from tests.support.stack import Stack, stack_env

pytestmark = pytest.mark.e2e

# Beside the other end-to-end stack (+10,000) and the fault suite (+14,000).
PORT_OFFSET = 12_000
SIZE = ScenarioSize(
    seminars_first_year=1,
    seminars_second_year=1,
    capacity=10,
    kommunen=5,
    not_eligible=1,
    over_quota=1,
    withdrawals=1,
    fee_cents=100_000,
)
POISON_ID = "PRIV-POISON-1"
POISON = {
    "given_name": "Quirinella",
    "family_name": "Zwetschgenbaum",
    "email": "quirinella.zwetschgenbaum@kommunen.example",
}
DUPLICATE_NAMES = {"given_name": "Hildegunde", "family_name": "Pfefferkorn"}
BROKEN = {
    "given_name": "Ottokar",
    "family_name": "Brezelmeier",
    "email": "ottokar.brezelmeier@kommunen.example",
}
# The registration database makes the poisoned submission's insert violate a unique key: the
# error's DETAIL (`Key (email)=(…) already exists`) quotes the participant's address.
PROBE_SQL = f"""
CREATE TABLE privacy_probe (email text PRIMARY KEY);
INSERT INTO privacy_probe VALUES ('{POISON["email"]}');
GRANT INSERT ON privacy_probe TO registration;
CREATE FUNCTION privacy_probe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.registration_id = '{POISON_ID}' THEN
        INSERT INTO privacy_probe VALUES (NEW.participant_email);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER privacy_probe BEFORE INSERT ON registrations FOR EACH ROW EXECUTE FUNCTION privacy_probe();
"""


@pytest.fixture(scope="module")
def debug_stack() -> Iterator[Stack]:
    var_dir = REPO_ROOT / "var" / "e2e-privacy"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    os.chmod(var_dir, 0o755)  # the postgres system user must reach its data folder
    env = {
        **stack_env(var_dir, PORT_OFFSET),
        "FUNDING_PROGRAM_FILE": str(DEFAULT_PROGRAM_FILE),
        "LOG_LEVEL": "DEBUG",
        "NOTIFICATION_MAX_PERMANENT_ATTEMPTS": "1",
    }
    stack = Stack(env, var_dir)
    try:
        up = stack.run("-m", "deploy.local.stack", "up", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        yield stack
    finally:
        stack.run("-m", "deploy.local.stack", "down", check=False)


def submission(
    registration_id: str, kommune_key: str, seminar_id: str, participant: dict[str, str], contact: str
) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "registration.submitted",
        "schema_version": 1,
        "occurred_at": "2023-05-02T09:00:00+02:00",
        "source": "nsi-portal",
        "data": {
            "registration_id": registration_id,
            "kommune_key": kommune_key,
            "seminar_id": seminar_id,
            "participant": participant,
            "contact_email": contact,
        },
    }


async def publish_as_portal(stack: Stack, messages: list[tuple[str, bytes]]) -> None:
    producer = make_producer(stack.bootstrap, client_id="e2e-privacy", security=kafka_security("portal"))
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(Topics().portal_registrations, value, key=key.encode())
    finally:
        await producer.stop()


async def install_probe(stack: Stack) -> None:
    password = local_secrets(stack.var_dir).postgres_password("postgres").get_secret_value()
    conn = await asyncpg.connect(
        with_database(stack.env["POSTGRES_ADMIN_URL"], "registration"), password=password
    )
    try:
        await conn.execute(PROBE_SQL)
    finally:
        await conn.close()


async def wait_for(condition: object, timeout: float = 180) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(1)


def log_forms(value: str) -> set[str]:
    """How a value would appear in a log: as it is, and JSON-escaped (structlog's JSON lines)."""
    return {value, json.dumps(value)[1:-1]}


def run_with_failures(stack: Stack, scenario: Scenario) -> None:
    first = scenario.registrations[0]
    refused_contact = first.contact_email
    (stack.mail_dir / FAULTS_FILE).write_text(
        json.dumps(
            {"reject_recipients": [refused_contact], "tempfail_until": time.time() + 5, "tempfail_code": 451}
        )
    )
    asyncio.run(install_probe(stack))
    key, seminar = first.given_key, first.seminar.seminar_id
    duplicate = {**DUPLICATE_NAMES, "email": first.email}
    broken_value = submission(
        "PRIV-BROKEN-1", key, seminar, {**BROKEN, "given_name": "Ottokar\n"}, refused_contact
    )
    injected = [
        # The same participant for the same seminar again: rejected as duplicate_participant.
        (key, json.dumps(submission("PRIV-DUP-1", key, seminar, duplicate, first.contact_email)).encode()),
        (key, json.dumps(submission(POISON_ID, key, seminar, POISON, first.contact_email)).encode()),
        # Break the contract while quoting names and addresses.
        (key, json.dumps(broken_value).encode()),
        (key, json.dumps({**broken_value, "event_type": BROKEN["email"]}).encode()),
        (key, json.dumps({**broken_value, "event_type": "Brezelmeier"}).encode()),
        (key, json.dumps(broken_value).encode()[:-40]),
    ]

    async def run() -> None:
        await publish_scenario(stack.bootstrap, Topics(), scenario)
        await publish_as_portal(stack, injected)
        await wait_until_handled(stack.bootstrap, Topics(), scenario, None, timeout=600)

        # The poisoned submission after its attempts, and the four that break the contract.
        await read_topic(
            stack.bootstrap,
            dlq_topic(Topics().portal_registrations),
            until=lambda found: len(found) >= 5,
            timeout=180,
        )

        async def parked() -> bool:
            events = await read_all(stack.bootstrap, Topics().notification_events)
            return any(event["event_type"] == "notification.failed" for event in events)

        await wait_for(parked)

    asyncio.run(run())


def test_no_name_or_address_of_the_run_appears_in_any_log(debug_stack: Stack) -> None:
    scenario = build_scenario(
        load_directory(str(DEFAULT_DIRECTORY_FILE)), load_program(DEFAULT_PROGRAM_FILE), SIZE, seed=17
    )
    run_with_failures(debug_stack, scenario)
    # Stopped, so that every process has written all it will.
    down = debug_stack.run("-m", "deploy.local.stack", "down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr

    names = {r.given_name for r in scenario.registrations} | {r.family_name for r in scenario.registrations}
    names |= {
        person[field]
        for person in (POISON, DUPLICATE_NAMES, BROKEN)
        for field in ("given_name", "family_name")
    }
    addresses = {r.email for r in scenario.registrations} | {r.contact_email for r in scenario.registrations}
    addresses |= {POISON["email"], BROKEN["email"], BROKEN["email"].replace("@", "@@")}
    patterns = {
        form: re.compile(rf"(?<!\w){re.escape(form)}(?!\w)")
        for value in names | addresses
        for form in log_forms(value)
    }
    # The search finds a value as a log line would hold it (structlog's JSON escapes umlauts).
    assert all(
        any(patterns[form].search(json.dumps({"x": name})) for form in log_forms(name)) for name in names
    )
    logs = sorted(path for path in (debug_stack.var_dir / "log").rglob("*") if path.is_file())
    texts = {path.name: path.read_text(encoding="utf-8", errors="replace") for path in logs}
    assert {"postgres.log", "kafka.log", "registration.log", "funding.log", "notification.log"} <= set(texts)

    found = {
        (name, form)
        for name, text in texts.items()
        for form, pattern in patterns.items()
        if pattern.search(text)
    }
    assert not found, f"personal data in the logs: {sorted(found)}"

    # The failures did happen, on the paths under test, and DEBUG was on.
    assert '"level": "debug"' in texts["notification.log"]
    assert (
        "handler failed" in texts["registration.log"]
        and "UniqueViolationError (23505)" in texts["registration.log"]
    )
    assert "dead-lettering a message that breaks the contract" in texts["registration.log"]
    assert "email parked" in texts["notification.log"]
    assert "duplicate key value violates unique constraint" in texts["postgres.log"]
    assert "DETAIL" not in texts["postgres.log"] and "STATEMENT" not in texts["postgres.log"]
    assert list(debug_stack.mail_dir.glob("*.eml"))  # and letters went out
