"""Whom `lotse` is, towards Kafka and PostgreSQL, and where it finds the passwords.

Kafka: the `operator` principal (reads every topic, writes only operations.commands), unless
KAFKA_SASL_USERNAME names another. PostgreSQL: the read-only `operator` role on each service's
database (the database of <SERVICE>_DATABASE_URL, the user replaced). Passwords come from
KAFKA_SASL_PASSWORD / OPERATOR_DATABASE_PASSWORD (or their _FILE), else from the local stack's
var/secrets, so that `make demo` needs nothing set.

Transitional, until these become commands on operations.commands that the owning service carries
out: `close-period` and `mail resend` write with the owning service's role; `demo` publishes as
`portal` (it plays the portals); `dlq list|replay` read and write as `admin` (the replay writes
into a domain topic, which no principal but its owner may).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.kafka import KafkaSecurity
from shared.settings import KafkaSecuritySettings, SecretFileSettings, local_secrets_dir, read_secret_file

OPERATOR = "operator"


class OperatorDatabaseSettings(SecretFileSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    operator_database_password: SecretStr | None = Field(None, validation_alias="OPERATOR_DATABASE_PASSWORD")


def kafka_security(principal: str = OPERATOR) -> KafkaSecurity:
    """The operator's principal from the environment, or another local principal by its name."""
    settings = KafkaSecuritySettings()
    if principal == OPERATOR and settings.kafka_sasl_username:
        return KafkaSecurity.from_settings(settings)
    local = settings.model_copy(update={"kafka_sasl_username": principal, "kafka_sasl_password": None})
    return KafkaSecurity.from_settings(local)


def _local_password(role: str) -> SecretStr | None:
    path = local_secrets_dir() / "postgres" / f"{role}.password"
    return read_secret_file(path) if path.is_file() else None


def _with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}@{host}{port}", parts.path, parts.query, ""))


def database_login(dsn: str, *, owner: bool = False) -> tuple[str, SecretStr | None]:
    """The URL and password lotse connects with: the operator role, or (`owner`) the URL's own."""
    if not owner:
        password = OperatorDatabaseSettings().operator_database_password or _local_password(OPERATOR)
        return _with_user(dsn, OPERATOR), password
    user = urlsplit(dsn).username or ""
    variable = f"{user.upper()}_DATABASE_PASSWORD"
    if os.environ.get(variable):
        return dsn, SecretStr(os.environ[variable])
    if os.environ.get(f"{variable}_FILE"):
        return dsn, read_secret_file(os.environ[f"{variable}_FILE"])
    return dsn, _local_password(user)
