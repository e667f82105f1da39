"""Settings of the registration service (environment variables in validation_alias)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import CommonSettings


class RegistrationSettings(CommonSettings):
    database_url: str = Field(
        "postgresql://registration@127.0.0.1:5432/registration",
        validation_alias="REGISTRATION_DATABASE_URL",
    )
    database_password: SecretStr | None = Field(None, validation_alias="REGISTRATION_DATABASE_PASSWORD")
    http_port: int = Field(8081, validation_alias="REGISTRATION_HTTP_PORT")
    # How long a submission for a seminar not known yet waits for the seminar's offer, from when
    # the service first saw it, before it is rejected as unknown_seminar. 0: rejected at once.
    seminar_grace_seconds: float = Field(300.0, ge=0, validation_alias="REGISTRATION_SEMINAR_GRACE_SECONDS")
    # Erase a registration's personal data this many days after its seminar ended (ADR 0018).
    personal_data_retention_days: int = Field(365, ge=0, validation_alias="PERSONAL_DATA_RETENTION_DAYS")
    # How often the retention schedule runs (one instance at a time).
    retention_interval_seconds: float = Field(3600.0, gt=0, validation_alias="RETENTION_INTERVAL_SECONDS")
