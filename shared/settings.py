"""Configuration from the environment (pydantic-settings). Every variable is listed in the README."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRECTORY_FILE = (REPO_ROOT.parent / "shared" / "data" / "GV100AD_31122022.txt").resolve()


class CommonSettings(BaseSettings):
    """Settings every service shares; each service adds its database URL and HTTP port."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field("", validation_alias="KAFKA_TOPIC_PREFIX")
    gv100ad_file: Path = Field(DEFAULT_DIRECTORY_FILE, validation_alias="GV100AD_FILE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", validation_alias="LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field("auto", validation_alias="LOG_FORMAT")
    http_host: str = Field("127.0.0.1", validation_alias="HTTP_HOST")
    consumer_max_records: int = Field(500, ge=1, validation_alias="CONSUMER_MAX_RECORDS")
    consumer_batch_timeout_ms: int = Field(20, ge=1, validation_alias="CONSUMER_BATCH_TIMEOUT_MS")
    handler_max_attempts: int = Field(3, ge=1, validation_alias="HANDLER_MAX_ATTEMPTS")
    handler_retry_base_seconds: float = Field(0.2, gt=0, validation_alias="HANDLER_RETRY_BASE_SECONDS")
    outbox_batch_size: int = Field(500, ge=1, validation_alias="OUTBOX_BATCH_SIZE")
    outbox_poll_interval_seconds: float = Field(1.0, gt=0, validation_alias="OUTBOX_POLL_INTERVAL_SECONDS")
    db_pool_max_size: int = Field(10, ge=2, validation_alias="DB_POOL_MAX_SIZE")
    # Server-side limits of every database session (shared/db.py SessionTimeouts).
    db_lock_timeout_seconds: float = Field(10.0, gt=0, validation_alias="DB_LOCK_TIMEOUT_SECONDS")
    db_statement_timeout_seconds: float = Field(30.0, gt=0, validation_alias="DB_STATEMENT_TIMEOUT_SECONDS")
    db_idle_in_transaction_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias="DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS"
    )
    # /readyz turns false when a consumer or the relay has work but made no progress this long.
    readiness_stall_seconds: float = Field(30.0, gt=0, validation_alias="READINESS_STALL_SECONDS")
