"""What the benchmark watches while it runs: a topic's tail, the SMTP sink's folder, the RSS and
the CPU time of each process of the stack."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import client_options


@dataclass(frozen=True)
class Seen:
    registration_id: str
    kafka_ts: float  # the record's timestamp, seconds since the epoch


@dataclass
class TopicTail:
    """Reads committed records of a topic from its end at start() on, with their timestamps."""

    bootstrap: str
    topic: str
    seen: list[Seen] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            # The records' own timestamps are what is measured, not when the tail reads them: a
            # tail that asked the broker every 20 ms (and after every commit) cost it about a
            # third of its fetch requests at 100/s, which is load the stack shares.
            fetch_min_bytes=1024 * 1024,
            fetch_max_wait_ms=500,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **client_options(),
        )
        await consumer.start()
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or [])
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batch.values():
                for record in records:
                    if record.value is None:
                        continue
                    data = json.loads(record.value).get("data", {})
                    registration_id = str(data.get("registration_id"))
                    self.seen.append(Seen(registration_id, record.timestamp / 1000))
                    self.counts[phase_of(registration_id)] += 1

    def count(self, phase: str) -> int:
        return self.counts[phase]

    def of_phase(self, phase: str) -> list[Seen]:
        return [s for s in self.seen if phase_of(s.registration_id) == phase]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


def phase_of(registration_id: str) -> str:
    """The bench's ids are "BENCH-<phase>-<number>"."""
    return registration_id.rsplit("-", 1)[0].removeprefix("BENCH-")


_REGISTRATION_HEADER = re.compile(rb"^X-Registration-ID:\s*(\S+)\s*$", re.MULTILINE | re.IGNORECASE)
# notification's Message-ID is "<letter id@domain>" (services/notification/compose.py).
_MESSAGE_ID_HEADER = re.compile(rb"^Message-ID:\s*<([0-9a-f-]{36})@", re.MULTILINE | re.IGNORECASE)
# Postfix's smtp-sink names each dump "<%Y%m%dT%H%M%S>.<random hex>" (deploy/local/stack.py).
_POSTFIX_DUMP = re.compile(r"^\d{8}T\d{6}\.[0-9a-f]+$")


@dataclass(frozen=True)
class Mail:
    path: Path
    accepted: float  # from the sink's file name stamp, else the file's mtime

    def _head(self) -> bytes:
        with self.path.open("rb") as file:
            head = file.read(8192)
        return head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]

    def registration_id(self) -> str | None:
        found = _REGISTRATION_HEADER.search(self._head())
        return found.group(1).decode() if found else None

    def letter_id(self) -> str | None:
        found = _MESSAGE_ID_HEADER.search(self._head())
        return found.group(1).decode() if found else None


def _accepted(path: Path) -> float:
    # The sink names each file "<%Y%m%dT%H%M%S%fZ>-<uuid>.eml" at the moment it accepts the message.
    try:
        return (
            datetime.strptime(path.name.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC).timestamp()
        )
    except ValueError:
        return path.stat().st_mtime


def mail_names(mail_dir: Path) -> set[str]:
    """The messages in a sink's folder: the bundled sink's .eml files or smtp-sink's dumps."""
    with os.scandir(mail_dir) as entries:
        return {
            entry.name for entry in entries if entry.name.endswith(".eml") or _POSTFIX_DUMP.match(entry.name)
        }


def mails(mail_dir: Path, names: set[str]) -> list[Mail]:
    return [Mail(mail_dir / name, _accepted(mail_dir / name)) for name in names]


def _status_kb(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    kb = _status_kb(pid, "VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb(pid: int) -> float | None:
    kb = _status_kb(pid, "VmHWM")
    return None if kb is None else kb / 1024


@dataclass
class RssSampler:
    pids: dict[str, int]
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            now = time.time()
            for name, pid in self.pids.items():
                value = rss_mb(pid)
                if value is not None:
                    self.samples.setdefault(name, []).append((now, value))
            await asyncio.sleep(1.0)

    def peaks(self) -> dict[str, float | None]:
        return {name: peak_rss_mb(pid) for name, pid in self.pids.items()}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


# CPU seconds by process name, and of the whole machine, at one moment; None: the process is gone.
Snapshot = dict[str, float | None]
WHOLE_MACHINE = "whole machine"


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc `stat` file after the command name, which may hold spaces and
    parentheses: field 3 of proc(5) (the state) comes first."""
    return stat.read_text().rsplit(")", 1)[1].split()


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks of the process and of the children it reaped), read once."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(Path(f"/proc/{entry}/stat"))
        except (OSError, IndexError):
            continue  # ended meanwhile
        # ppid, then utime, stime, cutime, cstime: fields 4 and 14-17 of proc(5).
        table[int(entry)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    return table


def tree_cpu_seconds(pid: int, table: dict[int, tuple[int, int]] | None = None) -> float | None:
    """CPU seconds of a process, its live descendants and the children it already reaped (for
    PostgreSQL: the postmaster, its backends and the backends that have ended)."""
    table = _processes() if table is None else table
    if pid not in table:
        return None
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    ticks, pending = 0, [pid]
    while pending:
        current = pending.pop()
        ticks += table[current][1]
        pending.extend(children.get(current, []))
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling and waiting for I/O, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = values[3], values[4]
    return (sum(values[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def cpu_ms_per_event(before: Snapshot, after: Snapshot, events: int) -> dict[str, float]:
    """What each process spent per event between two snapshots, in milliseconds of CPU."""
    spent = {}
    for name, start in before.items():
        end = after.get(name)
        if start is not None and end is not None and events > 0:
            spent[name] = (end - start) * 1000 / events
    return spent


def cores_busy(before: Snapshot, after: Snapshot, seconds: float) -> float | None:
    """How many cores the whole machine kept busy on average between two snapshots."""
    start, end = before.get(WHOLE_MACHINE), after.get(WHOLE_MACHINE)
    return None if start is None or end is None or seconds <= 0 else (end - start) / seconds


# HotSpot names its JIT compiler threads "C1 CompilerThread<n>" and "C2 CompilerThread<n>".
JIT_COMPILER_THREADS = ("C1 Compiler", "C2 Compiler")


def jit_compiler_seconds(pid: int) -> float | None:
    """CPU seconds a JVM's JIT compiler threads have spent so far; None: the process is gone."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            if not (task / "comm").read_text().startswith(JIT_COMPILER_THREADS):
                continue
            fields = _stat_fields(task / "stat")
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds of the stack's processes (and of the benchmark itself) at a moment."""

    pids: dict[str, int]

    def snapshot(self) -> Snapshot:
        table = _processes()
        taken = {name: tree_cpu_seconds(pid, table) for name, pid in self.pids.items()}
        taken["benchmark"] = tree_cpu_seconds(os.getpid(), table)
        taken[WHOLE_MACHINE] = machine_busy_seconds()
        return taken
