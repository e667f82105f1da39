"""Configuration from the environment (pydantic-settings). Every variable is listed in the README.

Every password is a `SecretStr`, given as the variable itself or as `<NAME>_FILE`, a file that holds
it (the Docker and Kubernetes secrets convention); the variable wins when both are set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRECTORY_FILE = (REPO_ROOT.parent / "shared" / "data" / "GV100AD_31122022.txt").resolve()

KafkaSecurityProtocol = Literal["SASL_SSL", "PLAINTEXT"]
KafkaSaslMechanism = Literal["SCRAM-SHA-512"]


def local_secrets_dir() -> Path:
    """Where `make up` keeps the local stack's secrets (`var/secrets` under LOTSE_VAR_DIR)."""
    return Path(os.environ.get("LOTSE_VAR_DIR", REPO_ROOT / "var")).resolve() / "secrets"


def read_secret_file(path: str | Path) -> SecretStr:
    """A secret from a file; one trailing newline (what `echo` and editors add) is not part of it."""
    text = Path(path).read_text(encoding="utf-8")
    return SecretStr(text[:-1] if text.endswith("\n") else text)


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


def secrets_from_files(model: type[BaseSettings], data: Any) -> Any:
    """For every SecretStr field not given directly, read `<ALIAS>_FILE` if the environment names
    one. Use as a `model_validator(mode="before")` of any settings class."""
    if not isinstance(data, dict):
        return data
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        if not isinstance(alias, str) or not _is_secret(field):
            continue
        given = {name, alias, alias.lower()} & {key for key, value in data.items() if value is not None}
        if given:
            continue
        path = os.environ.get(f"{alias}_FILE")
        if path:
            data = {**data, alias: read_secret_file(path)}
    return data


class SecretFileSettings(BaseSettings):
    """A settings class whose SecretStr fields also come from `<ALIAS>_FILE`."""

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        return secrets_from_files(cls, data)


class KafkaSecuritySettings(SecretFileSettings):
    """How a client authenticates to the broker and verifies it (../shared/INTERFACES.md)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "SASL_SSL", validation_alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field("SCRAM-SHA-512", validation_alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD")
    # None: the local stack's CA (var/secrets/ca.crt) if there is one, else the system's trust store.
    kafka_ssl_ca_file: Path | None = Field(None, validation_alias="KAFKA_SSL_CA_FILE")


class CommonSettings(KafkaSecuritySettings):
    """Settings every service shares; each service adds its database URL, password and HTTP port."""

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field("", validation_alias="KAFKA_TOPIC_PREFIX")
    gv100ad_file: Path = Field(DEFAULT_DIRECTORY_FILE, validation_alias="GV100AD_FILE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field("auto", validation_alias="LOG_FORMAT")
    http_host: str = Field("127.0.0.1", validation_alias="HTTP_HOST")
    consumer_max_records: int = Field(500, ge=1, validation_alias="CONSUMER_MAX_RECORDS")
    consumer_batch_timeout_ms: int = Field(20, ge=1, validation_alias="CONSUMER_BATCH_TIMEOUT_MS")
    # Least time between two offset commits of a consumer (shared/offsets.py). 0 by default:
    # the decision path's committed lag is what notification gives way to (ADR 0023).
    consumer_commit_interval_ms: int = Field(
        0, ge=0, le=10_000, validation_alias="CONSUMER_COMMIT_INTERVAL_MS"
    )
    handler_max_attempts: int = Field(3, ge=1, validation_alias="HANDLER_MAX_ATTEMPTS")
    handler_retry_base_seconds: float = Field(0.2, gt=0, validation_alias="HANDLER_RETRY_BASE_SECONDS")
    outbox_batch_size: int = Field(500, ge=1, validation_alias="OUTBOX_BATCH_SIZE")
    outbox_poll_interval_seconds: float = Field(1.0, gt=0, validation_alias="OUTBOX_POLL_INTERVAL_SECONDS")
    outbox_linger_ms: int = Field(0, ge=0, le=1000, validation_alias="OUTBOX_LINGER_MS")
    db_pool_max_size: int = Field(10, ge=2, validation_alias="DB_POOL_MAX_SIZE")
    # Server-side limits of every database session (shared/db.py SessionTimeouts).
    db_lock_timeout_seconds: float = Field(10.0, gt=0, validation_alias="DB_LOCK_TIMEOUT_SECONDS")
    db_statement_timeout_seconds: float = Field(30.0, gt=0, validation_alias="DB_STATEMENT_TIMEOUT_SECONDS")
    db_idle_in_transaction_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias="DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS"
    )
    # Consumer group membership (docs/adr/0017-instances-and-recovery.md). SERVICE_INSTANCE names
    # this instance among the service's replicas (the local stack: 0, 1, ...; Kubernetes: the pod's
    # ordinal): set, the consumers join as static members, so a restarted instance takes its own
    # partitions back at once instead of waiting for a rebalance. Unset: dynamic members, as two
    # processes with the same instance id would fence each other out of the group.
    service_instance: str | None = Field(None, min_length=1, validation_alias="SERVICE_INSTANCE")
    # How long the broker waits for a silent member before it hands its partitions to the others
    # (the broker's floor is group.min.session.timeout.ms, 6 s by default), and how often a member
    # says it is alive: a third or less of the session.
    kafka_session_timeout_ms: int = Field(6000, ge=1000, validation_alias="KAFKA_SESSION_TIMEOUT_MS")
    kafka_heartbeat_interval_ms: int = Field(1500, ge=100, validation_alias="KAFKA_HEARTBEAT_INTERVAL_MS")
    # /readyz turns false when a consumer or the relay has work but made no progress this long.
    readiness_stall_seconds: float = Field(30.0, gt=0, validation_alias="READINESS_STALL_SECONDS")
    # The password of the service's database role (<SERVICE>_DATABASE_PASSWORD / _FILE): each
    # service's settings declare it under its own variable; the URL carries none.
    database_password: SecretStr | None = None
