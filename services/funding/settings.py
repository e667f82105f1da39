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
    # The key of the participant's pseudonymised identity (ADR 0014), or a file holding it.
    # Needed only by programmes that check the prerequisite of follow-up courses.
    participant_key: SecretStr | None = Field(None, validation_alias="FUNDING_PARTICIPANT_KEY")
    participant_key_file: Path | None = Field(None, validation_alias="FUNDING_PARTICIPANT_KEY_FILE")

    # Take out a registration's participant identity this many days after its seminar and its
    # funding period ended (ADR 0018: the prerequisite rule needs it while the period runs).
    personal_data_retention_days: int = Field(365, ge=0, validation_alias="PERSONAL_DATA_RETENTION_DAYS")
    # How often the retention schedule runs (one instance at a time).
    retention_interval_seconds: float = Field(3600.0, gt=0, validation_alias="RETENTION_INTERVAL_SECONDS")

    def participant_key_bytes(self) -> bytes | None:
        """The key (the variable, else the file's content without surrounding white space)."""
        if self.participant_key is not None:
            return self.participant_key.get_secret_value().encode("utf-8")
        if self.participant_key_file is not None:
            return self.participant_key_file.read_text("utf-8").strip().encode("utf-8")
        return None
