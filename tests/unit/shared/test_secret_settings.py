"""Every password is a SecretStr, from <NAME> or <NAME>_FILE; the variable wins; nothing shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.kafka import KafkaSecurity, KafkaSecurityError
from shared.settings import CommonSettings

SECRET = "s3cr3t-value-xyz"


@pytest.mark.parametrize(
    ("variable", "file_content", "expected"),
    [
        (SECRET, None, SECRET),
        (None, SECRET, SECRET),
        (None, SECRET + "\n", SECRET),  # one trailing newline is not part of it
        ("from-variable", SECRET, "from-variable"),  # the variable wins
        (None, None, None),
    ],
)
def test_a_password_comes_from_the_variable_or_its_file(
    variable: str | None,
    file_content: str | None,
    expected: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD_FILE", raising=False)
    if variable is not None:
        monkeypatch.setenv("KAFKA_SASL_PASSWORD", variable)
    if file_content is not None:
        path = tmp_path / "password"
        path.write_text(file_content)
        monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(path))
    settings = CommonSettings()
    found = settings.kafka_sasl_password
    assert (found.get_secret_value() if found is not None else None) == expected
    assert SECRET not in repr(settings) and SECRET not in str(settings)


def test_a_client_without_a_principal_is_refused_with_a_message_that_names_the_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SASL_PASSWORD_FILE",
        "KAFKA_SECURITY_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOTSE_VAR_DIR", str(tmp_path))  # no local secrets to fall back on
    with pytest.raises(KafkaSecurityError, match="KAFKA_SASL_USERNAME"):
        KafkaSecurity.from_environment()
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert KafkaSecurity.from_environment().client_options() == {"security_protocol": "PLAINTEXT"}


def test_the_client_options_carry_the_password_only_where_aiokafka_needs_it() -> None:
    settings = CommonSettings(kafka_sasl_username="funding", kafka_sasl_password=SECRET)
    security = KafkaSecurity.from_settings(settings)
    options = security.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "funding"
    assert options["sasl_plain_password"] == SECRET
    assert SECRET not in repr(security)
