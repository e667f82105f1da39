"""A small, strict migration runner: numbered SQL files, each applied once, in one transaction.

Why not Alembic: there is no ORM here and the SQL is plain; see docs/adr/0002-migrations.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from shared.db import Connection

SHARED_MIGRATIONS = Path(__file__).parent / "sql"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# One advisory lock id for every service: instances starting together apply migrations one by one.
_LOCK_ID = 0x6D696772

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace  text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, version)
)
"""


RECORD_MIGRATION = """
INSERT INTO schema_migrations (namespace, version, name, checksum) VALUES ($1, $2, $3, $4)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    namespace: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(namespace: str, folder: Path) -> list[Migration]:
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        migrations.append(Migration(namespace, int(match[1]), match[2], path.read_text("utf-8")))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"{folder}: versions must run 1, 2, 3 … without gaps, found {versions}")
    return migrations


async def apply_migrations(conn: Connection, service_folder: Path, service: str) -> list[Migration]:
    """Apply the shared and the service's pending migrations; returns what was applied."""
    pending = discover("shared", SHARED_MIGRATIONS) + discover(service, service_folder)
    applied: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(_CREATE_LEDGER)
        done = {
            (row["namespace"], row["version"]): row["checksum"]
            for row in await conn.fetch("SELECT namespace, version, checksum FROM schema_migrations")
        }
        for migration in pending:
            recorded = done.get((migration.namespace, migration.version))
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationError(
                        f"{migration.namespace} migration {migration.version:04d}_{migration.name} "
                        "was changed after it was applied: add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    RECORD_MIGRATION,
                    migration.namespace,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied
