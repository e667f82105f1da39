"""Settings of the notification service (environment variables in validation_alias)."""

from __future__ import annotations

from email.headerregistry import Address

from pydantic import Field, SecretStr, field_validator, model_validator

from services.notification.compose import Office, sender_address
from shared.settings import CommonSettings

DEFAULT_MAIL_FROM = "Programmbüro Digitallotsen <digitallotsen@nsi-hannover.de>"
DEFAULT_OFFICE_NAME = "Programmbüro Digitallotsen"
DEFAULT_OFFICE_ORGANISATION = "Niedersächsisches Studieninstitut für kommunale Verwaltung e. V."

# Round trips of one SMTP session at most: greeting, EHLO, STARTTLS, EHLO again, AUTH (up to three
# exchanges), MAIL, RCPT, DATA, the message, QUIT. aiosmtplib's timeout holds per round trip.
# How long the sender keeps trying to record a delivery's outcome while the database is away.
RECORD_GIVE_UP_SECONDS = 60.0
# The sender claims a round of emails at once and delivers them over a few sessions: an email
# not started this long after its claim is handed back untried, so that the lease still covers it.
SENDER_START_WINDOW_SECONDS = 10.0
LEASE_MARGIN_SECONDS = 30.0


class NotificationSettings(CommonSettings):
    database_url: str = Field(
        "postgresql://notification@127.0.0.1:5432/notification",
        validation_alias="NOTIFICATION_DATABASE_URL",
    )
    database_password: SecretStr | None = Field(None, validation_alias="NOTIFICATION_DATABASE_PASSWORD")
    http_port: int = Field(8083, validation_alias="NOTIFICATION_HTTP_PORT")

    smtp_host: str = Field("127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(1025, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")
    smtp_tls: bool = Field(False, validation_alias="SMTP_TLS")
    smtp_timeout_seconds: float = Field(30.0, gt=0, validation_alias="SMTP_TIMEOUT_SECONDS")
    notification_delivery_deadline_seconds: float = Field(
        60.0, gt=0, validation_alias="NOTIFICATION_DELIVERY_DEADLINE_SECONDS"
    )

    mail_from: str = Field(DEFAULT_MAIL_FROM, validation_alias="MAIL_FROM")
    mail_office_name: str = Field(DEFAULT_OFFICE_NAME, validation_alias="MAIL_OFFICE_NAME")
    mail_office_organisation: str = Field(
        DEFAULT_OFFICE_ORGANISATION, validation_alias="MAIL_OFFICE_ORGANISATION"
    )
    # Extra closing lines under the office name, e.g. a phone number; "\n" separates lines.
    mail_signature: str = Field("", validation_alias="MAIL_SIGNATURE")

    # Temporary failures are retried for ever (never parked); from this many attempts on, each
    # further failure of an email is logged as an error ("email still undelivered").
    notification_max_attempts: int = Field(8, ge=1, validation_alias="NOTIFICATION_MAX_ATTEMPTS")
    # A 5xx reply or a refused address: how many attempts before the email is parked.
    notification_max_permanent_attempts: int = Field(
        1, ge=1, validation_alias="NOTIFICATION_MAX_PERMANENT_ATTEMPTS"
    )
    notification_backoff_base_seconds: float = Field(
        30.0, gt=0, validation_alias="NOTIFICATION_BACKOFF_BASE_SECONDS"
    )
    notification_backoff_max_seconds: float = Field(
        3600.0, gt=0, validation_alias="NOTIFICATION_BACKOFF_MAX_SECONDS"
    )
    sender_batch_size: int = Field(50, ge=1, validation_alias="NOTIFICATION_SENDER_BATCH_SIZE")
    sender_concurrency: int = Field(4, ge=1, validation_alias="NOTIFICATION_SENDER_CONCURRENCY")
    sender_poll_interval_seconds: float = Field(
        1.0, gt=0, validation_alias="NOTIFICATION_SENDER_POLL_INTERVAL_SECONDS"
    )

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_one_address(cls, value: str) -> str:
        sender_address(value)
        return value

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> NotificationSettings:
        if self.smtp_starttls and self.smtp_tls:
            raise ValueError("SMTP_STARTTLS and SMTP_TLS exclude each other: pick one")
        return self

    @property
    def sender(self) -> Address:
        return sender_address(self.mail_from)

    @property
    def office(self) -> Office:
        return Office(
            sender=self.sender,
            name=self.mail_office_name,
            organisation=self.mail_office_organisation,
            signature_lines=tuple(
                line for line in self.mail_signature.replace("\\n", "\n").splitlines() if line.strip()
            ),
        )

    @property
    def sender_delivery_deadline_seconds(self) -> float:
        """The longest one delivery may take over SMTP; past it, it counts as a temporary failure.

        A whole-delivery cap rather than a sum of per-command timeouts: the lease follows from it,
        and the lease is how long a crashed sender's emails wait before another sender takes them.
        """
        return self.notification_delivery_deadline_seconds

    @property
    def sender_lease_seconds(self) -> float:
        """How long a claimed email is hidden from other senders: the wait for a session, the
        delivery, then the recording of its round.

        A lease that ran out during a live delivery would let another sender send it again.
        """
        return (
            SENDER_START_WINDOW_SECONDS
            + self.sender_delivery_deadline_seconds
            + RECORD_GIVE_UP_SECONDS
            + LEASE_MARGIN_SECONDS
        )
