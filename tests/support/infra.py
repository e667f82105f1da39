"""Where the tests find Kafka and PostgreSQL: the locally provisioned services when the
environment names them (`make test` does), otherwise testcontainers when a Docker engine answers."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SERVICES = ("registration", "funding", "notification")


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap: str
    admin_dsn: str
    service_dsns: dict[str, str]


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def from_environment() -> Infrastructure | None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    dsns = {name: os.environ.get(f"{name.upper()}_DATABASE_URL") for name in SERVICES}
    admin = os.environ.get("POSTGRES_ADMIN_URL")
    if not bootstrap or not admin or not all(dsns.values()):
        return None
    return Infrastructure(bootstrap, admin, {k: v for k, v in dsns.items() if v})


def from_testcontainers() -> tuple[Infrastructure, list[object]] | None:
    if not _docker_available():
        return None
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    postgres = PostgresContainer("postgres:15", username="postgres", password="postgres", dbname="postgres")
    kafka.start()
    postgres.start()
    # The containers run without authentication: every client of this process connects in plaintext.
    os.environ["KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
    admin = postgres.get_connection_url(driver=None)
    dsns = {name: with_credentials(admin, name, name, name) for name in SERVICES}
    return Infrastructure(kafka.get_bootstrap_server(), admin, dsns), [kafka, postgres]


def with_credentials(dsn: str, user: str, password: str, database: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(("postgresql", f"{user}:{password}@{host}{port}", f"/{database}", "", ""))


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))
