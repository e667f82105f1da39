"""Creates every topic from shared/topics.py on KAFKA_BOOTSTRAP_SERVERS, idempotently, with its
configuration (each service's compacted `outbox.<service>.relay-state`). The shared
`outbox.relay-state` of earlier versions is no longer used; delete it once every relay runs the
per-service topics (docs/adr/0011-relay-leadership-and-recovery.md)."""

from __future__ import annotations

import asyncio
import os

from shared.kafka import ensure_topics
from shared.topics import all_topics


def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    created = asyncio.run(ensure_topics(bootstrap, all_topics(os.environ.get("KAFKA_TOPIC_PREFIX", ""))))
    print(f"created {len(created)} topic(s): {', '.join(created) or 'all existed'}")


if __name__ == "__main__":
    main()
