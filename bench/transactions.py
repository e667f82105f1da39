"""How long one small Kafka transaction takes, back to back, as the outbox relay commits them.

`python -m bench.transactions [--transactions N] [--records R]` needs a running broker at
KAFKA_BOOTSTRAP_SERVERS (`python -m deploy.local.stack infra-up`). It times N transactions of R
records each, first with aiokafka's own 20 ms retry after CONCURRENT_TRANSACTIONS, then with the
relay's (`shared.kafka.retry_concurrent_transactions_sooner`), and prints p50 / p90 / p99 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiokafka.producer.sender as aiokafka_sender
from aiokafka import AIOKafkaProducer

from bench.stats import percentile
from shared.kafka import client_options, ensure_topics, retry_concurrent_transactions_sooner
from shared.settings import CommonSettings
from shared.topics import TopicSpec

TOPIC = "bench.transactions"


async def time_transactions(bootstrap: str, transactions: int, records: int) -> list[float]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=f"{TOPIC}-probe",
        enable_idempotence=True,
        acks="all",
        **client_options(),
    )
    await producer.start()
    seconds: list[float] = []
    try:
        for number in range(transactions):
            began = time.perf_counter()
            async with producer.transaction():
                for record in range(records):
                    await producer.send(TOPIC, value=b"x" * 500, key=f"{number}-{record}".encode())
            seconds.append(time.perf_counter() - began)
    finally:
        await producer.stop()
    return seconds


async def probe(transactions: int, records: int) -> None:
    bootstrap = CommonSettings().kafka_bootstrap_servers
    await ensure_topics(bootstrap, [TopicSpec(TOPIC, 6)])
    aiokafka_default = aiokafka_sender.BACKOFF_OVERRIDE
    try:
        for label, relay_retry in (
            (f"aiokafka's retry ({aiokafka_default * 1000:.0f} ms)", False),
            ("the relay's retry", True),
        ):
            if relay_retry:
                retry_concurrent_transactions_sooner()
            seconds = await time_transactions(bootstrap, transactions, records)
            figures = " / ".join(f"{(percentile(seconds, q) or 0.0) * 1000:.1f}" for q in (50, 90, 99))
            print(f"{label:28} {transactions} transactions of {records}: p50 / p90 / p99 {figures} ms")
    finally:
        aiokafka_sender.BACKOFF_OVERRIDE = aiokafka_default


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transactions", description=__doc__)
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--records", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(probe(args.transactions, args.records))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
