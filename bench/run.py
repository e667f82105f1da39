"""One benchmark run against a running bench stack: floor, burst, steady load."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.floor import FloorResult, run_floor
from bench.observe import (
    CpuMeter,
    RssSampler,
    TopicTail,
    cores_busy,
    cpu_ms_per_event,
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
EMAILS_PER_REGISTRATION = 2  # the registration's outcome and the funding decision
WARMUP = 200


@dataclass(frozen=True)
class Options:
    burst: int
    steady_rate: float
    steady_seconds: float
    floor_events: int
    seminars: int
    stall_seconds: float
    timeout_seconds: float


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
    floor: dict[str, Any] = field(default_factory=dict)
    burst: dict[str, Any] = field(default_factory=dict)
    steady: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: dict[str, float | None] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)


def _email_latencies(
    mail_dir: Path, names: set[str], submitted: dict[str, float], phase: str
) -> tuple[list[tuple[float, float]], list[float]]:
    """For the phase's registrations whose emails all arrived: (submitted, latency) to the last one,
    and the instant every email of the phase was accepted. Other phases' emails are left out."""
    last: dict[str, float] = defaultdict(float)
    received: Counter[str] = Counter()
    accepted = []
    for mail in mails(mail_dir, names):
        registration_id = mail.registration_id()
        if registration_id is None or phase_of(registration_id) != phase or registration_id not in submitted:
            continue
        accepted.append(mail.accepted)
        last[registration_id] = max(last[registration_id], mail.accepted)
        received[registration_id] += 1
    complete = [rid for rid, count in received.items() if count >= EMAILS_PER_REGISTRATION]
    return [(submitted[rid], last[rid] - submitted[rid]) for rid in complete], accepted


