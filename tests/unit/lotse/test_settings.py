"""lotse reads the services' own settings: one definition of each variable and its default."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from lotse.credentials import database_login, kafka_security
from lotse.settings import MailSinkSettings, OperatorSettings
from services.funding.settings import FundingSettings
from services.notification.settings import NotificationSettings
from services.registration.settings import RegistrationSettings
from shared.settings import REPO_ROOT, CommonSettings

Read = Callable[[OperatorSettings], Any]

# Every variable the README's configuration table marks as read by lotse, and where lotse sees it.
LOTSE_VARIABLES: dict[str, tuple[type[BaseSettings], str, Read]] = {
    "KAFKA_BOOTSTRAP_SERVERS": (
        CommonSettings,
        "kafka_bootstrap_servers",
        lambda config: config.common.kafka_bootstrap_servers,
    ),
    "KAFKA_TOPIC_PREFIX": (
        CommonSettings,
        "kafka_topic_prefix",
        lambda config: config.common.kafka_topic_prefix,
    ),
    "GV100AD_FILE": (CommonSettings, "gv100ad_file", lambda config: config.common.gv100ad_file),
    "REGISTRATION_DATABASE_URL": (
        RegistrationSettings,
        "database_url",
        lambda config: config.registration.database_url,
    ),
    "REGISTRATION_HTTP_PORT": (
        RegistrationSettings,
        "http_port",
        lambda config: config.registration.http_port,
    ),
    "FUNDING_DATABASE_URL": (FundingSettings, "database_url", lambda config: config.funding.database_url),
    "FUNDING_HTTP_PORT": (FundingSettings, "http_port", lambda config: config.funding.http_port),
    "FUNDING_PROGRAM_FILE": (FundingSettings, "program_file", lambda config: config.funding.program_file),
    "NOTIFICATION_DATABASE_URL": (
        NotificationSettings,
        "database_url",
        lambda config: config.notification.database_url,
    ),
    "NOTIFICATION_HTTP_PORT": (
        NotificationSettings,
        "http_port",
        lambda config: config.notification.http_port,
    ),
    "SMTP_HOST": (NotificationSettings, "smtp_host", lambda config: config.notification.smtp_host),
    "SMTP_PORT": (NotificationSettings, "smtp_port", lambda config: config.notification.smtp_port),
    "MAIL_DIR": (MailSinkSettings, "mail_dir", lambda config: config.mail_sink.mail_dir),
}


def another_value(default: Any) -> Any:
    """A value of the default's type that no default and no test stack uses."""
    if isinstance(default, Path):
        return Path("/changed/elsewhere")
    if isinstance(default, int):
        return 4321
    return "changed.example:1234"


def readme_lotse_variables() -> set[str]:
    table_row = re.compile(r"^\| `(?P<names>[^|]+)` \| (?P<used_by>[^|]+) \|")
    found: set[str] = set()
    for line in (REPO_ROOT / "README.md").read_text("utf-8").splitlines():
        row = table_row.match(line)
        if row and "lotse" in row["used_by"].split(", "):
            found.update(name.strip("` ") for name in row["names"].split(","))
    return found


@contextmanager
def changed_default(settings_class: type[BaseSettings], field: str, value: Any) -> Iterator[None]:
    """The class as if its source gave `field` another default. Subclasses take a copy of the
    fields they inherit, so the copies are changed too; a subclass declaring the field keeps its own."""
    classes = [settings_class, *_inheriting(settings_class, field)]
    originals = [cls.model_fields[field].default for cls in classes]
    try:
        for cls in classes:
            cls.model_fields[field].default = value
            cls.model_rebuild(force=True)
        yield
    finally:
        for cls, original in zip(classes, originals, strict=True):
            cls.model_fields[field].default = original
            cls.model_rebuild(force=True)


def _inheriting(settings_class: type[BaseSettings], field: str) -> list[type[BaseSettings]]:
    return [
        inheritor
        for sub in settings_class.__subclasses__()
        if field not in inspect.get_annotations(sub)
        for inheritor in [sub, *_inheriting(sub, field)]
    ]


@pytest.fixture
def no_lotse_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOTSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# lotse's own principal and role (lotse.credentials): the services' settings hold other ones.
CREDENTIAL_VARIABLES = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "KAFKA_SSL_CA_FILE",
    "OPERATOR_DATABASE_PASSWORD",
    "OPERATOR_DATABASE_PASSWORD_FILE",
}


def test_lotse_reads_every_variable_the_readme_gives_it() -> None:
    assert readme_lotse_variables() == set(LOTSE_VARIABLES) | CREDENTIAL_VARIABLES


def test_lotse_authenticates_with_the_principal_and_role_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "someone")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-secret")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("OPERATOR_DATABASE_PASSWORD", "operator-secret")
    # An owner's password in the environment is never what lotse logs in with.
    monkeypatch.setenv("FUNDING_DATABASE_PASSWORD", "funding-secret")
    security = kafka_security()
    assert (security.username, security.protocol) == ("someone", "SASL_SSL")
    assert security.password is not None and security.password.get_secret_value() == "kafka-secret"
    url, password = database_login("postgresql://funding@127.0.0.1:5432/funding")
    assert url == "postgresql://operator@127.0.0.1:5432/funding"
    assert password is not None and password.get_secret_value() == "operator-secret"


@pytest.mark.usefixtures("no_lotse_variables")
@pytest.mark.parametrize("variable", sorted(LOTSE_VARIABLES))
def test_a_default_changed_in_the_owners_settings_is_what_lotse_sees(variable: str) -> None:
    settings_class, field, read = LOTSE_VARIABLES[variable]
    default = read(OperatorSettings.from_environment())
    assert default == settings_class.model_fields[field].default
    changed = another_value(default)

    with changed_default(settings_class, field, changed):
        assert read(OperatorSettings.from_environment()) == changed

    assert read(OperatorSettings.from_environment()) == default


@pytest.mark.usefixtures("no_lotse_variables")
def test_the_environment_reaches_lotse(monkeypatch: pytest.MonkeyPatch) -> None:
    given = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker.example:9092",
        "KAFKA_TOPIC_PREFIX": "t42.",
        "GV100AD_FILE": "/data/GV100AD.txt",
        "REGISTRATION_DATABASE_URL": "postgresql://r@db.example/registration",
        "REGISTRATION_HTTP_PORT": "9181",
        "FUNDING_DATABASE_URL": "postgresql://f@db.example/funding",
        "FUNDING_HTTP_PORT": "9182",
        "FUNDING_PROGRAM_FILE": "/data/programme.toml",
        "NOTIFICATION_DATABASE_URL": "postgresql://n@db.example/notification",
        "NOTIFICATION_HTTP_PORT": "9183",
        "SMTP_HOST": "smtp.example",
        "SMTP_PORT": "2525",
        "MAIL_DIR": "/data/mail",
    }
    assert set(given) == set(LOTSE_VARIABLES)
    for name, value in given.items():
        monkeypatch.setenv(name, value)

    config = OperatorSettings.from_environment()

    seen = {name: str(read(config)) for name, (_, _, read) in LOTSE_VARIABLES.items()}
    assert seen == given
    assert config.topics.registration_events == "t42.registration.events"
