"""Prints the Secrets the deployment needs that no operator makes, with fresh random values:

    python -m deploy.k8s.secrets | kubectl apply -f -

- `<role>-db` for the PostgreSQL roles `registration`, `funding`, `notification`, `operator`
  (kubernetes.io/basic-auth, as CloudNativePG's managed roles want them; CloudNativePG sets the
  password on the role, and each service mounts its own as `<SERVICE>_DATABASE_PASSWORD`);
- `funding-participant-key` with `FUNDING_PARTICIPANT_KEY`, the key of the pseudonymised identity.

Apply it once: running it again makes new passwords (CloudNativePG then changes the roles' passwords,
and the services read the new ones when they restart). The values go to stdout only, never to a file.
Strimzi makes the Kafka passwords (one Secret per KafkaUser) and both operators their CAs;
`notification-smtp` holds the SMTP relay's login, which only its owner can give
(README, Deploying to Kubernetes).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

import yaml

DATABASE_ROLES = ("registration", "funding", "notification", "operator")
PARTICIPANT_KEY_SECRET = "funding-participant-key"
# Made by the person who deploys, from the SMTP relay's credentials.
EXTERNAL_SECRETS = frozenset({"notification-smtp"})
# The directory, gzipped (README, Deploying to Kubernetes).
EXTERNAL_CONFIG_MAPS = frozenset({"digitallotsen-reference"})


def database_secret_name(role: str) -> str:
    return f"{role}-db"


def made_secret_names() -> frozenset[str]:
    return frozenset({*(database_secret_name(role) for role in DATABASE_ROLES), PARTICIPANT_KEY_SECRET})


def _password() -> str:
    return secrets.token_urlsafe(32)


def secret_objects(namespace: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/basic-auth",
            "metadata": {
                "name": database_secret_name(role),
                "namespace": namespace,
                # CloudNativePG reloads a managed role's password when this Secret changes.
                "labels": {"cnpg.io/reload": "true", "app.kubernetes.io/part-of": "digitallotsen"},
            },
            "stringData": {"username": role, "password": _password()},
        }
        for role in DATABASE_ROLES
    ]
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": PARTICIPANT_KEY_SECRET,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "digitallotsen"},
            },
            "stringData": {"FUNDING_PARTICIPANT_KEY": secrets.token_hex(32)},
        }
    )
    return objects


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print the deployment's Secrets with random values")
    parser.add_argument("--namespace", default="digitallotsen")
    args = parser.parse_args(argv)
    sys.stdout.write(yaml.safe_dump_all(secret_objects(args.namespace), sort_keys=False, explicit_start=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
