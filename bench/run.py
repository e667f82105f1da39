"""One benchmark run against a running bench stack: the floors, bursts, latency phases."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.floor import KINDS, FloorResult, run_floor
from bench.history import seed as seed_history
from bench.hops import breakdown, record
from bench.observe import (
    CpuMeter,
    Mail,
    RssSampler,
    Seen,
    TopicTail,
    cores_busy,
    cpu_ms_per_event,
    jit_compiler_seconds,
    mail_names,
    mails,
    phase_of,
)
from bench.stats import Latencies, per_second, percentile_series, rate, ratio
from bench.workload import Portal, Workload, bench_seminars
from lotse.status import wait_until_consumed
from shared.directory import load_directory
from shared.topics import Topics
from tests.support.stack import Stack

SERVICES = ("registration", "funding", "notification")
# The processes the efficiency target counts: the SMTP sink and the benchmark are left out.
SYSTEM = (*SERVICES, "kafka", "postgres")
EMAILS_PER_REGISTRATION = 2  # the registration's outcome and the funding decision
WARMUP = 200
# The warm-up then offers this rate in rounds until the broker's JIT compilers settle: a fresh
# broker's C2 compiler took a third of a core for two minutes at 100/s, and its compiled code
# spends less than the early one (the broker 73 -> 38 % of a core, decisions' p50 250 -> 140 ms).
# A long-running broker pays that once; the phases measure it warm.
WARMUP_RATE = 100.0
WARMUP_ROUND_SECONDS = 10.0
JIT_SETTLED_CORES = 0.05

# The hop instants kept in the databases (bench/hops.py), for one phase's registrations.
REGISTRATION_OUTCOMES = """
SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' AS registration_id, created_at
FROM outbox WHERE topic LIKE '%registration.events'
"""
FIRST_DECISIONS = """
SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'registration_id' AS registration_id,
       event_id, created_at
FROM outbox WHERE topic LIKE '%funding.decisions' ORDER BY id
"""
LETTERS = "SELECT registration_id, event_id, id, created_at FROM emails WHERE registration_id LIKE $1"
WAL_POSITION = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS position"


@dataclass(frozen=True)
class Options:
    bursts: tuple[int, ...]
    steady_rates: tuple[float, ...]
    steady_seconds: float
    floor_events: int
    seminars: int
    stall_seconds: float
    timeout_seconds: float
    history: int = 0  # earlier registrations under the bursts (bench/history.py)
    warmup_seconds: float = 180.0  # the longest wait for the broker's JIT to settle


@dataclass
class Drain:
    """How far a phase got."""

    expected: int
    decisions: int = 0
    emails: int = 0


@dataclass
class Results:
    options: dict[str, Any]
    tuning: dict[str, str]
    floors: dict[str, Any] = field(default_factory=dict)  # by kind (bench/floor.py)
    bursts: dict[str, Any] = field(default_factory=dict)  # by size
    steady: dict[str, Any] = field(default_factory=dict)  # by offered rate
    peak_rss_mb: dict[str, float | None] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)


def system_cpu_ms(spent: dict[str, float]) -> float | None:
    """CPU per registration of the services' instances, Kafka and PostgreSQL together."""
    counted = [ms for name, ms in spent.items() if name.split("-", 1)[0] in SYSTEM]
    return sum(counted) if counted else None


def email_latencies(
    phase_mails: Sequence[Mail], submitted: dict[str, float], phase: str
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[float]]:
    """For the phase's registrations: (submitted, latency) to the first email, to the last one of
    those whose emails all arrived, and the instant each email was accepted."""
    first: dict[str, float] = {}
    last: dict[str, float] = defaultdict(float)
    received: Counter[str] = Counter()
    accepted = []
    for mail in phase_mails:
        registration_id = mail.registration_id()
        if registration_id is None or phase_of(registration_id) != phase or registration_id not in submitted:
            continue
        accepted.append(mail.accepted)
        first[registration_id] = min(first.get(registration_id, mail.accepted), mail.accepted)
        last[registration_id] = max(last[registration_id], mail.accepted)
        received[registration_id] += 1
    to_first = [(submitted[rid], at - submitted[rid]) for rid, at in first.items()]
    complete = [rid for rid, count in received.items() if count >= EMAILS_PER_REGISTRATION]
    to_last = [(submitted[rid], last[rid] - submitted[rid]) for rid in complete]
    return to_first, to_last, accepted


