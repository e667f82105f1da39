"""Starts and stops the local stack: `python -m deploy.local.stack up|down|infra-up|status|env|test`.

`run MODULE ARGS` runs a tool such as `lotse.cli` with the local environment.
`env [--as PRINCIPAL] [--show-secrets]` prints the variables of the local environment (secrets as
the paths of their files, unless --show-secrets).

Everything runs on 127.0.0.1 and keeps its state under var/ (LOTSE_VAR_DIR): deleting var/
resets all state. Every background process gets a pidfile in var/run; `down` stops exactly the
processes those files name, after checking that each pid still runs the command we started.

`up` starts REPLICAS instances of every service (default 1), each in its service's consumer group:
instance i (from 0) listens on the service's HTTP port + 10·i and is named `<service>` for 0 and
`<service>-<i>` beyond (var/run/funding-1.pid, var/log/funding-1.log).
"""

from __future__ import annotations

import asyncio
import base64
import glob
import hashlib
import hmac
import os
import shutil
import signal
import smtplib
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.local.acls import apply_acl_file
from deploy.local.config import SERVICES, local_env, principal_env, service_env, var_dir
from deploy.local.secrets import (
    BROKER_PRINCIPAL,
    KAFKA_PRINCIPALS,
    POSTGRES_ROLES,
    LocalSecrets,
    local_secrets,
)
from shared.kafka import KafkaSecurity, ensure_topics
from shared.settings import REPO_ROOT
from shared.topics import all_topics

KAFKA_DIR = REPO_ROOT / "deploy" / "local" / "kafka"
ROLES_SQL = REPO_ROOT / "deploy" / "sql" / "init-roles.sql"
KAFKA_HEAP = "-Xmx512m -Xms256m"
START_TIMEOUT = 120.0


def log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def kafka(self) -> Path:
        return self.root / "kafka"

    @property
    def pg(self) -> Path:
        return self.root / "pg"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def logfile(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def paths() -> Paths:
    found = Paths(var_dir())
    for folder in (found.run, found.logs):
        folder.mkdir(parents=True, exist_ok=True)
    return found


# --- processes -------------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running_pid(name: str, marker: str) -> int | None:
    """The pid in the component's pidfile, if that process still runs our command."""
    pidfile = paths().pidfile(name)
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if marker in _cmdline(pid):
        return pid
    pidfile.unlink(missing_ok=True)  # stale: the process is gone or the pid was reused
    return None


def spawn(name: str, command: Sequence[str], env: dict[str, str]) -> int:
    place = paths()
    with place.logfile(name).open("ab") as logfile:
        process = subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the make process, and ^C in it
        )
    place.pidfile(name).write_text(f"{process.pid}\n")
    return process.pid


