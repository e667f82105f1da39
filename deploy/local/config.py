"""The local environment: ports, URLs and paths, each overridable from the caller's environment.

No secret is part of it: passwords are named by their files under var/secrets (`<NAME>_FILE`), and
which Kafka principal a process is comes from `principal_env` (the stack gives each service its own,
the tests and the stack's tools admin).
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.program import DEFAULT_PROGRAM_FILE
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT

SERVICES = ("registration", "funding", "notification")
DEFAULT_HTTP_PORTS = {"registration": 8081, "funding": 8082, "notification": 8083}


def var_dir() -> Path:
    return Path(os.environ.get("LOTSE_VAR_DIR", REPO_ROOT / "var")).resolve()


def secrets_dir() -> Path:
    return var_dir() / "secrets"


def principal_env(principal: str) -> dict[str, str]:
    """The variables that make a process authenticate to Kafka as `principal`."""
    return {
        "KAFKA_SASL_USERNAME": principal,
        "KAFKA_SASL_PASSWORD_FILE": str(secrets_dir() / "kafka" / f"{principal}.password"),
    }


def service_env(env: dict[str, str], service: str) -> dict[str, str]:
    """A service's environment: its own Kafka principal and only its own database password."""
    own = {
        key: value
        for key, value in env.items()
        if not key.endswith("_DATABASE_PASSWORD_FILE") and key != "POSTGRES_ADMIN_PASSWORD_FILE"
    }
    own[f"{service.upper()}_DATABASE_PASSWORD_FILE"] = env[f"{service.upper()}_DATABASE_PASSWORD_FILE"]
    own.pop("KAFKA_SASL_PASSWORD", None)
    own.pop("PGPASSFILE", None)
    if service != "funding":
        own.pop("FUNDING_PARTICIPANT_KEY_FILE", None)
    return {**own, **principal_env(service)}


def local_env() -> dict[str, str]:
    """Every variable the services, tests and tools read, with the local defaults."""
    get = os.environ.get
    kafka_port = get("KAFKA_PORT", "9092")
    postgres_port = get("POSTGRES_PORT", "5432")
    env = {
        "LOTSE_VAR_DIR": str(var_dir()),
        "KAFKA_PORT": kafka_port,
        "KAFKA_CONTROLLER_PORT": get("KAFKA_CONTROLLER_PORT", "9093"),
        "KAFKA_BOOTSTRAP_SERVERS": get("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{kafka_port}"),
        "POSTGRES_PORT": postgres_port,
        "POSTGRES_ADMIN_URL": get(
            "POSTGRES_ADMIN_URL", f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres"
        ),
        "POSTGRES_ADMIN_PASSWORD_FILE": get(
            "POSTGRES_ADMIN_PASSWORD_FILE", str(secrets_dir() / "postgres" / "postgres.password")
        ),
        "KAFKA_SECURITY_PROTOCOL": get("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        "KAFKA_SASL_MECHANISM": get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        "KAFKA_SSL_CA_FILE": get("KAFKA_SSL_CA_FILE", str(secrets_dir() / "ca.crt")),
        "SMTP_HOST": get("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": get("SMTP_PORT", "1025"),
        # The bundled sink offers STARTTLS with the stack's certificate; notification verifies it.
        "SMTP_CA_FILE": get("SMTP_CA_FILE", str(secrets_dir() / "ca.crt")),
        "SMTP_SINK_TLS_CERT": get("SMTP_SINK_TLS_CERT", str(secrets_dir() / "kafka" / "broker.pem")),
        "MAIL_DIR": get("MAIL_DIR", str(var_dir() / "mail")),
        # aiosmtpd: the bundled Python sink (STARTTLS, fault injection). postfix: Postfix's
        # smtp-sink, a C server made for measuring clients (the benchmark's), without STARTTLS.
        "SMTP_SINK": get("SMTP_SINK", "aiosmtpd"),
        # The bundled sink takes any number of sessions; a relay's own limit is often lower, so
        # the service's default stays at 4. With 4, the sender waits on round trips while both
        # it and the sink idle; 16 sent 850-870 emails/s after the burst's decisions instead of
        # 650 (python -m bench --burst 30000 --set NOTIFICATION_SENDER_CONCURRENCY=N).
        "NOTIFICATION_SENDER_CONCURRENCY": get("NOTIFICATION_SENDER_CONCURRENCY", "16"),
        "GV100AD_FILE": get("GV100AD_FILE", str(DEFAULT_DIRECTORY_FILE)),
        # One programme for the whole stack (every service and lotse); absolute, as cwds differ.
        "FUNDING_PROGRAM_FILE": str(Path(get("FUNDING_PROGRAM_FILE") or DEFAULT_PROGRAM_FILE).resolve()),
    }
    for service in SERVICES:
        upper = service.upper()
        env[f"{upper}_DATABASE_URL"] = get(
            f"{upper}_DATABASE_URL", f"postgresql://{service}@127.0.0.1:{postgres_port}/{service}"
        )
        env[f"{upper}_DATABASE_PASSWORD_FILE"] = get(
            f"{upper}_DATABASE_PASSWORD_FILE", str(secrets_dir() / "postgres" / f"{service}.password")
        )
        env[f"{upper}_HTTP_PORT"] = get(f"{upper}_HTTP_PORT", str(DEFAULT_HTTP_PORTS[service]))
    env["OPERATOR_DATABASE_PASSWORD_FILE"] = get(
        "OPERATOR_DATABASE_PASSWORD_FILE", str(secrets_dir() / "postgres" / "operator.password")
    )
    if not get("FUNDING_PARTICIPANT_KEY"):
        env["FUNDING_PARTICIPANT_KEY_FILE"] = get(
            "FUNDING_PARTICIPANT_KEY_FILE", str(secrets_dir() / "funding" / "participant.key")
        )
    return env
