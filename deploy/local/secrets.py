"""The local stack's secrets under var/secrets/ (../shared/INTERFACES.md), created once by `make up`.

    var/secrets/                       0700
      ca.crt, ca.key                   the stack's CA (ca.key never leaves this folder)
      kafka/broker.pem                 the broker's key and certificate (SASL_SSL and the controller's mTLS)
      kafka/<principal>.password       a random password per principal of deploy/acl.yaml
      kafka/<principal>.conf           the librdkafka config of that principal (`kcat -F`)
      postgres/<role>.password         a random password per PostgreSQL role
      postgres/pgpass                  the same as a libpq password file, for the tests and psql

Every file is 0600. Nothing here is ever printed or logged: callers get paths, and a password
only as a SecretStr. Deleting a file makes the next `make up` create a new one; the broker and the
database take new passwords only when their state is reset (see docs/adr/0013-trust-boundary.md).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from shared.settings import read_secret_file

KAFKA_PRINCIPALS = ("admin", "portal", "registration", "funding", "notification", "operator")
POSTGRES_ROLES = ("postgres", "registration", "funding", "notification", "operator")
# The broker's certificate is its principal on the controller listener (mutual TLS).
BROKER_COMMON_NAME = "kafka-broker"
BROKER_PRINCIPAL = f"User:CN={BROKER_COMMON_NAME}"
# Names the broker answers to: loopback locally, the compose service's host name in docker-compose.
BROKER_DNS_NAMES = ("localhost", "kafka")
CERT_DAYS = 825
PASSWORD_BYTES = 24


def _write_private(path: Path, content: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    path.chmod(0o600)


def _new_password() -> str:
    # URL- and config-safe characters only: it goes into librdkafka configs and JAAS strings.
    return secrets.token_urlsafe(PASSWORD_BYTES)


@dataclass(frozen=True)
class LocalSecrets:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def broker_pem(self) -> Path:
        return self.root / "kafka" / "broker.pem"

    @property
    def pgpass(self) -> Path:
        return self.root / "postgres" / "pgpass"

    def kafka_password_file(self, principal: str) -> Path:
        return self.root / "kafka" / f"{principal}.password"

    def kafka_config_file(self, principal: str) -> Path:
        return self.root / "kafka" / f"{principal}.conf"

    def postgres_password_file(self, role: str) -> Path:
        return self.root / "postgres" / f"{role}.password"

    def kafka_password(self, principal: str) -> SecretStr:
        return read_secret_file(self.kafka_password_file(principal))

    @property
    def participant_key_file(self) -> Path:
        """FUNDING_PARTICIPANT_KEY_FILE of the local stack: the key of funding's pseudonymised
        participant identity (only programmes that check a prerequisite need it)."""
        return self.root / "funding" / "participant.key"

    def postgres_password(self, role: str) -> SecretStr:
        return read_secret_file(self.postgres_password_file(role))

    # --- creation ------------------------------------------------------------------------

    def ensure(self, *, kafka_bootstrap: str, principals: Iterable[str] = KAFKA_PRINCIPALS) -> None:
        """Create what is missing; rewrite the client configs (the port may have changed)."""
        for folder in (self.root, self.root / "kafka", self.root / "postgres", self.root / "funding"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        self._ensure_ca()
        self._ensure_broker_certificate()
        for principal in principals:
            self._ensure_password(self.kafka_password_file(principal))
            self._write_kafka_config(principal, kafka_bootstrap)
        for role in POSTGRES_ROLES:
            self._ensure_password(self.postgres_password_file(role))
        self._ensure_password(self.participant_key_file)
        self._write_pgpass()

    def _ensure_password(self, path: Path) -> None:
        if not path.exists():
            # No newline: Kafka's DirectoryConfigProvider (docker-compose) reads a file as it is.
            _write_private(path, _new_password().encode())

    def _ensure_ca(self) -> None:
        if self.ca_cert.exists() and self.ca_key.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Digitallotsen local stack CA")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.ca_key, _private_pem(key))
        _write_private(self.ca_cert, certificate.public_bytes(serialization.Encoding.PEM))
        self.broker_pem.unlink(missing_ok=True)  # signed by the old CA, if any

    def _ensure_broker_certificate(self) -> None:
        if self.broker_pem.exists():
            return
        ca_key = serialization.load_pem_private_key(self.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in BROKER_DNS_NAMES]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_COMMON_NAME)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # Server for the clients and the controller, client towards the controller (mTLS).
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        chain = certificate.public_bytes(serialization.Encoding.PEM) + self.ca_cert.read_bytes()
        _write_private(self.broker_pem, _private_pem(key) + chain)

    def _write_kafka_config(self, principal: str, bootstrap: str) -> None:
        password = self.kafka_password(principal).get_secret_value()
        lines = [
            f"# librdkafka config of the Kafka principal {principal!r} (kcat -F this-file)",
            f"bootstrap.servers={bootstrap}",
            "security.protocol=SASL_SSL",
            "sasl.mechanisms=SCRAM-SHA-512",
            f"sasl.username={principal}",
            f"sasl.password={password}",
            f"ssl.ca.location={self.ca_cert}",
        ]
        _write_private(self.kafka_config_file(principal), ("\n".join(lines) + "\n").encode())

    def _write_pgpass(self) -> None:
        # Any port: the stacks of the end-to-end tests share these passwords (tests/support/stack.py).
        lines = [
            f"127.0.0.1:*:*:{role}:{self.postgres_password(role).get_secret_value()}"
            for role in POSTGRES_ROLES
        ]
        _write_private(self.pgpass, ("\n".join(lines) + "\n").encode())

    def secret_values(self) -> list[str]:
        """Every password and private key: what must never appear in a log (the tests look)."""
        found = [
            self.kafka_password(p).get_secret_value()
            for p in KAFKA_PRINCIPALS
            if self.kafka_password_file(p).exists()
        ]
        found += [
            self.postgres_password(r).get_secret_value()
            for r in POSTGRES_ROLES
            if self.postgres_password_file(r).exists()
        ]
        if self.participant_key_file.exists():
            found.append(read_secret_file(self.participant_key_file).get_secret_value())
        return found


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # PKCS#8 without encryption: Kafka's PEM key store reads it as is; the file is 0600 in a 0700 folder.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def local_secrets(var_dir: Path) -> LocalSecrets:
    return LocalSecrets(var_dir / "secrets")


def main() -> None:
    """`python -m deploy.local.secrets`: create var/secrets without starting anything (for
    docker-compose, which mounts them as Docker secrets)."""
    from deploy.local.config import local_env, var_dir

    found = local_secrets(var_dir())
    found.ensure(kafka_bootstrap=local_env()["KAFKA_BOOTSTRAP_SERVERS"])
    print(f"secrets in {found.root} (mode 0700; nothing printed here is secret)")


if __name__ == "__main__":
    main()