def stop_pid(name: str, pid: int, timeout: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            break
        time.sleep(0.1)
    else:
        log(f"{name} did not stop in {timeout:.0f} s: killing it")
        os.kill(pid, signal.SIGKILL)
    paths().pidfile(name).unlink(missing_ok=True)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return True


def wait_for(
    what: str, check: Callable[[], bool], logfile: Path | None, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    tail = ""
    if logfile is not None and logfile.exists():
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
    raise StackError(f"{what} did not become healthy within {timeout:.0f} s. Last log lines:\n{tail}")


# --- Kafka -----------------------------------------------------------------------------------


def kafka_marker() -> str:
    return str(paths().kafka / "server.properties")


def _kafka_libs() -> Path:
    place = paths()
    libs = place.kafka / "libs"
    pom = KAFKA_DIR / "pom.xml"
    stamp = place.kafka / "libs.sha256"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if libs.is_dir() and stamp.exists() and stamp.read_text() == digest:
        return libs
    log("resolving the Kafka jars from Maven Central (pinned in deploy/local/kafka/pom.xml)")
    shutil.rmtree(libs, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    stamp.write_text(digest)
    return libs


def stack_secrets() -> LocalSecrets:
    return local_secrets(var_dir())


def ensure_secrets(env: dict[str, str]) -> LocalSecrets:
    found = stack_secrets()
    found.ensure(kafka_bootstrap=env["KAFKA_BOOTSTRAP_SERVERS"])
    return found


def admin_security() -> KafkaSecurity:
    found = stack_secrets()
    return KafkaSecurity(username="admin", password=found.kafka_password("admin"), ca_file=found.ca_cert)


def _kafka_config(env: dict[str, str]) -> Path:
    place = paths()
    data = place.kafka / "data"
    config = place.kafka / "server.properties"
    template = (KAFKA_DIR / "server.properties").read_text()
    found = stack_secrets()
    text = template.format(
        port=env["KAFKA_PORT"],
        controller_port=env["KAFKA_CONTROLLER_PORT"],
        data_dir=data,
        admin_password=found.kafka_password("admin").get_secret_value(),
        broker_pem=found.broker_pem,
        ca_file=found.ca_cert,
        super_users=f"User:admin;{BROKER_PRINCIPAL}",
    )
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    config.chmod(0o600)
    return config


def _credentials_digest(found: LocalSecrets) -> str:
    """Changes when a principal's password does: the SCRAM credentials are fixed at format time."""
    digest = hashlib.sha256()
    for principal in KAFKA_PRINCIPALS:
        digest.update(f"{principal}\0{found.kafka_password(principal).get_secret_value()}\0".encode())
    return digest.hexdigest()


def _format_kafka(classpath: str, config: Path) -> None:
    place = paths()
    data = place.kafka / "data"
    stamp = place.kafka / "credentials.sha256"
    found = stack_secrets()
    digest = _credentials_digest(found)
    if (data / "meta.properties").exists():
        if stamp.exists() and stamp.read_text() == digest:
            return
        # Data from before authentication, or principals whose passwords changed since the
        # format: the local broker's state is disposable, its credentials must match the files.
        log("the Kafka data does not hold the current SCRAM credentials: formatting it anew")
        shutil.rmtree(data)
    cluster_id = (
        subprocess.run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    scram = [
        argument
        for principal in KAFKA_PRINCIPALS
        for argument in (
            "--add-scram",
            f"SCRAM-SHA-512=[name={principal},password={found.kafka_password(principal).get_secret_value()}]",
        )
    ]
    done = subprocess.run(
        [
            "java",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            *scram,
        ],
        check=False,
        capture_output=True,
    )
    if done.returncode != 0:
        # The arguments hold passwords: never show the command, only the tool's own error.
        raise StackError(
            f"formatting the Kafka storage failed: {done.stderr.decode(errors='replace')[-2000:]}"
        )
    stamp.write_text(digest)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_kafka(env: dict[str, str]) -> bool:
    if running_pid("kafka", kafka_marker()) is not None:
        return False
    if _port_open(int(env["KAFKA_PORT"])):
        raise StackError(f"port {env['KAFKA_PORT']} is taken by a process that is not ours: set KAFKA_PORT")
    libs = _kafka_libs()
    config = _kafka_config(env)
    classpath = f"{libs}/*"
    _format_kafka(classpath, config)
    java_env = dict(env, KAFKA_HEAP_OPTS=KAFKA_HEAP)
    spawn(
        "kafka",
        [
            "java",
            *KAFKA_HEAP.split(),
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(config),
        ],
        java_env,
    )
    return True


def kafka_ready(env: dict[str, str]) -> bool:
    if not _port_open(int(env["KAFKA_PORT"])):
        return False
    try:
        asyncio.run(ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], all_topics(), security=admin_security()))
    except Exception:
        return False
    return True


def apply_acls(env: dict[str, str]) -> None:
    count = asyncio.run(apply_acl_file(env["KAFKA_BOOTSTRAP_SERVERS"], security=admin_security()))
    log(f"Kafka ACLs applied from deploy/acl.yaml ({count} bindings)")


# --- PostgreSQL ------------------------------------------------------------------------------


def pg_bin(tool: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return candidates[-1]
    found = shutil.which(tool)
    if found is None:
        raise StackError(f"PostgreSQL's {tool} is not installed: apt-get install postgresql (see .ci/run)")
    return found


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres system user instead.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _pg_data() -> Path:
    return paths().pg / "data"


def postgres_running() -> bool:
    pidfile = _pg_data() / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    return "postgres" in _cmdline(pid) and str(_pg_data()) in _cmdline(pid)


def _let_postgres_through(folder: Path) -> None:
    """The postgres system user must pass through every folder above its data (a checkout in a
    mkdtemp folder is mode 700): grant search, never read, where it is missing."""
    for parent in folder.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log(f"granting search permission (o+x) on {parent} so that PostgreSQL reaches var/pg")
            parent.chmod(mode | stat.S_IXOTH)


# The server log (var/log/postgres.log) holds no personal data (docs/personal-data.md): a failed
# constraint's DETAIL quotes the key (`Key (seminar_id, lower(participant_email))=(…)`), terse
# drops it with HINT, CONTEXT and QUERY; a failing statement's text and its bound parameters
# could quote input, neither is logged; and no statement is logged at all. The same settings are
# in the CloudNativePG Cluster (deploy/k8s/base/postgres/cluster.yaml).
PG_LOG_PRIVACY = (
    ("log_error_verbosity", "terse"),
    ("log_min_error_statement", "panic"),
    ("log_statement", "none"),
    ("log_parameter_max_length", "0"),
    ("log_parameter_max_length_on_error", "0"),
)

AUTH_STAMP = "scram-sha-256"
PG_HBA = (
    "# Loopback and the socket only, and never without a password: scram-sha-256 for every role,\n"
    "# the superuser included. Which database a role reaches is its CONNECT privilege\n"
    "# (deploy/sql/init-roles.sql): each service only its own, operator the three of them.\n"
    "local all all scram-sha-256\n"
    "host  all all 127.0.0.1/32 scram-sha-256\n"
)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a scram-sha-256 password (RFC 5802/7677): the server learns the
    verifier, never the password, so no statement or log line of it can hold the password."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _init_cluster() -> None:
    place = paths()
    data = _pg_data()
    place.pg.mkdir(parents=True, exist_ok=True)
    (place.pg / "run").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(place.pg, "postgres")
        shutil.chown(place.pg / "run", "postgres")
        _let_postgres_through(place.pg)
    stamp = place.pg / "auth"
    if (data / "PG_VERSION").exists():
        if stamp.exists() and stamp.read_text() == AUTH_STAMP:
            return
        # A cluster from before passwords (trust on the socket, passwords equal to role names):
        # the local database is disposable, its authentication must not be.
        log("the PostgreSQL cluster predates scram-sha-256 for every role: initialising it anew")
        shutil.rmtree(data)
    pwfile = place.pg / "superuser.pw"
    descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(stack_secrets().postgres_password("postgres").get_secret_value() + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
    try:
        subprocess.run(
            _as_postgres(
                [
                    pg_bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                ]
            ),
            check=True,
            capture_output=True,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    (data / "pg_hba.conf").write_text(PG_HBA)
    stamp.write_text(AUTH_STAMP)


def _role_password_env() -> dict[str, str]:
    """What deploy/sql/init-roles.sql reads with \\getenv: each role's scram verifier."""
    found = stack_secrets()
    return {
        f"PG_PASSWORD_{role.upper()}": scram_verifier(found.postgres_password(role).get_secret_value())
        for role in POSTGRES_ROLES
        if role != "postgres"
    }


def start_postgres(env: dict[str, str]) -> bool:
    if postgres_running():
        return False
    port = env["POSTGRES_PORT"]
    if _port_open(int(port)):
        raise StackError(f"port {port} is taken by a process that is not ours: set POSTGRES_PORT")
    _init_cluster()
    # random_page_cost 1.1: the data lives in memory or on SSD, where an index probe costs little
    # more than a sequential page; at 4 the planner scans whole tables for a batch's 500 keys.
    # synchronous_commit stays on: a crash must not lose a commit that the consumers already
    # acknowledged to Kafka (its offsets) or that the outbox relay marked as published.
    # track_commit_timestamp: the fault suite orders what the services applied by commit
    # (tests/reliability/model.py); it costs a few bytes per transaction.
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {paths().pg / 'run'} -c max_connections=300 "
        "-c shared_buffers=128MB -c random_page_cost=1.1 -c track_commit_timestamp=on "
        + " ".join(f"-c {name}={value}" for name, value in PG_LOG_PRIVACY)
    )
    logfile = paths().logfile("postgres")
    logfile.touch()
    if os.geteuid() == 0:
        shutil.chown(logfile, "postgres")
    subprocess.run(
        _as_postgres(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(_pg_data()),
                "-l",
                str(logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    psql_env = {
        **os.environ,
        "PGPASSWORD": stack_secrets().postgres_password("postgres").get_secret_value(),
        **_role_password_env(),
    }
    subprocess.run(
        _as_postgres(
            [
                pg_bin("psql"),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(paths().pg / "run"),
                "-p",
                port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-f",
                str(ROLES_SQL),
            ]
        ),
        env=psql_env,
        check=True,
        capture_output=True,
    )
    return True


def stop_postgres() -> None:
    subprocess.run(
        _as_postgres([pg_bin("pg_ctl"), "-D", str(_pg_data()), "-m", "fast", "-w", "stop"]),
        check=False,
        capture_output=True,
    )


# --- SMTP sink and services ------------------------------------------------------------------

SMTP_MARKER = "deploy.local.smtp_sink"
POSTFIX_SMTP_SINK = "/usr/sbin/smtp-sink"  # Debian's postfix package (deploy/local/bench-packages.sh)


def smtp_marker() -> str:
    """What the SMTP sink's command line holds: either sink, so that down and status find it."""
    pid_marker = _cmdline_of_pidfile("smtp")
    return POSTFIX_SMTP_SINK if POSTFIX_SMTP_SINK in pid_marker else SMTP_MARKER


def _cmdline_of_pidfile(name: str) -> str:
    try:
        return _cmdline(int(paths().pidfile(name).read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return ""


def smtp_command(env: dict[str, str]) -> list[str]:
    sink = env.get("SMTP_SINK", "aiosmtpd")
    if sink == "aiosmtpd":
        return [sys.executable, "-m", SMTP_MARKER]
    if sink != "postfix":
        raise StackError(f"SMTP_SINK={sink!r}: use aiosmtpd or postfix")
    if not Path(POSTFIX_SMTP_SINK).exists():
        raise StackError(f"SMTP_SINK=postfix needs {POSTFIX_SMTP_SINK}: bash deploy/local/bench-packages.sh")
    mail_dir = Path(env["MAIL_DIR"])
    mail_dir.mkdir(parents=True, exist_ok=True)
    command = [POSTFIX_SMTP_SINK]
    if os.geteuid() == 0:
        # It refuses to run as root; as nobody it must be able to write the mail folder.
        os.chmod(mail_dir, 0o777)
        command += ["-u", "nobody"]
    # One file per message, named by the second it arrived plus a random suffix; its mtime is the
    # moment the message was accepted.
    return [*command, "-d", f"{mail_dir}/%Y%m%dT%H%M%S.", f"{env['SMTP_HOST']}:{env['SMTP_PORT']}", "1024"]


def start_smtp(env: dict[str, str]) -> bool:
    if running_pid("smtp", smtp_marker()) is not None:
        return False
    if _port_open(int(env["SMTP_PORT"])):
        raise StackError(f"port {env['SMTP_PORT']} is taken by a process that is not ours: set SMTP_PORT")
    spawn("smtp", smtp_command(env), env)
    return True


def smtp_ready(env: dict[str, str]) -> bool:
    try:
        with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=2) as smtp:
            return smtp.ehlo()[0] == 250
    except OSError:
        return False


def service_marker(service: str) -> str:
    return f"services.{service}"


# Instance i of a service listens on its HTTP port + INSTANCE_PORT_STEP·i (../shared/INTERFACES.md).
INSTANCE_PORT_STEP = 10


def replicas(env: dict[str, str]) -> int:
    try:
        count = int(env.get("REPLICAS") or "1")
    except ValueError:
        raise StackError(f"REPLICAS must be a whole number, not {env.get('REPLICAS')!r}") from None
    if not 1 <= count < INSTANCE_PORT_STEP:
        raise StackError(f"REPLICAS must be between 1 and {INSTANCE_PORT_STEP - 1}")
    return count


def instance_name(service: str, instance: int) -> str:
    """Instance 0 keeps the service's own name, for the tools that read var/log/<service>.log."""
    return service if instance == 0 else f"{service}-{instance}"


def instance_port(service: str, env: dict[str, str], instance: int) -> int:
    return int(env[f"{service.upper()}_HTTP_PORT"]) + INSTANCE_PORT_STEP * instance


def instance_env(env: dict[str, str], service: str, instance: int) -> dict[str, str]:
    """A service instance's environment: its own port, and its instance id for static group
    membership (docs/adr/0017-instances-and-recovery.md)."""
    own = service_env(env, service)
    own[f"{service.upper()}_HTTP_PORT"] = str(instance_port(service, env, instance))
    own["SERVICE_INSTANCE"] = str(instance)
    return own


def service_instances(service: str) -> list[str]:
    """The names of the service's instances that have a pidfile, instance 0 first."""
    found = []
    for pidfile in paths().run.glob(f"{service}*.pid"):
        name = pidfile.stem
        suffix = name.removeprefix(service)
        if name == service or (suffix.startswith("-") and suffix[1:].isdigit()):
            found.append(name)
    return sorted(found, key=lambda name: int(name.removeprefix(service).lstrip("-") or "0"))


def start_service(service: str, env: dict[str, str], instance: int = 0) -> bool:
    name = instance_name(service, instance)
    if running_pid(name, service_marker(service)) is not None:
        return False
    spawn(name, [sys.executable, "-m", service_marker(service)], instance_env(env, service, instance))
    return True


def service_ready(service: str, env: dict[str, str], instance: int = 0) -> bool:
    port = instance_port(service, env, instance)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- commands --------------------------------------------------------------------------------

INFRA = ("postgres", "kafka", "smtp")


def infra_up(env: dict[str, str]) -> list[str]:
    """Start what is not running yet; returns the components this call started."""
    started = []
    ensure_secrets(env)
    if start_postgres(env):
        started.append("postgres")
    if start_kafka(env):
        started.append("kafka")
    if start_smtp(env):
        started.append("smtp")
    Path(env["MAIL_DIR"]).mkdir(parents=True, exist_ok=True)
    wait_for("Kafka", lambda: kafka_ready(env), paths().logfile("kafka"))
    apply_acls(env)
    wait_for("the SMTP sink", lambda: smtp_ready(env), paths().logfile("smtp"))
    log(f"infrastructure ready (started now: {', '.join(started) or 'nothing, all was running'})")
    return started


def services_up(env: dict[str, str]) -> list[str]:
    count = replicas(env)
    instances = [(service, instance) for service in SERVICES for instance in range(count)]
    started = [
        instance_name(service, instance)
        for service, instance in instances
        if start_service(service, env, instance)
    ]
    for service, instance in instances:
        name = instance_name(service, instance)
        wait_for(
            f"the {name} service",
            lambda s=service, i=instance: service_ready(s, env, i),  # type: ignore[misc]
            paths().logfile(name),
        )
    log(
        "services healthy: "
        + ", ".join(f"{instance_name(s, i)} on :{instance_port(s, env, i)}" for s, i in instances)
    )
    return started


def _service_of(name: str) -> str | None:
    return next((s for s in SERVICES if name == s or name.startswith(f"{s}-")), None)


def stop(components: Sequence[str]) -> None:
    for name in components:
        if name == "postgres":
            if postgres_running():
                stop_postgres()
                log("stopped postgres")
            continue
        if name in SERVICES:
            # Every instance of the service, whatever REPLICAS the stack was started with.
            for instance in reversed(service_instances(name) or [name]):
                _stop_process(instance, service_marker(name))
            continue
        service = _service_of(name)
        marker = {"kafka": kafka_marker(), "smtp": smtp_marker()}.get(name, service_marker(service or name))
        _stop_process(name, marker)


def _stop_process(name: str, marker: str) -> None:
    pid = running_pid(name, marker)
    if pid is not None:
        stop_pid(name, pid)
        log(f"stopped {name}")


def status(env: dict[str, str]) -> None:
    states = {
        "postgres": postgres_running(),
        "kafka": running_pid("kafka", kafka_marker()) is not None,
        "smtp": running_pid("smtp", smtp_marker()) is not None,
    }
    for service in SERVICES:
        for name in service_instances(service) or [service]:
            states[name] = running_pid(name, service_marker(service)) is not None
    for name, running in states.items():
        port = ""
        owner = _service_of(name)
        if running and owner is not None:
            instance = int(name.removeprefix(owner).lstrip("-") or "0")
            port = f"  :{instance_port(owner, env, instance)}"
        print(f"{name:16} {'running' if running else 'stopped'}{port}")


def logs_with_secrets() -> list[Path]:
    """Every log under var/ (the stacks of the end-to-end tests included) that holds a password."""
    values = [value for value in stack_secrets().secret_values() if value]
    found = []
    # var/log and the log folders of the stacks inside var/ (end-to-end, chaos, bench); never a
    # walk through the broker's and the database's data, which change under it.
    logfiles = [*var_dir().glob("log/*.log"), *var_dir().glob("*/log/*.log")]
    for logfile in sorted(logfiles):
        try:
            text = logfile.read_text(errors="replace")
        except OSError:
            continue
        if any(value in text for value in values):
            found.append(logfile)
    return found


def tools_env(env: dict[str, str]) -> dict[str, str]:
    """The tests' and the stack's own tools' environment: Kafka as admin, and every PostgreSQL role's
    password in a libpq password file (asyncpg and psql read PGPASSFILE)."""
    return {**env, **principal_env("admin"), "PGPASSFILE": str(stack_secrets().pgpass)}


def run_tests(env: dict[str, str], pytest_args: list[str]) -> int:
    started = infra_up(env)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=tools_env(env), cwd=REPO_ROOT, check=False
        )
        if result.returncode == 5:
            log("pytest collected no tests: that is a failure")
            return 1
        leaked = logs_with_secrets()
        if leaked:
            log(f"a secret value appears in {', '.join(str(path) for path in leaked)}: that is a failure")
            return 1
        return result.returncode
    finally:
        stop(list(reversed(started)))


def print_env(options: list[str]) -> None:
    """`env [--as PRINCIPAL] [--show-secrets]`: the local environment, secrets as their files.

    --as names the Kafka principal (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE); --show-secrets
    prints the passwords themselves instead of their files (KAFKA_SASL_PASSWORD, ...)."""
    variables = local_env()
    if "--as" in options:
        position = options.index("--as") + 1
        if position >= len(options) or options[position] not in KAFKA_PRINCIPALS:
            raise StackError(f"--as takes one of {', '.join(KAFKA_PRINCIPALS)}")
        variables.update(principal_env(options[position]))
    if "--show-secrets" in options:
        for key in [key for key in variables if key.endswith("_PASSWORD_FILE")]:
            path = Path(variables.pop(key))
            if path.is_file():
                variables[key.removesuffix("_FILE")] = path.read_text().strip()
    for key, value in sorted(variables.items()):
        print(f"export {key}={value}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    env = {**os.environ, **local_env()}
    try:
        if command == "env":
            print_env(rest)
        elif command == "infra-up":
            infra_up(env)
        elif command == "up":
            infra_up(env)
            services_up(env)
        elif command == "down":
            stop([*reversed(SERVICES), "smtp", "kafka", "postgres"])
        elif command == "services-down":
            stop(list(reversed(SERVICES)))
        elif command == "status":
            status(env)
        elif command == "test":
            return run_tests(env, rest)
        elif command == "run":
            # `run MODULE ARGS`: a tool (lotse) against this stack, on its ports, as its own
            # principal (lotse: operator), e.g. when only the ports were moved.
            if not rest:
                raise StackError("run takes a module: run lotse.cli demo")
            return subprocess.run(
                [sys.executable, "-m", *rest], env=env, cwd=REPO_ROOT, check=False
            ).returncode
        else:
            print(f"unknown command {command!r}\n{__doc__}")
            return 2
    except (StackError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None)
        log(f"failed: {exc}{(': ' + detail.decode(errors='replace')) if isinstance(detail, bytes) else ''}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
