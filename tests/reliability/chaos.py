"""The fault suite: a generated stream through a whole second stack while components fail.

    python -m tests.reliability.chaos --events 20000          # make chaos
    python -m tests.reliability.chaos --events 300 --short    # the version in make test

It starts its own stack (tests/support/stack.py) on ports shifted by 14000 with its state in
var/chaos-stack and two instances of every service (--replicas), publishes registrations (from
real directory keys), withdrawals (some before their submissions) and seminar changes, every
message twice, and meanwhile, at random times: kills an instance (-9), stops one with SIGSTOP past
its session timeout and lets it go on, kills one while its group rebalances, ends the session that
holds an outbox relay's leadership (pg_terminate_backend), kills or restarts the broker, stops
PostgreSQL (immediate, and once for more than 60 s) and makes the SMTP sink answer 421/451 or hang
up in the middle of DATA.

After the stream drains, a history checker (tests/reliability/history.py) judges what the services
produced (their outboxes) and what the topics carry: nothing lost, no duplicate decision; seats,
quotas and budgets within bounds at every prefix; every topic's per-key order; funding's final
state equal to the pure domain's, fed the same inputs in the order funding claimed them
(tests/reliability/model.py); every duplicate email (same Message-ID) explained by a crash in the
documented send-and-record window (ADR 0004). It prints the figures; the exit code is 1 if a check
fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from deploy.local import stack as local
from lotse.log import read_history
from lotse.scenario import key_form
from lotse.status import wait_until_consumed
from services.notification.compose import notification_id
from services.notification.templates import template_for
from shared.directory import Directory, Kommune, KommuneKind, load_directory
from shared.dlq import HEADER_SERVICE
from shared.kafka import client_options
from shared.logging import configure_logging
from shared.outbox import relay_lock_id
from shared.program import load_program
from shared.settings import REPO_ROOT
from shared.topics import Topics, dlq_topic
from tests.reliability.history import (
    Produced,
    Violation,
    differences,
    final_state_differences,
    first_decisions,
    funding_violations,
    order_violations,
    seat_violations,
)
from tests.reliability.model import (
    FUNDING_INPUTS,
    FUNDING_STATE,
    REGISTRATION_INPUTS,
    REGISTRATION_STATE,
    SEMINAR_SEATS,
    funding_state,
    registration_state,
    replay_funding,
    replay_registration,
)
from tests.support.kafka import envelope as kafka_envelope
from tests.support.kafka import header, read_topic, values
from tests.support.stack import Stack, stack_env

# Below 32768: the kernel hands out ports from 32768 up to clients, which once took one of ours.
PORT_OFFSET = 14_000
PROGRAMME = REPO_ROOT / "services" / "funding" / "programs" / "niedersachsen.toml"
FEE_CENTS = 100_000
QUOTA = 2
ELIGIBLE = {
    KommuneKind.LANDKREIS,
    KommuneKind.KREISFREIE_STADT,
    KommuneKind.EINHEITSGEMEINDE,
    KommuneKind.SAMTGEMEINDE,
}
# A crash between the SMTP server's acceptance and the commit that records it (ADR 0004): the
# email was received at most this long before the crash that explains its second copy.
SEND_AND_RECORD_WINDOW = 30.0
SERVICES = ("registration", "funding", "notification")
# The services' KAFKA_SESSION_TIMEOUT_MS (shared/settings.py): a member silent this long leaves.
SESSION_TIMEOUT_SECONDS = 6.0
LONG_POSTGRES_OUTAGE = "postgres down > 60 s"
LONG_OUTAGE_SECONDS = 65.0
POISON_PREFIX = "CR-POISON-"
POISON_TRIGGER = f"""
CREATE FUNCTION chaos_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'poisoned by the fault suite';
END $$;
CREATE TRIGGER chaos_poison BEFORE INSERT ON registrations
    FOR EACH ROW WHEN (NEW.registration_id LIKE '{POISON_PREFIX}%') EXECUTE FUNCTION chaos_poison();
"""
CURE_POISON = "DROP TRIGGER chaos_poison ON registrations; DROP FUNCTION chaos_poison()"
TERMINATE_RELAY_SESSION = """
SELECT count(pg_terminate_backend(pid)) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND classid = 0 AND objid = $1::bigint::oid
AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
PROBE_CAPACITY = 10_000


def now() -> float:
    return time.time()


