"""The framework's floor: three FastStream pass-through hops, no database, same batching.

`python -m bench.floor IN OUT GROUP` runs one hop: a batch subscriber on IN (same consumer
settings as the services) that publishes every record, with its key, to OUT. The benchmark chains
portal -> hop1 -> hop2 -> hop3 on scratch topics with the services' partition counts.
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

from aiokafka.structs import ConsumerRecord
from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage

from bench.observe import TopicTail
from bench.workload import Portal, Workload
from shared.kafka import SUBSCRIBER_ACK_POLICY, ensure_topics, make_broker
from shared.settings import REPO_ROOT, CommonSettings
from shared.topics import KOMMUNE_KEYED_PARTITIONS, Topics, TopicSpec

PREFIX = "bench.floor."
CHAIN = [f"{PREFIX}portal", f"{PREFIX}hop1", f"{PREFIX}hop2", f"{PREFIX}hop3"]


def hop_app(source: str, target: str, group: str) -> FastStream:
    settings = CommonSettings()
    broker = make_broker(settings.kafka_bootstrap_servers, client_id=group)

    @broker.subscriber(
        source,
        group_id=group,
        batch=True,
        ack_policy=SUBSCRIBER_ACK_POLICY,
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


@dataclass(frozen=True)
class FloorResult:
    events: int
    seconds: float | None
    per_second: float | None
    delivered: int


async def run_floor(env: dict[str, str], events: int, workload: Workload, timeout: float) -> FloorResult:
    """Start the three hops, publish `events` registrations to the chain's portal topic, time the
    last one arriving on hop3."""
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    await ensure_topics(bootstrap, [TopicSpec(name, KOMMUNE_KEYED_PARTITIONS) for name in CHAIN])
    log_dir = Path(env["LOTSE_VAR_DIR"]) / "log"
    logs = [(log_dir / f"floor-hop{i + 1}.log").open("ab") for i in range(3)]
    hops = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
            [sys.executable, "-m", "bench.floor", CHAIN[i], CHAIN[i + 1], f"{PREFIX}hop{i + 1}"],
            cwd=REPO_ROOT,
            env=env,
            stdout=logs[i],
            stderr=subprocess.STDOUT,
        )
        for i in range(3)
    ]
    tail = TopicTail(bootstrap, CHAIN[-1])
    try:
        await tail.start()
        async with Portal(bootstrap, Topics()) as portal:
            # Warm up until the hops have their partitions and pass messages end to end.
            await portal.burst(CHAIN[0], workload.registrations(100, "floorwarm"))
            await _until(lambda: tail.count("floorwarm") >= 100, timeout)
            start = await portal.burst(CHAIN[0], workload.registrations(events, "floor"))
            await _until(lambda: tail.count("floor") >= events, timeout)
        arrived = [s.kafka_ts for s in tail.of_phase("floor")]
        end = max(arrived) if len(arrived) >= events else None
        seconds = None if end is None else end - start
        return FloorResult(events, seconds, None if not seconds else events / seconds, len(arrived))
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
    source, target, group = argv
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    asyncio.run(hop_app(source, target, group).run())


if __name__ == "__main__":
    main(sys.argv[1:])
