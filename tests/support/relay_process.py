"""Runs one outbox relay until killed: the integration tests kill it with SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import sys

from shared.db import create_pool
from shared.logging import configure_logging
from shared.outbox import OutboxRelay
from shared.topics import Topics


async def main(dsn: str, bootstrap: str, prefix: str, batch_size: int) -> None:
    configure_logging("relay-test", "WARNING", "json")
    pool = await create_pool(dsn)
    relay = OutboxRelay(
        service="registration",
        dsn=dsn,
        pool=pool,
        bootstrap_servers=bootstrap,
        topics=Topics(prefix),
        batch_size=batch_size,
        poll_interval=0.2,
    )
    await relay.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