def say(message: str) -> None:
    print(f"[chaos {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --- the stream ----------------------------------------------------------------------------------


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return kafka_envelope(event_type, data, source="chaos-portal")


@dataclass
class Stream:
    seminars: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    messages: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # each once
    submitted: set[str] = field(default_factory=set)
    events: int = 0  # distinct inbound events
    budget_2023: int = 0
    capacities: dict[str, int] = field(default_factory=dict)  # the largest published per seminar
    # Valid submissions that a trigger makes fail until the end: dead-lettered, then replayed.
    poisoned: set[str] = field(default_factory=set)


def seminar_data(sid: str, starts: date, capacity: int, title: str) -> dict[str, Any]:
    return {
        "seminar_id": sid,
        "title": title,
        "starts_on": starts.isoformat(),
        "ends_on": starts.replace(day=starts.day + 2).isoformat(),
        "location": "Hannover",
        "fee_cents": FEE_CENTS,
        "capacity": capacity,
    }


def build_stream(directory: Directory, events: int, seed: int) -> Stream:
    rng = random.Random(seed)
    lower_saxony = sorted(directory.in_land("03"), key=lambda k: k.key)
    eligible = [k for k in lower_saxony if k.kind in ELIGIBLE]
    members = [k for k in lower_saxony if k.kind is KommuneKind.MITGLIEDSGEMEINDE]
    stream = Stream()
    n_seminars = max(4, events // 60)
    capacity = 40
    seminars = []
    for index in range(n_seminars):
        year = 2022 if index % 3 == 0 else 2023
        starts = date(year, 1 + index % 11, 2 + (index * 7) % 20)
        sid = f"CHAOS-{year}-{index:04d}"
        seminars.append((sid, starts))
        data = seminar_data(sid, starts, capacity, f"Digitallotsen {index}")
        stream.capacities[sid] = capacity
        stream.seminars.append(("portal.seminars", sid, envelope("seminar.published", data)))
    n_changes = max(1, n_seminars // 10)
    n_withdrawals = max(4, events // 12)
    n_registrations = max(8, events - n_seminars - n_changes - n_withdrawals)
    used_2023: set[str] = set()
    regs: list[tuple[str, str, dict[str, Any]]] = []
    for index in range(n_registrations):
        rid = f"CR-{index:06d}"
        draw = rng.random()
        kommune = rng.choice(members) if draw < 0.05 else rng.choice(eligible)
        key = key_form(rng, kommune) if draw >= 0.02 else "03999"  # a well-shaped unknown key
        sid, starts = rng.choice(seminars)
        if starts.year == 2023 and kommune.kind in ELIGIBLE:
            used_2023.add(kommune.key)
        data = {
            "registration_id": rid,
            "kommune_key": key,
            "seminar_id": sid,
            "participant": {
                "given_name": "Anna",
                "family_name": "Müller",
                "email": f"{rid.lower()}@teilnehmer.example",
            },
            "contact_email": f"digitallotsen.{kommune.key}@kommunen.example",
        }
        regs.append(("portal.registrations", key, envelope("registration.submitted", data)))
        stream.submitted.add(rid)
    stream.messages = list(regs)
    # Withdrawals: most after their submission, a third of them before it.
    for _topic, key, event in rng.sample(regs, min(n_withdrawals, len(regs))):
        rid = event["data"]["registration_id"]
        withdrawal = (
            "portal.registrations",
            key,
            envelope("registration.withdrawn", {"registration_id": rid, "kommune_key": key}),
        )
        position = next(i for i, message in enumerate(stream.messages) if message[2] is event)
        if rng.random() < 1 / 3:
            stream.messages.insert(max(0, position - rng.randint(1, 30)), withdrawal)
        else:
            stream.messages.insert(rng.randint(position + 1, len(stream.messages)), withdrawal)
    # Seminar changes: more seats and a new title, published while registrations come in.
    for sid, starts in rng.sample(seminars, n_changes):
        data = seminar_data(sid, starts, capacity + 10, f"Digitallotsen {sid} (geändert)")
        stream.capacities[sid] = capacity + 10
        change = ("portal.seminars", sid, envelope("seminar.published", data))
        stream.messages.insert(rng.randint(len(stream.messages) // 4, len(stream.messages)), change)
    add_poisoned(stream, rng, eligible, seminars, max(2, events // 1000))
    stream.events = len(stream.seminars) + len(stream.messages)
    # A 2023 budget for about half the Kommunen that register for 2023: it binds.
    stream.budget_2023 = max(1, len(used_2023) // 2) * FEE_CENTS // 2
    return stream


def add_poisoned(
    stream: Stream, rng: random.Random, eligible: list[Kommune], seminars: list[tuple[str, date]], count: int
) -> None:
    """Submissions that fail in registration's database until the stream is over (POISON_TRIGGER):
    they end as dead letters and are replayed afterwards, one by one, newest first."""
    for index in range(count):
        rid = f"{POISON_PREFIX}{index:04d}"
        kommune = rng.choice(eligible)
        sid, _ = rng.choice(seminars)
        data = {
            "registration_id": rid,
            "kommune_key": kommune.key,
            "seminar_id": sid,
            "participant": {
                "given_name": "Paula",
                "family_name": "Gift",
                "email": f"{rid.lower()}@teilnehmer.example",
            },
            "contact_email": f"digitallotsen.{kommune.key}@kommunen.example",
        }
        poisoned = ("portal.registrations", kommune.key, envelope("registration.submitted", data))
        stream.messages.insert(rng.randint(0, len(stream.messages)), poisoned)
        stream.submitted.add(rid)
        stream.poisoned.add(rid)


def twice(
    messages: list[tuple[str, str, dict[str, Any]]], rng: random.Random
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message twice: the copy follows within the next few dozen messages."""
    out: list[tuple[str, str, dict[str, Any]] | None] = [*messages]
    extra: list[tuple[int, tuple[str, str, dict[str, Any]]]] = [
        (index + rng.randint(1, 40), message) for index, message in enumerate(messages)
    ]
    result: list[tuple[str, str, dict[str, Any]]] = []
    pending = sorted(extra, key=lambda item: item[0])
    cursor = 0
    for index, message in enumerate(out):
        while cursor < len(pending) and pending[cursor][0] <= index:
            result.append(pending[cursor][1])
            cursor += 1
        assert message is not None
        result.append(message)
    result.extend(message for _, message in pending[cursor:])
    return result


# --- publishing through broker outages -------------------------------------------------------------


class Publisher:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self.sent = 0

    async def send(self, topic: str, key: str, value: dict[str, Any]) -> None:
        raw = json.dumps(value).encode()
        while True:
            try:
                if self.producer is None:
                    self.producer = AIOKafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        acks="all",
                        enable_idempotence=True,
                        request_timeout_ms=10_000,
                        **client_options(),
                    )
                    await self.producer.start()
                await asyncio.wait_for(self.producer.send_and_wait(topic, raw, key=key.encode()), 30)
                self.sent += 1
                return
            except Exception as exc:  # the broker is down: retry (a duplicate is harmless)
                say(f"publish failed ({exc!r}), retrying")
                await self.close()
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self.producer is not None:
            try:
                await self.producer.stop()
            except Exception:
                pass
            self.producer = None


# --- faults ---------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    at: float
    restored_at: float = 0.0
    recovered_at: float = 0.0
    probe: str = ""
    # A killed service: from its restart to the first event its new process processed.
    first_event_seconds: float | None = None
    # When a process was killed, if later than `at` (a kill during a rebalance follows the stop
    # of the other instance by a session timeout).
    killed_at: float | None = None

    @property
    def crash_instants(self) -> list[float]:
        return [self.at] if self.killed_at is None else [self.at, self.killed_at]

    @property
    def recovery_seconds(self) -> float:
        return round(self.recovered_at - self.restored_at, 1) if self.recovered_at else float("nan")


class Chaos:
    def __init__(
        self, stack: Stack, topics: Topics, publisher: Publisher, rng: random.Random, replicas: int
    ) -> None:
        self.stack = stack
        self.replicas = replicas
        self.topics = topics
        self.publisher = publisher
        self.rng = rng
        self.faults: list[Fault] = []
        self.probes: list[asyncio.Task[None]] = []
        self.watchers: list[asyncio.Task[None]] = []  # first events after restarts: figures only
        self.probe_ids: set[str] = set()

    def pid(self, name: str) -> int:
        return self.stack.pids()[name]

    async def wait(self, what: str, check: Any) -> None:
        while not await asyncio.to_thread(check):
            await asyncio.sleep(0.5)

    def instance(self) -> int:
        return self.rng.randrange(self.replicas)

    async def restart(self, service: str, instance: int, fault: Fault) -> None:
        restarted = now()
        await asyncio.to_thread(local.start_service, service, self.stack.env, instance)
        self.watchers.append(asyncio.create_task(self.first_event(service, instance, restarted, fault)))
        await self.wait(service, lambda: local.service_ready(service, self.stack.env, instance))

    async def kill_service(self, service: str, pause: float) -> Fault:
        fault = Fault(f"kill -9 {service}", now())
        instance = self.instance()
        os.kill(self.pid(local.instance_name(service, instance)), signal.SIGKILL)
        await asyncio.sleep(pause)
        await self.restart(service, instance, fault)
        return fault

    async def pause_service(self, service: str) -> Fault:
        """SIGSTOP one instance past its session timeout, so that its group moves its partitions
        to the other instance while it may hold a batch's open transaction; then SIGCONT."""
        fault = Fault(f"SIGSTOP {service}", now())
        pid = self.pid(local.instance_name(service, self.instance()))
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(SESSION_TIMEOUT_SECONDS + self.rng.uniform(2, 8))
        finally:
            os.kill(pid, signal.SIGCONT)
        return fault

    async def kill_during_rebalance(self, service: str) -> Fault:
        """Stop one instance until its session times out and the group rebalances, and kill -9
        the other one in the middle of that rebalance."""
        fault = Fault(f"kill -9 during rebalance {service}", now())
        paused = self.instance()
        killed = (paused + 1) % self.replicas
        pid = self.pid(local.instance_name(service, paused))
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(SESSION_TIMEOUT_SECONDS + 0.5)
            os.kill(self.pid(local.instance_name(service, killed)), signal.SIGKILL)
            fault.killed_at = now()
            await asyncio.sleep(1)
        finally:
            os.kill(pid, signal.SIGCONT)
        await self.restart(service, killed, fault)
        return fault

    async def terminate_relay_session(self, service: str) -> Fault:
        """pg_terminate_backend of the session that holds the relay's leadership lock, alone."""
        fault = Fault(f"pg_terminate_backend relay {service}", now())
        conn = await asyncpg.connect(self.stack.env[f"{service.upper()}_DATABASE_URL"])
        try:
            ended = await conn.fetchval(TERMINATE_RELAY_SESSION, relay_lock_id(service))
        finally:
            await conn.close()
        if not ended:
            say(f"no relay session of {service} held its lock")
        return fault

    async def first_event(
        self, service: str, instance: int, restarted: float, fault: Fault, timeout: float = 120
    ) -> None:
        """Until the restarted process counts its first processed event on /metrics (a new process
        starts its counters at 0): the static member's partitions came back and a batch went in."""
        url = f"http://127.0.0.1:{local.instance_port(service, self.stack.env, instance)}/metrics"
        while now() - restarted < timeout:
            text = await asyncio.to_thread(_fetch, url)
            if processed_events(text) > 0:
                fault.first_event_seconds = round(now() - restarted, 1)
                return
            await asyncio.sleep(0.2)

    async def kill_kafka(self, pause: float) -> Fault:
        fault = Fault("kill -9 kafka", now())
        os.kill(self.pid("kafka"), signal.SIGKILL)
        await asyncio.sleep(pause)
        await asyncio.to_thread(local.start_kafka, self.stack.env)
        await self.wait("kafka", lambda: local.kafka_ready(self.stack.env))
        return fault

    async def restart_kafka(self, pause: float) -> Fault:
        """A broker restart as an operator does it: a clean shutdown, then a start."""
        fault = Fault("restart kafka", now())
        await asyncio.to_thread(local.stop, ["kafka"])
        await asyncio.sleep(pause)
        await asyncio.to_thread(local.start_kafka, self.stack.env)
        await self.wait("kafka", lambda: local.kafka_ready(self.stack.env))
        return fault

    async def stop_postgres(self, pause: float, kind: str = "pg_ctl stop -m immediate") -> Fault:
        fault = Fault(kind, now())
        command = [
            local.pg_bin("pg_ctl"),
            "-D",
            str(self.stack.var_dir / "pg" / "data"),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]
        await asyncio.to_thread(subprocess.run, local._as_postgres(command), check=True, capture_output=True)
        await asyncio.sleep(pause)
        await asyncio.to_thread(local.start_postgres, self.stack.env)
        return fault

    async def smtp(self, kind: str, seconds: float) -> Fault:
        fault = Fault(kind, now())
        until = now() + seconds
        faults = (
            {"drop_data_until": until}
            if kind == "smtp drop mid-DATA"
            else {"tempfail_until": until, "tempfail_code": int(kind[-3:])}
        )
        (self.stack.mail_dir / ".faults.json").write_text(json.dumps(faults))
        await asyncio.sleep(seconds)
        return fault

    async def inject(self, kind: str) -> None:
        pause = self.rng.uniform(2, 6)
        say(f"fault: {kind}")
        service = kind.rsplit(" ", 1)[-1]
        if kind.startswith("kill -9 during rebalance "):
            fault = await self.kill_during_rebalance(service)
        elif kind.startswith("kill -9 ") and service in SERVICES:
            fault = await self.kill_service(service, pause)
        elif kind.startswith("SIGSTOP "):
            fault = await self.pause_service(service)
        elif kind.startswith("pg_terminate_backend relay "):
            fault = await self.terminate_relay_session(service)
        elif kind == "kill -9 kafka":
            fault = await self.kill_kafka(pause)
        elif kind == "restart kafka":
            fault = await self.restart_kafka(pause)
        elif kind == "pg_ctl stop -m immediate":
            fault = await self.stop_postgres(pause)
        elif kind == LONG_POSTGRES_OUTAGE:
            fault = await self.stop_postgres(LONG_OUTAGE_SECONDS, kind)
        else:
            fault = await self.smtp(kind, 30)
        fault.restored_at = now()
        self.faults.append(fault)
        say(f"restored: {kind}")
        self.probes.append(asyncio.create_task(self.probe(fault)))

    async def probe(self, fault: Fault) -> None:
        """Time until a new registration gets through the whole pipeline again: outcome,
        funding decision (declined: unknown Kommune) and both emails."""
        rid = f"PROBE-{len(self.faults):03d}"
        fault.probe = rid
        self.probe_ids.add(rid)
        data = {
            "registration_id": rid,
            "kommune_key": "03999",
            "seminar_id": "CHAOS-PROBE",
            "participant": {
                "given_name": "Probe",
                "family_name": "Lauf",
                "email": f"{rid.lower()}@probe.example",
            },
            "contact_email": "probe@kommunen.example",
        }
        await self.publisher.send(
            self.topics.portal_registrations, "03999", envelope("registration.submitted", data)
        )
        dsn = self.stack.env["NOTIFICATION_DATABASE_URL"]
        query = (
            "SELECT count(*) FROM outbox WHERE event_type = 'notification.sent' "
            "AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' = $1"
        )
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
                try:
                    if await conn.fetchval(query, rid) >= 2:
                        fault.recovered_at = now()
                        return
                finally:
                    await conn.close()
            except (OSError, asyncpg.PostgresError, TimeoutError):
                pass
            await asyncio.sleep(1)


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


PROCESSED = re.compile(r'^lotse_events_total\{[^}]*outcome="processed"[^}]*\} ([0-9.e+]+)$', re.MULTILINE)


def processed_events(metrics: str) -> float:
    return sum(float(value) for value in PROCESSED.findall(metrics))


def schedule(short: bool, rng: random.Random, replicas: int) -> list[str]:
    several = replicas > 1
    if short:
        return ["kill -9 funding", "smtp 451", *(["SIGSTOP registration"] if several else [])]
    kinds = [f"kill -9 {service}" for service in SERVICES for _ in range(2)]
    kinds += [f"SIGSTOP {service}" for service in SERVICES]
    kinds += [f"pg_terminate_backend relay {service}" for service in SERVICES]
    kinds += ["kill -9 during rebalance funding", "kill -9 during rebalance notification"] if several else []
    kinds += ["kill -9 kafka", "restart kafka", "pg_ctl stop -m immediate", LONG_POSTGRES_OUTAGE]
    kinds += ["smtp 421", "smtp 451", "smtp drop mid-DATA"]
    rng.shuffle(kinds)
    return kinds


# --- reading the history --------------------------------------------------------------------------


async def drained(env: dict[str, str], inbound: int) -> dict[str, int]:
    """Counts that stop moving once everything is handled; from the services' own tables."""
    counts: dict[str, int] = {}
    for service in SERVICES:
        conn = await asyncpg.connect(env[f"{service.upper()}_DATABASE_URL"], timeout=5)
        try:
            # The domain topics only: commands and their results are not part of the stream.
            counts[f"{service}_inbox"] = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE topic NOT LIKE '%operations.%' AND topic NOT LIKE '%.dlq'"
            )
            counts[f"{service}_outbox"] = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic NOT LIKE '%operations.%'"
            )
            counts[f"{service}_unpublished"] = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            if service == "notification":
                counts["emails_pending"] = await conn.fetchval(
                    "SELECT count(*) FROM emails WHERE status = 'pending'"
                )
        finally:
            await conn.close()
    return counts


def is_drained(c: dict[str, int], inbound: int) -> bool:
    return (
        c["registration_inbox"] >= inbound
        and c["funding_inbox"] == c["registration_outbox"]
        and c["notification_inbox"] == c["registration_outbox"] + c["funding_outbox"]
        and not any(c[f"{s}_unpublished"] for s in SERVICES)
        and c["emails_pending"] == 0
    )


async def wait_drained(env: dict[str, str], inbound: int, timeout: float) -> float:
    start = now()
    last: dict[str, int] = {}
    stable = 0
    while now() - start < timeout:
        try:
            counts = await drained(env, inbound)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            await asyncio.sleep(2)
            continue
        stable = stable + 1 if counts == last and is_drained(counts, inbound) else 0
        if stable >= 3:
            return now() - start
        if counts != last:
            say(f"draining: {counts}")
        last = counts
        await asyncio.sleep(2)
    raise TimeoutError(f"not drained after {timeout:.0f} s: {last}")


async def execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def replay_newest_first(bootstrap: str, topics: Topics, publisher: Publisher) -> int:
    """Replay registration's dead letters of portal.registrations one command each, newest first:
    an order other than the one they failed in. Each command waits for its result."""
    source = topics.portal_registrations
    letters = [
        record
        for record in await read_topic(
            bootstrap, dlq_topic(source), until=lambda found: True, timeout=30, settle=2
        )
        if header(record, HEADER_SERVICE) == "registration"
    ]
    letters.sort(key=lambda r: (r.timestamp, r.partition, r.offset), reverse=True)
    for record in letters:
        command_id = str(uuid.uuid4())
        data = {
            "command_id": command_id,
            "requested_by": "chaos",
            "reason": "fault suite: replay newest first",
            "topic": "portal.registrations",
            "letter_ids": [f"{record.partition}:{record.offset}"],
        }
        await publisher.send(
            topics.operations_commands, "portal.registrations", envelope("command.replay_dead_letters", data)
        )
        await read_topic(
            bootstrap,
            topics.operations_results,
            until=lambda found, wanted=command_id: any(
                v["data"]["command_id"] == wanted for v in values(found)
            ),  # type: ignore[misc]
            timeout=120,
        )
    return len(letters)


# --- checks ---------------------------------------------------------------------------------------


@dataclass
class Result:
    instances_per_service: int = 1
    events: int = 0
    messages_published: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    recovery_seconds: list[tuple[str, float]] = field(default_factory=list)
    # kill -9 of a service: seconds from its restart to the first event it processed.
    first_event_seconds: list[tuple[str, float | None]] = field(default_factory=list)
    registrations: int = 0
    funding_decisions: int = 0
    emails_expected: int = 0
    eml_files: int = 0
    lost_registration_outcomes: int = 0
    lost_funding_decisions: int = 0
    lost_emails: int = 0
    duplicate_decisions: int = 0
    duplicate_publications: int = 0
    decisions_without_seat: int = 0
    duplicate_emails: int = 0
    unexplained_duplicate_emails: int = 0
    parked_emails: int = 0
    overdrafts: int = 0
    quota_exceeded: int = 0
    invariant_violations: int = 0
    order_violations: int = 0
    final_state_differences: int = 0
    dead_letters_replayed: int = 0
    budget_bound: bool = False
    drain_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def problem(result: Result, message: str) -> None:
    """Keep the first few problems of each kind (the text before its first colon)."""
    kind = message.split(":", 1)[0]
    if sum(p.split(":", 1)[0] == kind for p in result.problems) < 15:
        result.problems.append(message)


def check_decisions(
    result: Result, outcomes: list[dict[str, Any]], decisions: list[dict[str, Any]], submitted: set[str]
) -> None:
    decided = {e["data"]["registration_id"] for e in outcomes if e["event_type"] != "registration.withdrawn"}
    for rid in sorted(submitted - decided):
        result.lost_registration_outcomes += 1
        problem(result, f"lost: {rid} has no registration outcome")
    accepted = {e["data"]["registration_id"] for e in outcomes if e["event_type"] == "registration.accepted"}
    per_registration: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in {e["event_id"]: e for e in decisions}.values():  # copies are counted elsewhere
        per_registration[event["data"]["registration_id"]].append(event)
    for rid in sorted(accepted):
        history = per_registration.get(rid, [])
        first = first_decisions(history)
        if not first:
            result.lost_funding_decisions += 1
            problem(result, f"lost: accepted {rid} has no funding decision")
        elif len(first) > 1:
            result.duplicate_decisions += len(first) - 1
            problem(result, f"duplicate: {rid} has {len(first)} first decisions")
        approvals = sum(e["event_type"] == "funding.approved" for e in history)
        releases = sum(e["event_type"] == "funding.released" for e in history)
        if approvals > 1 or releases > approvals:
            result.duplicate_decisions += 1
            problem(result, f"duplicate: {rid} approved {approvals}x, released {releases}x")
    for rid in sorted(set(per_registration) - accepted):
        # Funding decides on registration.accepted only: a seat-waitlisted registration has none.
        result.decisions_without_seat += 1
        problem(result, f"funding decided on {rid}, which never got a seat (registration.accepted)")


async def outbox_history(dsn: str) -> list[Produced]:
    """A service's outbox rows in id order: what it produced, for the history checker."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, convert_from(message_key, 'UTF8') AS k, convert_from(payload, 'UTF8') AS p"
            " FROM outbox WHERE event_type NOT LIKE 'result.%' ORDER BY id"
        )
    finally:
        await conn.close()
    return [Produced(row["id"], row["k"], json.loads(row["p"])) for row in rows]


def count_violations(result: Result, violations: list[Violation]) -> None:
    for violation in violations:
        if violation.kind == "order":
            result.order_violations += 1
        elif violation.kind == "final state":
            result.final_state_differences += 1
        else:
            result.invariant_violations += 1
        result.overdrafts += violation.kind == "budget"
        result.quota_exceeded += violation.kind == "quota"
        problem(result, f"{violation.kind}: {violation.detail}")


async def check_history(
    result: Result,
    env: dict[str, str],
    *,
    budgets: dict[str, int | None],
    capacities: dict[str, int],
    delivered: dict[str, list[dict[str, Any]]],
) -> None:
    """Seats, quota and budget at every prefix; per-key order on every topic the services write."""
    produced = {service: await outbox_history(env[f"{service.upper()}_DATABASE_URL"]) for service in SERVICES}
    count_violations(result, seat_violations(produced["registration"], capacities))
    count_violations(result, funding_violations(produced["funding"], quota=QUOTA, budgets=budgets))
    for service, topic in (
        ("registration", "registration.events"),
        ("funding", "funding.decisions"),
        ("notification", "notification.events"),
    ):
        count_violations(result, order_violations(topic, produced[service], delivered[topic]))
    sign = {"funding.approved": 1, "funding.released": -1}
    committed_2023 = sum(
        sign[row.event_type] * row.data["amount_cents"]
        for row in produced["funding"]
        if row.event_type in sign and row.data["period_id"] == "2023"
    )
    budget_2023 = budgets.get("2023")
    result.budget_bound = budget_2023 is not None and committed_2023 + FEE_CENTS // 2 > budget_2023


async def check_final_state(
    result: Result,
    env: dict[str, str],
    *,
    bootstrap: str,
    topics: Topics,
    outcomes: list[dict[str, Any]],
    programme: Path,
    directory: Directory,
) -> None:
    """Registration's and funding's final states against their pure domains, each fed its inputs
    in the order it committed them (tests/reliability/model.py)."""
    conn = await asyncpg.connect(env["REGISTRATION_DATABASE_URL"])
    try:
        registrations = registration_state([dict(row) for row in await conn.fetch(REGISTRATION_STATE)])
        seats = {row["seminar_id"]: row["accepted_count"] for row in await conn.fetch(SEMINAR_SEATS)}
        claimed_portal = [(row["event_id"], row["topic"]) for row in await conn.fetch(REGISTRATION_INPUTS)]
    finally:
        await conn.close()
    portal = {
        str(e["event_id"]): e
        for topic in (topics.portal_seminars, topics.portal_registrations)
        for e in await read_history(bootstrap, topic)
    }
    registration_model = replay_registration(claimed_portal, portal, directory, topics)
    count_violations(result, differences("registration", registrations, registration_model.outcomes))
    count_violations(result, differences("seats taken in", seats, registration_model.seats))

    conn = await asyncpg.connect(env["FUNDING_DATABASE_URL"])
    try:
        system = funding_state([dict(row) for row in await conn.fetch(FUNDING_STATE)])
        claimed = [row["event_id"] for row in await conn.fetch(FUNDING_INPUTS)]
    finally:
        await conn.close()
    events = {str(e["event_id"]): e for e in outcomes}
    model = replay_funding(
        claimed, events, load_program(programme), directory, env.get("FUNDING_PARTICIPANT_KEY_FILE")
    )
    count_violations(result, final_state_differences(system, model))


MESSAGE_ID = re.compile(r"<([0-9a-f-]{36})@")


def check_emails(
    result: Result,
    *,
    outcomes: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    notifications: list[dict[str, Any]],
    mail_dir: Path,
    faults: list[Fault],
) -> None:
    sent = {e["data"]["notification_id"] for e in notifications if e["event_type"] == "notification.sent"}
    failed = {e["data"]["notification_id"] for e in notifications if e["event_type"] == "notification.failed"}
    result.parked_emails = len(failed - sent)
    expected: dict[str, str] = {}
    for event in {e["event_id"]: e for e in [*outcomes, *decisions]}.values():
        template = template_for(event["event_type"], bool(event["data"].get("promoted", False)))
        expected[str(notification_id(uuid.UUID(event["event_id"]), template))] = event["data"][
            "registration_id"
        ]
    result.emails_expected = len(expected)
    copies: dict[str, list[float]] = defaultdict(list)
    parser = BytesHeaderParser()
    for path in mail_dir.glob("*.eml"):
        with path.open("rb") as handle:
            found = MESSAGE_ID.search(parser.parse(handle).get("Message-ID", ""))
        if found:
            copies[found.group(1)].append(path.stat().st_mtime)
    result.eml_files = sum(len(times) for times in copies.values())
    for nid, rid in sorted(expected.items()):
        if nid not in sent or nid not in copies:
            result.lost_emails += 1
            problem(
                result, f"lost email {nid} for {rid} (event recorded: {nid in sent}, .eml: {nid in copies})"
            )
    # What can end a send between the server's 250 and the commit that records it: the sender's
    # process dies or stops past its lease, or the database goes away (ADR 0004).
    crashes = [
        instant
        for f in faults
        for instant in f.crash_instants
        if f.kind
        in (
            "kill -9 notification",
            "kill -9 during rebalance notification",
            "SIGSTOP notification",
            "pg_ctl stop -m immediate",
            LONG_POSTGRES_OUTAGE,
        )
    ]
    for nid, times in copies.items():
        times.sort()
        for later in times[1:]:
            result.duplicate_emails += 1
            first = times[0]
            if not any(
                first - 2 <= crash <= later and crash - first <= SEND_AND_RECORD_WINDOW for crash in crashes
            ):
                result.unexplained_duplicate_emails += 1
                problem(
                    result,
                    f"duplicate email {nid} at {first:.1f} and {later:.1f}: "
                    "no crash in the send-and-record window",
                )


def programme_with_budget(var_dir: Path, budget_2023: int) -> tuple[Path, dict[str, int | None]]:
    text = PROGRAMME.read_text(encoding="utf-8").replace(
        "budget_cents = 20_000_000", f"budget_cents = {budget_2023}"
    )
    path = var_dir / "chaos-programme.toml"
    path.write_text(text, encoding="utf-8")
    periods = tomllib.loads(text)["periods"]
    return path, {p["id"]: p.get("budget_cents") for p in periods}


# --- the run --------------------------------------------------------------------------------------


def fresh_state(var_dir: Path) -> None:
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    os.chmod(var_dir, 0o755)  # the postgres system user must reach its data folder


async def run(  # noqa: PLR0915
    events: int, *, short: bool, var_dir: Path, seed: int, rate: float, replicas: int
) -> Result:
    rng = random.Random(seed)
    result = Result(instances_per_service=replicas)
    fresh_state(var_dir)
    env = stack_env(var_dir, PORT_OFFSET)
    directory = load_directory(env["GV100AD_FILE"])
    stream = build_stream(directory, events, seed)
    programme, budgets = programme_with_budget(var_dir, stream.budget_2023)
    env.update(
        {
            "FUNDING_PROGRAM_FILE": str(programme),
            "NOTIFICATION_BACKOFF_BASE_SECONDS": "1",
            "NOTIFICATION_BACKOFF_MAX_SECONDS": "5",
            "NOTIFICATION_MAX_ATTEMPTS": "100",  # 30 s of refusals must not park an email
            "LOG_LEVEL": "WARNING",
            "REPLICAS": str(replicas),
        }
    )
    os.environ.update(env)  # deploy.local.stack finds the state folder there
    stack = Stack(env, var_dir)
    os.environ.update(stack.credentials_env())  # this process drives the stack as its admin
    topics = Topics()
    say(f"starting the stack in {var_dir}")
    up = stack.run("-m", "deploy.local.stack", "up", check=False)
    if up.returncode != 0:
        raise RuntimeError(up.stdout + up.stderr)
    publisher = Publisher(stack.bootstrap)
    try:
        probe_seminar = seminar_data("CHAOS-PROBE", date(2022, 6, 1), PROBE_CAPACITY, "Probe")
        for topic, key, value in [
            *stream.seminars,
            ("portal.seminars", "CHAOS-PROBE", envelope("seminar.published", probe_seminar)),
        ]:
            await publisher.send(topics.prefix + topic, key, value)
            await publisher.send(topics.prefix + topic, key, value)
        # Kafka orders nothing across topics: no registration may race its seminar's offer.
        await wait_until_consumed(stack.bootstrap, topics, "registration", "portal.seminars")
        await execute(env["REGISTRATION_DATABASE_URL"], POISON_TRIGGER)
        messages = twice(stream.messages, rng)
        chaos = Chaos(stack, topics, publisher, rng, replicas)
        kinds = schedule(short, rng, replicas)
        duration = len(messages) / rate
        say(f"{stream.events} events, {len(messages)} messages over about {duration:.0f} s, faults: {kinds}")

        async def faults() -> None:
            slot = duration / (len(kinds) + 1)
            for kind in kinds:
                await asyncio.sleep(rng.uniform(0.3, 1.0) * slot)
                await chaos.inject(kind)

        injecting = asyncio.create_task(faults())
        started = now()
        for index, (topic, key, value) in enumerate(messages):
            await publisher.send(topics.prefix + topic, key, value)
            lag = started + index / rate - now()
            if lag > 0:
                await asyncio.sleep(lag)
        say("stream published")
        await injecting
        inbound = stream.events + 1 + len(chaos.probe_ids)
        drain_timeout = 900 if not short else 150
        result.drain_seconds = round(
            await wait_drained(env, inbound - len(stream.poisoned), drain_timeout), 1
        )
        await execute(env["REGISTRATION_DATABASE_URL"], CURE_POISON)
        result.dead_letters_replayed = await replay_newest_first(stack.bootstrap, topics, publisher)
        await wait_drained(env, inbound, drain_timeout)
        if chaos.probes:
            _, late = await asyncio.wait(chaos.probes, timeout=120)
            for task in late:  # a probe that never got through: no recovery time, a failure
                task.cancel()
                problem(result, "a probe registration never got through after a fault")
        result.events = stream.events + 1 + len(chaos.probe_ids)
        result.messages_published = publisher.sent
        result.faults = dict(Counter(f.kind for f in chaos.faults))
        result.recovery_seconds = [(f.kind, f.recovery_seconds) for f in chaos.faults]
        if chaos.watchers:
            await asyncio.wait(chaos.watchers)  # each gives up after its own timeout
        result.first_event_seconds = [
            (f.kind, f.first_event_seconds)
            for f in chaos.faults
            if f.kind.removeprefix("kill -9 ") in SERVICES
        ]
        outcomes = await read_history(stack.bootstrap, topics.registration_events)
        decisions = await read_history(stack.bootstrap, topics.funding_decisions)
        notifications = await read_history(stack.bootstrap, topics.notification_events)
        for name, history in (
            ("registration.events", outcomes),
            ("funding.decisions", decisions),
            ("notification.events", notifications),
        ):
            copies = sum(n - 1 for n in Counter(e["event_id"] for e in history).values())
            result.duplicate_publications += copies
            if copies:
                problem(result, f"{copies} events published twice on {name}")
        result.registrations = len(stream.submitted | chaos.probe_ids)
        result.funding_decisions = len({e["event_id"] for e in decisions})
        check_decisions(result, outcomes, decisions, stream.submitted | chaos.probe_ids)
        await check_history(
            result,
            env,
            budgets=budgets,
            capacities={**stream.capacities, "CHAOS-PROBE": PROBE_CAPACITY},
            delivered={
                "registration.events": outcomes,
                "funding.decisions": decisions,
                "notification.events": notifications,
            },
        )
        await check_final_state(
            result,
            env,
            bootstrap=stack.bootstrap,
            topics=topics,
            outcomes=outcomes,
            programme=programme,
            directory=directory,
        )
        check_emails(
            result,
            outcomes=outcomes,
            decisions=decisions,
            notifications=notifications,
            mail_dir=stack.mail_dir,
            faults=chaos.faults,
        )
        if result.parked_emails:
            problem(result, f"{result.parked_emails} emails parked")
    finally:
        await publisher.close()
        down = stack.run("-m", "deploy.local.stack", "down", check=False)
        say("stack stopped" if down.returncode == 0 else f"down failed: {down.stdout}{down.stderr}")
    return result


def table(result: Result) -> str:
    rows = [
        ("events (distinct inbound)", result.events),
        ("instances per service", result.instances_per_service),
        ("messages published (each twice)", result.messages_published),
        ("registrations", result.registrations),
        ("funding decisions", result.funding_decisions),
        ("emails expected / .eml files", f"{result.emails_expected} / {result.eml_files}"),
        *((f"faults: {kind}", count) for kind, count in sorted(result.faults.items())),
        ("lost registration outcomes", result.lost_registration_outcomes),
        ("lost funding decisions", result.lost_funding_decisions),
        ("lost emails", result.lost_emails),
        ("duplicate decisions", result.duplicate_decisions),
        ("duplicate publications", result.duplicate_publications),
        ("decisions without a seat", result.decisions_without_seat),
        ("duplicate emails (by Message-ID)", result.duplicate_emails),
        ("  of them unexplained", result.unexplained_duplicate_emails),
        ("parked emails", result.parked_emails),
        ("overdrafts", result.overdrafts),
        ("quota exceeded", result.quota_exceeded),
        ("invariant violations (seats, quota, budget)", result.invariant_violations),
        ("order violations (per key)", result.order_violations),
        ("final-state differences (vs the model)", result.final_state_differences),
        ("2023 budget bound", "yes" if result.budget_bound else "no"),
        ("drain after the stream (s)", result.drain_seconds),
        ("dead letters replayed, newest first", result.dead_letters_replayed),
        ("longest recovery (s)", max((seconds for _, seconds in result.recovery_seconds), default=0.0)),
        *((f"recovery after {kind} (s)", seconds) for kind, seconds in result.recovery_seconds),
        *(
            (f"restart to first event, {kind} (s)", "none" if seconds is None else seconds)
            for kind, seconds in result.first_event_seconds
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"| {name:<{width}} | {value!s:>14} |" for name, value in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--short",
        action="store_true",
        help="three faults only (kill -9 funding, SMTP 451, SIGSTOP registration)",
    )
    parser.add_argument("--var-dir", type=Path, default=REPO_ROOT / "var" / "chaos-stack")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replicas", type=int, default=2, help="instances of every service")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON too")
    args = parser.parse_args(argv)
    configure_logging("chaos", "ERROR")  # the model runs the real appliers: none of their logs
    result = asyncio.run(
        run(
            args.events,
            short=args.short,
            var_dir=args.var_dir.resolve(),
            seed=args.seed,
            rate=args.rate,
            replicas=args.replicas,
        )
    )
    print(table(result))
    for line in result.problems:
        print(f"FAILED: {line}")
    if args.json:
        args.json.write_text(json.dumps({**asdict(result), "ok": result.ok}, indent=2))
    print("all checks passed" if result.ok else "CHECKS FAILED")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
