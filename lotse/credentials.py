"""Whom `lotse` is, towards Kafka and PostgreSQL, and where it finds the passwords.

Kafka: the `operator` principal (reads every topic, writes only operations.commands), unless
KAFKA_SASL_USERNAME names another. PostgreSQL: the read-only `operator` role on each service's
database (the database of <SERVICE>_DATABASE_URL, the user replaced). Passwords come from
KAFKA_SASL_PASSWORD / OPERATOR_DATABASE_PASSWORD (or their _FILE), else from the local stack's
var/secrets, so that `make demo` needs nothing set.

lotse changes no service's state with a database role: `close-period`, `mail resend|park` and
`dlq replay` are commands on operations.commands that the owning service carries out (ADR 0016).
`demo` publishes as `portal`, because it plays the portals.
"""

from __future__ import annotations

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


def database_login(dsn: str) -> tuple[str, SecretStr | None]:
    """The URL and password lotse connects with: the read-only operator role on the URL's database."""
    password = OperatorDatabaseSettings().operator_database_password or _local_password(OPERATOR)
    return _with_user(dsn, OPERATOR), password
