"""Settings of the funding service (environment variables in validation_alias)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.program import DEFAULT_PROGRAM_FILE
from shared.settings import CommonSettings


class FundingSettings(CommonSettings):
    database_url: str = Field(
        "postgresql://funding@127.0.0.1:5432/funding", validation_alias="FUNDING_DATABASE_URL"
    )
    database_password: SecretStr | None = Field(None, validation_alias="FUNDING_DATABASE_PASSWORD")
    http_port: int = Field(8082, validation_alias="FUNDING_HTTP_PORT")
    # The programme definition file (TOML); the default is the Niedersachsen programme.
    program_file: Path = Field(DEFAULT_PROGRAM_FILE, validation_alias="FUNDING_PROGRAM_FILE")