@dataclass
class Bench:
    stack: Stack
    options: Options
    workload: Workload
    portal: Portal
    tail: TopicTail
    results: Results
    log: Callable[[str], None]
    cpu: CpuMeter

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
            drain.decisions = self.tail.count(phase)
            drain.emails = len(mail_names(self.mail_dir) - before)
            if (drain.decisions, drain.emails) != last:
                last = (drain.decisions, drain.emails)
                progress_at = time.monotonic()
            if drain.decisions >= expected and drain.emails >= expected * EMAILS_PER_REGISTRATION:
                break
            if time.monotonic() - progress_at > self.options.stall_seconds:
                self.log(f"{phase}: no progress for {self.options.stall_seconds:.0f} s, giving up")
                break
            await asyncio.sleep(1.0)
        return drain

    async def warm_up(self) -> None:
        before = mail_names(self.mail_dir)
        topic = self.portal.topics.portal_registrations
        await self.portal.burst(topic, self.workload.registrations(WARMUP, "warmup"))
        warm = await self.drain(before, "warmup", WARMUP)
        self.log(f"warm-up: {warm.decisions} decisions, {warm.emails} emails")

    async def burst(self, floor: FloorResult) -> None:
        count = self.options.burst
        self.log(f"burst: {count:,} registrations")
        before = mail_names(self.mail_dir)
        topic = self.portal.topics.portal_registrations
        cpu_before = self.cpu.snapshot()
        start = await self.portal.burst(topic, self.workload.registrations(count, "burst"))
        published = time.time()
        drain = await self.drain(before, "burst", count)
        cpu_after = self.cpu.snapshot()
        drained = time.time()
        decided = [s.kafka_ts for s in self.tail.of_phase("burst")]
        accepted = [m.accepted for m in mails(self.mail_dir, mail_names(self.mail_dir) - before)]
        decisions_per_s = rate(len(decided), start, max(decided, default=None))
        emailed_per_s = rate(len(accepted) // EMAILS_PER_REGISTRATION, start, max(accepted, default=None))
        self.results.burst = {
            **asdict(drain),
            "complete": len(decided) >= count and len(accepted) >= count * EMAILS_PER_REGISTRATION,
            "publish_seconds": published - start,
            "decision_seconds": None if not decided else max(decided) - start,
            "email_seconds": None if not accepted else max(accepted) - start,
            "decisions_per_s": decisions_per_s,
            "emails_per_s": rate(len(accepted), start, max(accepted, default=None)),
            "registrations_emailed_per_s": emailed_per_s,
            "ratio_to_floor": ratio(decisions_per_s, floor.per_second),
            "emailed_ratio_to_floor": ratio(emailed_per_s, floor.per_second),
            # Where the machine's time went: per registration, and the cores busy on average.
            "cpu_ms_per_registration": cpu_ms_per_event(cpu_before, cpu_after, count),
            "cores_busy": cores_busy(cpu_before, cpu_after, drained - start),
        }
        self.log(f"burst: {self.results.burst}")
        self.results.series["decisions_per_s"] = per_second(decided, start)
        self.results.series["emails_per_s"] = per_second(accepted, start)

    async def steady(self) -> None:
        options = self.options
        self.log(f"steady: {options.steady_rate:.0f}/s for {options.steady_seconds:.0f} s")
        before = mail_names(self.mail_dir)
        expected = int(options.steady_rate * options.steady_seconds)
        topic = self.portal.topics.portal_registrations
        start = await self.portal.steady(topic, self.workload, options.steady_rate, options.steady_seconds)
        offered_end = time.time()
        drain = await self.drain(before, "steady", expected)
        submitted = self.workload.submitted_at
        decisions = self.tail.of_phase("steady")
        decision_samples = [
            (submitted[s.registration_id], s.kafka_ts - submitted[s.registration_id]) for s in decisions
        ]
        email_samples, accepted = _email_latencies(
            self.mail_dir, mail_names(self.mail_dir) - before, submitted, "steady"
        )
        drain.emails = len(accepted)
        self.results.steady = {
            **asdict(drain),
            "complete": drain.decisions >= expected and drain.emails >= expected * EMAILS_PER_REGISTRATION,
            "offered_per_s": expected / (offered_end - start),
            "decision_latency_s": asdict(Latencies.of([v for _, v in decision_samples])),
            "email_latency_s": asdict(Latencies.of([v for _, v in email_samples])),
        }
        self.log(f"steady: {self.results.steady}")
        series = self.results.series
        series["steady_decisions_per_s"] = per_second([s.kafka_ts for s in decisions], start)
        series["steady_emails_per_s"] = per_second(accepted, start)
        for q in (50, 99):
            series[f"steady_decision_p{q}"] = percentile_series(decision_samples, start, q)
            series[f"steady_email_p{q}"] = percentile_series(email_samples, start, q)


async def run(stack: Stack, options: Options, tuning: dict[str, str], log: Callable[[str], None]) -> Results:
    topics = Topics()
    results = Results(options=asdict(options), tuning=tuning)
    directory = load_directory(stack.env["GV100AD_FILE"])
    total = WARMUP + options.burst + int(options.steady_rate * options.steady_seconds)
    workload = Workload.from_directory(directory, bench_seminars(options.seminars, total))

    async with Portal(stack.bootstrap, topics) as portal:
        log(f"publishing {len(workload.seminars)} seminars")
        await portal.publish_seminars(workload.seminars)
        await wait_until_consumed(stack.bootstrap, topics, "registration", "portal.seminars")

    log(f"floor: {options.floor_events:,} events through three FastStream pass-through hops")
    floor = await run_floor(stack.env, options.floor_events, workload, options.timeout_seconds)
    results.floor = asdict(floor)
    log(f"floor: {floor}")

    sampler = RssSampler({name: pid for name, pid in stack.pids().items() if name in SERVICES})
    sampler.start()
    tail = TopicTail(stack.bootstrap, topics.funding_decisions)
    await tail.start()
    try:
        async with Portal(stack.bootstrap, topics) as portal:
            bench = Bench(stack, options, workload, portal, tail, results, log, CpuMeter(stack.pids()))
            await bench.warm_up()
            await bench.burst(floor)
            await bench.steady()
    finally:
        results.peak_rss_mb = sampler.peaks()
        results.series["rss_mb"] = dict(sampler.samples)
        await sampler.stop()
        await tail.stop()
    return results
