"""What `lotse` reads from the environment: the services' own settings, composed, not copied.

Each variable and its default live in one place, the settings class of the service that owns it
(the README's configuration table lists them), so lotse can never drift from what the services
connect to. Only MAIL_DIR is lotse's own: the local SMTP sink writes there, no service reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.funding.settings import FundingSettings
from services.notification.settings import NotificationSettings
from services.registration.settings import RegistrationSettings
from shared.settings import REPO_ROOT, CommonSettings
from shared.topics import Topics


class MailSinkSettings(BaseSettings):
    """Where the local SMTP sink stores the emails it receives, as `.eml` files."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    mail_dir: Path = Field(REPO_ROOT / "var" / "mail", validation_alias="MAIL_DIR")


@dataclass(frozen=True)
class OperatorSettings:
    """Each part is the owning service's settings class, read from the same environment; an
    invalid value there (say MAIL_FROM) stops lotse as it would stop that service."""

    common: CommonSettings
    registration: RegistrationSettings
    funding: FundingSettings
    notification: NotificationSettings
    mail_sink: MailSinkSettings

    @classmethod
    def from_environment(cls) -> OperatorSettings:
        return cls(
            common=CommonSettings(),
            registration=RegistrationSettings(),
            funding=FundingSettings(),
            notification=NotificationSettings(),
            mail_sink=MailSinkSettings(),
        )

    @property
    def topics(self) -> Topics:
        return Topics(self.common.kafka_topic_prefix)
