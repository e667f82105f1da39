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
