"""Fixtures against real infrastructure: each test gets its own topics and its own databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest

from deploy.local.acls import apply_acl_file, remove_acl_file
from shared.kafka import KafkaSecurity, delete_topics, ensure_topics
from shared.settings import DEFAULT_DIRECTORY_FILE
from shared.topics import Topics
from tests.support.infra import Infrastructure, from_environment, from_testcontainers, with_database

DIRECTORY_FILE = DEFAULT_DIRECTORY_FILE


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    found = from_environment()
    if found is not None:
        yield found
        return
    started = from_testcontainers()
    if started is None:
        pytest.skip(
            "no infrastructure: run through `make test`, or set KAFKA_BOOTSTRAP_SERVERS, "
            "POSTGRES_ADMIN_URL and <SERVICE>_DATABASE_URL, or make a Docker engine reachable"
        )
    infrastructure, containers = started
    yield infrastructure
    for container in containers:
        container.stop()  # type: ignore[attr-defined]


@pytest.fixture
def kafka_bootstrap(infra: Infrastructure) -> str:
    return infra.kafka_bootstrap


@pytest.fixture
async def topics(infra: Infrastructure) -> AsyncIterator[Topics]:
    """A fresh, prefixed set of every topic with deploy/acl.yaml's ACLs for the prefix; both are
    deleted after the test."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    created = Topics(prefix)
    secured = KafkaSecurity.from_environment().protocol != "PLAINTEXT"
    await ensure_topics(infra.kafka_bootstrap, created.all())
    if secured:
        await apply_acl_file(infra.kafka_bootstrap, prefix)
    yield created
    await delete_topics(infra.kafka_bootstrap, [spec.name for spec in created.all()])
    if secured:
        await remove_acl_file(infra.kafka_bootstrap, prefix)


DatabaseFactory = Callable[[str], Awaitable[str]]


@pytest.fixture
async def make_database(infra: Infrastructure) -> AsyncIterator[DatabaseFactory]:
    """Creates a scratch database owned by a service's role; returns that role's DSN for it."""
    created: list[str] = []
    admin = await asyncpg.connect(infra.admin_dsn)

    async def create(service: str) -> str:
        name = f"{service}_test_{uuid.uuid4().hex[:10]}"
        exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", service)
        if not exists:
            await admin.execute(f"CREATE ROLE \"{service}\" LOGIN PASSWORD '{service}'")
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "{service}"')
        await admin.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
        created.append(name)
        return with_database(infra.service_dsns[service], name)

    yield create
    for name in created:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
