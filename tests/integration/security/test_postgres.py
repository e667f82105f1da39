"""PostgreSQL: scram-sha-256 for every role, the superuser included; each service reaches only its
own database; operator reads the three and writes none."""

from __future__ import annotations

import asyncpg
import pytest

from deploy.local.config import local_env
from deploy.local.secrets import LocalSecrets
from deploy.local.stack import PG_HBA, _pg_data

pytestmark = pytest.mark.integration

SERVICES = ("registration", "funding", "notification")
NO_PASSFILE = "/dev/null"  # the tests' PGPASSFILE would otherwise supply the password


def port() -> int:
    return int(local_env()["POSTGRES_PORT"])


async def connect(role: str, database: str, password: str | None) -> asyncpg.Connection:
    return await asyncpg.connect(
        host="127.0.0.1", port=port(), user=role, database=database, password=password, passfile=NO_PASSFILE
    )


@pytest.mark.parametrize("role", SERVICES)
async def test_a_service_role_connects_to_its_own_database(role: str, secrets: LocalSecrets) -> None:
    conn = await connect(role, role, secrets.postgres_password(role).get_secret_value())
    try:
        assert await conn.fetchval("SELECT current_user") == role
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("role", "database"),
    [(role, other) for role in SERVICES for other in (*SERVICES, "postgres", "template1") if other != role],
)
async def test_a_service_role_cannot_connect_to_another_database(
    role: str, database: str, secrets: LocalSecrets
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await connect(role, database, secrets.postgres_password(role).get_secret_value())


@pytest.mark.parametrize("role", ["postgres", *SERVICES, "operator"])
async def test_no_role_gets_in_without_its_password(role: str, secrets: LocalSecrets) -> None:
    database = "postgres" if role in {"postgres", "operator"} else role
    with pytest.raises(asyncpg.InvalidPasswordError):
        await connect(role, database, "not-the-password")
    with pytest.raises(
        (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InterfaceError)
    ):
        await connect(role, database, None)


async def test_the_superuser_connects_with_its_password(secrets: LocalSecrets) -> None:
    conn = await connect("postgres", "postgres", secrets.postgres_password("postgres").get_secret_value())
    try:
        assert await conn.fetchval("SHOW password_encryption") == "scram-sha-256"
        methods = await conn.fetch("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert {row["auth_method"] for row in methods} == {"scram-sha-256"}
        stored = await conn.fetch("SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin")
        assert stored and all(row["rolpassword"].startswith("SCRAM-SHA-256$") for row in stored)
    finally:
        await conn.close()


def test_pg_hba_has_no_trust_line() -> None:
    assert "trust" not in PG_HBA.split("#")[-1]
    written = (_pg_data() / "pg_hba.conf").read_text() if (_pg_data() / "pg_hba.conf").exists() else PG_HBA
    rules = [line for line in written.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(line.split()[-1] == "scram-sha-256" for line in rules)


@pytest.mark.parametrize("database", SERVICES)
async def test_operator_reads_every_service_database_and_writes_none(
    database: str, secrets: LocalSecrets
) -> None:
    owner = await connect(database, database, secrets.postgres_password(database).get_secret_value())
    await owner.execute(
        "CREATE TABLE IF NOT EXISTS operator_probe (id int); INSERT INTO operator_probe VALUES (1)"
    )
    try:
        conn = await connect("operator", database, secrets.postgres_password("operator").get_secret_value())
        try:
            assert await conn.fetchval("SELECT count(*) FROM operator_probe") >= 1
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM operator_probe")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("CREATE TABLE operator_was_here (id int)")
        finally:
            await conn.close()
    finally:
        await owner.execute("DROP TABLE operator_probe")
        await owner.close()


async def test_operator_cannot_connect_to_the_superuser_database(secrets: LocalSecrets) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await connect("operator", "postgres", secrets.postgres_password("operator").get_secret_value())
