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
