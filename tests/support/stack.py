"""A whole second stack, started the way an operator does (`python -m deploy.local.stack up`), on
ports and a state folder of its own: the end-to-end tests, the fault suite and the benchmark use it
so that they never touch the infrastructure of the other tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from deploy.local.config import SERVICES, local_env, var_dir
from deploy.local.secrets import local_secrets
from shared.kafka import KafkaSecurity
from shared.settings import REPO_ROOT

# Everything deploy.local.config derives from the ports and the state folder: the outer stack's
# values must not leak into the second one.
DERIVED = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "POSTGRES_ADMIN_URL",
    "MAIL_DIR",
    "SMTP_HOST",
    "KAFKA_TOPIC_PREFIX",
    "KAFKA_SSL_CA_FILE",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "PGPASSFILE",
    "POSTGRES_ADMIN_PASSWORD_FILE",
    "OPERATOR_DATABASE_PASSWORD_FILE",
    *(f"{service.upper()}_DATABASE_URL" for service in SERVICES),
    *(f"{service.upper()}_DATABASE_PASSWORD_FILE" for service in SERVICES),
)
COMPONENTS = ("postgres", "kafka", "smtp", *SERVICES)


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]
    var_dir: Path

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def admin_security(self) -> KafkaSecurity:
        found = local_secrets(self.var_dir)
        return KafkaSecurity(username="admin", password=found.kafka_password("admin"), ca_file=found.ca_cert)

    def credentials_env(self) -> dict[str, str]:
        """What a process that drives this stack (chaos, the benchmark) sets to be its admin."""
        found = local_secrets(self.var_dir)
        return {
            "KAFKA_SASL_USERNAME": "admin",
            "KAFKA_SASL_PASSWORD_FILE": str(found.kafka_password_file("admin")),
            "KAFKA_SSL_CA_FILE": str(found.ca_cert),
            "PGPASSFILE": str(found.pgpass),
        }

    @property
    def mail_dir(self) -> Path:
        return Path(self.env["MAIL_DIR"])

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def lotse(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the operator CLI; tables are wide so that no id is folded across lines."""
        done = self.run("-m", "lotse.cli", *args, check=False, env={"COLUMNS": "250"})
        if check and done.returncode != 0:
            raise AssertionError(
                f"lotse {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def pids(self) -> dict[str, int]:
        found = {}
        for pidfile in (self.var_dir / "run").glob("*.pid"):
            found[pidfile.stem] = int(pidfile.read_text().split()[0])
        postmaster = self.var_dir / "pg" / "data" / "postmaster.pid"
        if postmaster.exists():
            found["postgres"] = int(postmaster.read_text().splitlines()[0])
        return found


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def share_secrets(inner_var_dir: Path) -> None:
    """Give a second stack the outer stack's CA and passwords (created if missing), so that the
    test process, which authenticates as the outer stack's admin, reaches both. Its client
    configs and password file are written by its own `up`."""
    outer = local_secrets(var_dir())
    outer.ensure(kafka_bootstrap=local_env()["KAFKA_BOOTSTRAP_SERVERS"])
    inner = local_secrets(inner_var_dir)
    shutil.copytree(
        outer.root, inner.root, ignore=shutil.ignore_patterns("*.conf", "pgpass"), dirs_exist_ok=True
    )


def stack_env(var_dir: Path, port_offset: int) -> dict[str, str]:
    share_secrets(var_dir)
    env = {key: value for key, value in os.environ.items() if key not in DERIVED}
    # Offset from the outer stack's ports, so that stacks of two checkouts can run side by side.
    outer = {name: int(value) for name, value in local_env().items() if name.endswith("_PORT")}
    env.update({name: str(port + port_offset) for name, port in outer.items()})
    env["LOTSE_VAR_DIR"] = str(var_dir)
    # Retry quickly: the SMTP sink of this stack never fails on purpose.
    env["NOTIFICATION_BACKOFF_BASE_SECONDS"] = "1"
    env["OUTBOX_POLL_INTERVAL_SECONDS"] = "0.5"
    printed = subprocess.run(
        [sys.executable, "-m", "deploy.local.stack", "env"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stack_ports(env: dict[str, str]) -> list[int]:
    names = [
        "KAFKA_PORT",
        "POSTGRES_PORT",
        "SMTP_PORT",
        *(f"{service.upper()}_HTTP_PORT" for service in SERVICES),
    ]
    return [int(env[name]) for name in names]
