"""The floors: three pass-through hops, no database, the services' batching, as separate processes.

`python -m bench.floor KIND IN OUT GROUP` runs one hop that publishes every record of IN, with
its key, to OUT:
- `faststream`: a FastStream batch subscriber with the services' consumer settings;
- `raw`: plain aiokafka, batch consume (getmany) -> produce with acks=all and idempotence ->
  commit, what any Kafka client in Python can do at best on this machine.
The benchmark chains portal -> hop1 -> hop2 -> hop3 on scratch topics with the services'
partition counts, once per kind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from bench.observe import TopicTail
from bench.workload import Portal, Workload
from shared import event_loop
from shared.kafka import client_options, ensure_topics, make_broker
from shared.settings import REPO_ROOT, CommonSettings
from shared.topics import KOMMUNE_KEYED_PARTITIONS, Topics, TopicSpec

PREFIX = "bench.floor."
KINDS = ("raw", "faststream")


def chain(kind: str) -> list[str]:
    return [f"{PREFIX}{kind}.{name}" for name in ("portal", "hop1", "hop2", "hop3")]


def hop_app(source: str, target: str, group: str) -> FastStream:
    settings = CommonSettings()
    broker = make_broker(settings.kafka_bootstrap_servers, client_id=group)

    @broker.subscriber(
        source,
        group_id=group,
        batch=True,
        # FastStream's own acknowledgement, as its users run it: commit after each batch.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_records=settings.consumer_max_records,
        batch_timeout_ms=settings.consumer_batch_timeout_ms,
    )
    async def forward(body: Any, message: KafkaMessage) -> None:
        records: Sequence[ConsumerRecord[bytes, bytes]] = message.raw_message
        sent = [
            await broker.publish(record.value, target, key=record.key, no_confirm=True) for record in records
        ]
        await asyncio.gather(*sent)

    return FastStream(broker)


async def raw_hop(source: str, target: str, group: str) -> None:
    """The raw aiokafka hop, until SIGTERM."""
    settings = CommonSettings()
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **client_options(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=group,
        acks="all",
        enable_idempotence=True,
        **client_options(),
    )
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await consumer.start()
    await producer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(
                timeout_ms=settings.consumer_batch_timeout_ms, max_records=settings.consumer_max_records
            )
            sent = [
                await producer.send(target, record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


@dataclass(frozen=True)
class FloorResult:
    kind: str
    events: int
    seconds: float | None
    per_second: float | None
    delivered: int


async def run_floor(
    env: dict[str, str], kind: str, events: int, workload: Workload, timeout: float
) -> FloorResult:
    """Start the three hops of `kind`, publish `events` registrations to the chain's portal topic,
    time the last one arriving on hop3."""
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    topics = chain(kind)
    await ensure_topics(bootstrap, [TopicSpec(name, KOMMUNE_KEYED_PARTITIONS) for name in topics])
    log_dir = Path(env["LOTSE_VAR_DIR"]) / "log"
    logs = [(log_dir / f"floor-{kind}-hop{i + 1}.log").open("ab") for i in range(3)]
    hops = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
            [
                sys.executable,
                "-m",
                "bench.floor",
                kind,
                topics[i],
                topics[i + 1],
                f"{PREFIX}{kind}.hop{i + 1}",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(3)
    ]
    tail = TopicTail(bootstrap, topics[-1])
    warm, phase = f"floorwarm{kind}", f"floor{kind}"
    try:
        await tail.start()
        async with Portal(bootstrap, Topics()) as portal:
            # Warm up until the hops have their partitions and pass messages end to end.
            await portal.burst(topics[0], workload.registrations(100, warm))
            await _until(lambda: tail.count(warm) >= 100, timeout)
            start = await portal.burst(topics[0], workload.registrations(events, phase))
            await _until(lambda: tail.count(phase) >= events, timeout)
        arrived = [s.kafka_ts for s in tail.of_phase(phase)]
        end = max(arrived) if len(arrived) >= events else None
        seconds = None if end is None else end - start
        return FloorResult(kind, events, seconds, None if not seconds else events / seconds, len(arrived))
    finally:
        await tail.stop()
        for hop in hops:
            hop.send_signal(signal.SIGTERM)
        for hop in hops:
            try:
                hop.wait(timeout=20)
            except subprocess.TimeoutExpired:
                hop.kill()
                hop.wait()
        for file in logs:
            file.close()


async def _until(done: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def main(argv: list[str]) -> None:
    kind, source, target, group = argv
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The services' event loop (shared.event_loop), so that the ratios compare like with like.
    if kind == "raw":
        event_loop.run(raw_hop(source, target, group))
    else:
        event_loop.run(hop_app(source, target, group).run())


if __name__ == "__main__":
    main(sys.argv[1:])