def record_instants(seen: Sequence[Seen]) -> list[tuple[str, float]]:
    """(registration id, record timestamp) of records read by a tail."""
    return [(s.registration_id, s.kafka_ts) for s in seen]


@dataclass
class Bench:
    stack: Stack
    options: Options
    workload: Workload
    portal: Portal
    decisions: TopicTail  # funding.decisions
    outcomes: TopicTail  # registration.events
    results: Results
    log: Callable[[str], None]
    cpu: CpuMeter
    floors: dict[str, FloorResult]

    @property
    def mail_dir(self) -> Path:
        return self.stack.mail_dir

    async def drain(self, before: set[str], phase: str, expected: int) -> Drain:
        """Wait until every decision and email of the phase arrived, or progress stalls."""
        drain = Drain(expected)
        deadline = time.monotonic() + self.options.timeout_seconds
        progress_at = time.monotonic()
        last = (-1, -1)
        while time.monotonic() < deadline:
            drain.decisions = self.decisions.count(phase)
            drain.emails = len(mail_names(self.mail_dir) - before)
            if (drain.decisions, drain.emails) != last:
                last = (drain.decisions, drain.emails)
                progress_at = time.monotonic()
            if drain.decisions >= expected and drain.emails >= expected * EMAILS_PER_REGISTRATION:
                break
            if time.monotonic() - progress_at > self.options.stall_seconds:
                self.log(f"{phase}: no progress for {self.options.stall_seconds:.0f} s, giving up")
                break
            await asyncio.sleep(1.0)  # a scan of the mail folder costs the benchmark CPU the stack shares
        # A sink may create a message's file before the message is complete: let the last settle.
        await asyncio.sleep(1.0)
        return drain

    async def warm_up(self) -> None:
        """A burst, then rounds of steady load until the broker's JIT compilers fall quiet (or
        `warmup_seconds` pass); nothing of it is measured."""
        before = mail_names(self.mail_dir)
        topic = self.portal.topics.portal_registrations
        await self.portal.burst(topic, self.workload.registrations(WARMUP, "warmup"))
        registrations, started, compiling = WARMUP, time.monotonic(), None
        broker = self.stack.pids().get("kafka")

        def compiled() -> float | None:
            return None if broker is None else jit_compiler_seconds(broker)

        while time.monotonic() - started < self.options.warmup_seconds:
            compiled_before, round_started = compiled(), time.monotonic()
            await self.portal.steady(topic, self.workload, WARMUP_RATE, WARMUP_ROUND_SECONDS, "warmup")
            registrations += int(WARMUP_RATE * WARMUP_ROUND_SECONDS)
            compiled_after = compiled()
            if compiled_before is None or compiled_after is None:
                break  # no broker of ours to watch: one round
            compiling = (compiled_after - compiled_before) / (time.monotonic() - round_started)
            if compiling < JIT_SETTLED_CORES:
                break
        warm = await self.drain(before, "warmup", registrations)
        seconds = time.monotonic() - started
        self.results.warmup = {
            "registrations": registrations,
            "seconds": seconds,
            "jit_compiler_cores_last_round": compiling,
            **asdict(warm),
        }
        settled = "?" if compiling is None else f"{compiling:.0%}"
        self.log(
            f"warm-up: {registrations:,} registrations in {seconds:.0f} s, the broker's JIT "
            f"compilers at {settled} of a core in the last round; {warm.decisions} decisions, "
            f"{warm.emails} emails"
        )

    async def burst(self, count: int) -> None:
        phase = f"burst{count}"
        self.log(f"burst: {count:,} registrations")
        before = mail_names(self.mail_dir)
        topic = self.portal.topics.portal_registrations
        cpu_before = self.cpu.snapshot()
        wal_before = await self.wal_position()
        start = await self.portal.burst(topic, self.workload.registrations(count, phase))
        published = time.time()
        drain = await self.drain(before, phase, count)
        cpu_after = self.cpu.snapshot()
        wal_written = await self.wal_position() - wal_before
        drained = time.time()
        decided = [s.kafka_ts for s in self.decisions.of_phase(phase)]
        accepted = [m.accepted for m in mails(self.mail_dir, mail_names(self.mail_dir) - before)]
        decisions_per_s = rate(len(decided), start, max(decided, default=None))
        emailed_per_s = rate(len(accepted) // EMAILS_PER_REGISTRATION, start, max(accepted, default=None))
        spent = cpu_ms_per_event(cpu_before, cpu_after, count)
        raw = self.floors.get("raw")
        framework = self.floors.get("faststream")
        figures = {
            **asdict(drain),
            "complete": len(decided) >= count and len(accepted) >= count * EMAILS_PER_REGISTRATION,
            "publish_seconds": published - start,
            "decision_seconds": None if not decided else max(decided) - start,
            "email_seconds": None if not accepted else max(accepted) - start,
            "decisions_per_s": decisions_per_s,
            "emails_per_s": rate(len(accepted), start, max(accepted, default=None)),
            "registrations_emailed_per_s": emailed_per_s,
            "decisions_to_raw_floor": ratio(decisions_per_s, raw.per_second if raw else None),
            "emailed_to_raw_floor": ratio(emailed_per_s, raw.per_second if raw else None),
            "decisions_to_faststream_floor": ratio(
                decisions_per_s, framework.per_second if framework else None
            ),
            "emailed_to_faststream_floor": ratio(emailed_per_s, framework.per_second if framework else None),
            # Where the machine's time went: per registration, and the cores busy on average.
            "cpu_ms_per_registration": spent,
            "system_cpu_ms_per_registration": system_cpu_ms(spent),
            "cores_busy": cores_busy(cpu_before, cpu_after, drained - start),
            # What the three databases wrote to their (shared) cluster's WAL, per registration.
            "wal_kb_per_registration": wal_written / 1024 / count,
        }
        self.results.bursts[str(count)] = figures
        self.log(f"burst {count:,}: {figures}")
        self.results.series[f"{phase}_decisions_per_s"] = per_second(decided, start)
        self.results.series[f"{phase}_emails_per_s"] = per_second(accepted, start)

    async def wal_position(self) -> int:
        """The cluster's WAL position in bytes (one cluster holds the three databases)."""
        (row,) = await _fetch(self.stack.env["NOTIFICATION_DATABASE_URL"], WAL_POSITION)
        return int(row["position"])

    async def steady(self, offered: float) -> None:
        options = self.options
        phase = f"steady{offered:.0f}"
        self.log(f"latency: {offered:.0f}/s for {options.steady_seconds:.0f} s")
        before = mail_names(self.mail_dir)
        expected = int(offered * options.steady_seconds)
        topic = self.portal.topics.portal_registrations
        cpu_before = self.cpu.snapshot()
        start = await self.portal.steady(topic, self.workload, offered, options.steady_seconds, phase)
        offered_end = time.time()
        drain = await self.drain(before, phase, expected)
        cpu_after = self.cpu.snapshot()
        drained = time.time()
        spent = cpu_ms_per_event(cpu_before, cpu_after, expected)
        submitted = self.workload.submitted_at
        decisions = self.decisions.of_phase(phase)
        decision_samples = [
            (submitted[s.registration_id], s.kafka_ts - submitted[s.registration_id]) for s in decisions
        ]
        phase_mails = mails(self.mail_dir, mail_names(self.mail_dir) - before)
        to_first, to_last, accepted = email_latencies(phase_mails, submitted, phase)
        drain.emails = len(accepted)
        figures = {
            **asdict(drain),
            "complete": drain.decisions >= expected and drain.emails >= expected * EMAILS_PER_REGISTRATION,
            "offered_per_s": expected / (offered_end - start),
            "decision_latency_s": asdict(Latencies.of([v for _, v in decision_samples])),
            "first_email_latency_s": asdict(Latencies.of([v for _, v in to_first])),
            "last_email_latency_s": asdict(Latencies.of([v for _, v in to_last])),
            "hops": breakdown(await self.hop_instants(phase, phase_mails)),
            # From the first registration to the last email: what a registration costs at this
            # load (small batches cost more per record than a burst's).
            "cpu_ms_per_registration": spent,
            "system_cpu_ms_per_registration": system_cpu_ms(spent),
            "cores_busy": cores_busy(cpu_before, cpu_after, drained - start),
        }
        self.results.steady[f"{offered:.0f}"] = figures
        self.log(f"latency {offered:.0f}/s: {figures}")
        series = self.results.series
        for q in (50, 99):
            series[f"{phase}_decision_p{q}"] = percentile_series(decision_samples, start, q)
            series[f"{phase}_first_email_p{q}"] = percentile_series(to_first, start, q)

    async def hop_instants(self, phase: str, phase_mails: Sequence[Mail]) -> dict[str, dict[str, float]]:
        """Each registration's instants along the decision letter's path (bench/hops.py)."""
        env = self.stack.env
        pattern = f"BENCH-{phase}-%"
        paths: dict[str, dict[str, float]] = {}
        submitted = self.workload.submitted_at
        record(paths, "occurred_at", [(rid, at) for rid, at in submitted.items() if phase_of(rid) == phase])
        rows = await _fetch(env["REGISTRATION_DATABASE_URL"], REGISTRATION_OUTCOMES)
        mine = [row for row in rows if phase_of(str(row["registration_id"])) == phase]
        record(
            paths, "registration_commit", [(r["registration_id"], r["created_at"].timestamp()) for r in mine]
        )
        record(paths, "registration_publish", record_instants(self.outcomes.of_phase(phase)))
        first_decision: dict[str, Any] = {}
        decisions = []
        for row in await _fetch(env["FUNDING_DATABASE_URL"], FIRST_DECISIONS):
            registration_id = str(row["registration_id"])
            if phase_of(registration_id) == phase and registration_id not in first_decision:
                first_decision[registration_id] = row["event_id"]
                decisions.append((registration_id, row["created_at"].timestamp()))
        record(paths, "funding_commit", decisions)
        record(paths, "funding_publish", record_instants(self.decisions.of_phase(phase)))
        letters: dict[str, str] = {}  # the decision letter's id -> its registration
        committed = []
        for row in await _fetch(env["NOTIFICATION_DATABASE_URL"], LETTERS, pattern):
            if first_decision.get(row["registration_id"]) == row["event_id"]:
                letters[str(row["id"])] = row["registration_id"]
                committed.append((row["registration_id"], row["created_at"].timestamp()))
        record(paths, "notification_commit", committed)
        sent = [
            (letters[letter], mail.accepted)
            for mail in phase_mails
            if (letter := mail.letter_id()) in letters
        ]
        record(paths, "smtp_accepted", sent)
        return paths


async def _fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def run(stack: Stack, options: Options, tuning: dict[str, str], log: Callable[[str], None]) -> Results:
    topics = Topics()
    results = Results(options=asdict(options), tuning=tuning)
    directory = load_directory(stack.env["GV100AD_FILE"])
    warmup = WARMUP + int(WARMUP_RATE * (options.warmup_seconds + WARMUP_ROUND_SECONDS))
    total = warmup + sum(options.bursts) + int(sum(options.steady_rates) * options.steady_seconds)
    workload = Workload.from_directory(directory, bench_seminars(options.seminars, total))

    async with Portal(stack.bootstrap, topics) as portal:
        log(f"publishing {len(workload.seminars)} seminars")
        await portal.publish_seminars(workload.seminars)
        await wait_until_consumed(stack.bootstrap, topics, "registration", "portal.seminars")
    if options.history:
        await seed_history(stack.env, options.history, workload.kommune_keys, log)

    floors = {}
    for kind in KINDS:
        log(f"floor: {options.floor_events:,} events through three {kind} pass-through hops")
        floors[kind] = await run_floor(
            stack.env, kind, options.floor_events, workload, options.timeout_seconds
        )
        results.floors[kind] = asdict(floors[kind])
        log(f"floor: {floors[kind]}")

    sampler = RssSampler({name: pid for name, pid in stack.pids().items() if name.split("-")[0] in SERVICES})
    sampler.start()
    decisions = TopicTail(stack.bootstrap, topics.funding_decisions)
    outcomes = TopicTail(stack.bootstrap, topics.registration_events)
    await decisions.start()
    await outcomes.start()
    try:
        async with Portal(stack.bootstrap, topics) as portal:
            bench = Bench(
                stack,
                options,
                workload,
                portal,
                decisions,
                outcomes,
                results,
                log,
                CpuMeter(stack.pids()),
                floors,
            )
            await bench.warm_up()
            # Latency first, on databases as the warm-up left them; then the bursts.
            for offered in options.steady_rates:
                await bench.steady(offered)
            for size in options.bursts:
                await bench.burst(size)
    finally:
        results.peak_rss_mb = sampler.peaks()
        results.series["rss_mb"] = dict(sampler.samples)
        await sampler.stop()
        await decisions.stop()
        await outcomes.stop()
    return results
