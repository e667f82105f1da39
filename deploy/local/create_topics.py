"""Creates every topic from shared/topics.py on KAFKA_BOOTSTRAP_SERVERS, idempotently, with its
configuration (each service's compacted `outbox.<service>.relay-state`; the shared
`outbox.relay-state` of earlier versions is no longer used, ADR 0011), and applies deploy/acl.yaml
(for KAFKA_TOPIC_PREFIX) unless the broker runs without authentication. Runs as the environment's
principal, which must be admin (docker-compose's `topics` service)."""

from __future__ import annotations

import asyncio
import os

from deploy.local.acls import apply_acl_file
from shared.kafka import KafkaSecurity, ensure_topics
from shared.topics import all_topics


async def provision(bootstrap: str, prefix: str) -> tuple[list[str], int]:
    created = await ensure_topics(bootstrap, all_topics(prefix))
    if KafkaSecurity.from_environment().protocol == "PLAINTEXT":
        return created, 0
    return created, await apply_acl_file(bootstrap, prefix)


def main() -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    created, acls = asyncio.run(provision(bootstrap, os.environ.get("KAFKA_TOPIC_PREFIX", "")))
    print(
        f"created {len(created)} topic(s): {', '.join(created) or 'all existed'}; {acls} ACL bindings applied"
    )


if __name__ == "__main__":
    main()
