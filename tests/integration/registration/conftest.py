"""Fixtures: the registration service against the test's own topics and database.

`registration_service` runs it in-process (a ServiceRuntime per call, so several can run at once);
`registration_process` runs it as `python -m services.registration`, with its output in a file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from services.registration.app import build
from services.registration.settings import RegistrationSettings
from shared.settings import REPO_ROOT
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.integration.registration.portal import Portal
from tests.support.kafka import admin_client
from tests.support.service import ServiceFactory as ServiceFactory  # noqa: PLC0414 - for tests/reliability
from tests.support.service import in_process
from tests.support.waiting import wait_until

# Fast relay polling and small batches: the tests wait for outcomes, this only shortens the wait.
TEST_SETTINGS: dict[str, Any] = {"outbox_poll_interval_seconds": 0.2, "handler_retry_base_seconds": 0.05}


@pytest.fixture
async def registration_dsn(make_database: DatabaseFactory) -> str:
    return await make_database("registration")


@pytest.fixture
async def registration_db(registration_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the service's database, for looking at its state from the outside."""
    conn = await asyncpg.connect(registration_dsn)
    yield conn
    await conn.close()


@pytest.fixture
def portal(kafka_bootstrap: str, topics: Topics, registration_db: asyncpg.Connection) -> Portal:
    return Portal(kafka_bootstrap, topics, registration_db)


@pytest.fixture
def registration_service(
    kafka_bootstrap: str,
    topics: Topics,
    registration_dsn: str,
    unused_tcp_port_factory: Callable[[], int],
) -> ServiceFactory:
    """Starts one in-process instance; each call is another instance in the same consumer group."""
    return in_process(
        build,
        RegistrationSettings,
        kafka_bootstrap=kafka_bootstrap,
        topics=topics,
        database_url=registration_dsn,
        free_port=unused_tcp_port_factory,
        **TEST_SETTINGS,
    )


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    log_path: Path
    http_port: int

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


async def _healthy(port: int) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        return status_line.split()[1:2] == [b"200"]
    except (OSError, IndexError):
        return False
    finally:
        writer.close()


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (FastStream shuts down gracefully), SIGKILL only if it hangs."""
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()


ProcessFactory = Callable[[str], AbstractAsyncContextManager[ServiceProcess]]


@pytest.fixture
def registration_process(
    kafka_bootstrap: str,
    topics: Topics,
    registration_dsn: str,
    unused_tcp_port_factory: Callable[[], int],
    tmp_path: Path,
) -> ProcessFactory:
    """Starts `python -m services.registration` and waits until its /healthz answers 200."""

    @asynccontextmanager
    async def running(name: str) -> AsyncIterator[ServiceProcess]:
        port = unused_tcp_port_factory()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": topics.prefix,
            "REGISTRATION_DATABASE_URL": registration_dsn,
            "REGISTRATION_HTTP_PORT": str(port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            **{key.upper(): str(value) for key, value in TEST_SETTINGS.items()},
        }
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.registration",
                cwd=REPO_ROOT,
                env=env,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        service = ServiceProcess(process, log_path, port)
        try:

            async def healthy() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"{name} exited early:\n{service.log()}")
                return await _healthy(port)

            await wait_until(healthy)
            yield service
        finally:
            await _stop(process)

    return running


async def consumers_with_partitions(bootstrap: str, group_id: str, topic: str) -> int:
    """How many members of the consumer group hold at least one partition of the topic."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    holders = 0
    for response in responses:
        for _error, _group, state, _ptype, _protocol, members, *_ in response.groups:
            if state != "Stable":
                return 0
            for member in members:
                raw_assignment = member[4]
                if not raw_assignment:
                    continue
                assignment = ConsumerProtocolMemberAssignment.decode(raw_assignment)
                if any(name == topic and partitions for name, partitions in assignment.assignment):
                    holders += 1
    return holders
