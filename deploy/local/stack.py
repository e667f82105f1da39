"""Starts and stops the local stack: `python -m deploy.local.stack up|down|infra-up|status|env|test`.

Everything runs on 127.0.0.1 and keeps its state under var/ (LOTSE_VAR_DIR): deleting var/
resets all state. Every background process gets a pidfile in var/run; `down` stops exactly the
processes those files name, after checking that each pid still runs the command we started.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
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

from deploy.local.config import SERVICES, local_env, var_dir
from shared.kafka import ensure_topics
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


def _kafka_config(env: dict[str, str]) -> Path:
    place = paths()
    data = place.kafka / "data"
    config = place.kafka / "server.properties"
    template = (KAFKA_DIR / "server.properties").read_text()
    config.write_text(
        template.format(port=env["KAFKA_PORT"], controller_port=env["KAFKA_CONTROLLER_PORT"], data_dir=data)
    )
    return config


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
    if not (paths().kafka / "data" / "meta.properties").exists():
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
        subprocess.run(
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
            ],
            check=True,
            capture_output=True,
        )
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
        asyncio.run(ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], all_topics()))
    except Exception:
        return False
    return True


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


def _init_cluster() -> None:
    place = paths()
    data = _pg_data()
    place.pg.mkdir(parents=True, exist_ok=True)
    (place.pg / "run").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(place.pg, "postgres")
        shutil.chown(place.pg / "run", "postgres")
        _let_postgres_through(place.pg)
    if (data / "PG_VERSION").exists():
        return
    pwfile = place.pg / "superuser.pw"
    pwfile.write_text("postgres\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
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
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ]
        ),
        check=True,
        capture_output=True,
    )
    pwfile.unlink()
    (data / "pg_hba.conf").write_text(
        "# Loopback only. Each service role may reach only the databases it may CONNECT to.\n"
        "local all postgres trust\n"
        "host  all all 127.0.0.1/32 scram-sha-256\n"
    )


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
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {paths().pg / 'run'} -c max_connections=300 "
        "-c shared_buffers=128MB -c random_page_cost=1.1"
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


def start_smtp(env: dict[str, str]) -> bool:
    if running_pid("smtp", SMTP_MARKER) is not None:
        return False
    if _port_open(int(env["SMTP_PORT"])):
        raise StackError(f"port {env['SMTP_PORT']} is taken by a process that is not ours: set SMTP_PORT")
    spawn("smtp", [sys.executable, "-m", SMTP_MARKER], env)
    return True


def smtp_ready(env: dict[str, str]) -> bool:
    try:
        with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=2) as smtp:
            return smtp.ehlo()[0] == 250
    except OSError:
        return False


def service_marker(service: str) -> str:
    return f"services.{service}"


def start_service(service: str, env: dict[str, str]) -> bool:
    if running_pid(service, service_marker(service)) is not None:
        return False
    spawn(service, [sys.executable, "-m", service_marker(service)], env)
    return True


def service_ready(service: str, env: dict[str, str]) -> bool:
    port = env[f"{service.upper()}_HTTP_PORT"]
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
    if start_postgres(env):
        started.append("postgres")
    if start_kafka(env):
        started.append("kafka")
    if start_smtp(env):
        started.append("smtp")
    Path(env["MAIL_DIR"]).mkdir(parents=True, exist_ok=True)
    wait_for("Kafka", lambda: kafka_ready(env), paths().logfile("kafka"))
    wait_for("the SMTP sink", lambda: smtp_ready(env), paths().logfile("smtp"))
    log(f"infrastructure ready (started now: {', '.join(started) or 'nothing, all was running'})")
    return started


def services_up(env: dict[str, str]) -> list[str]:
    started = [service for service in SERVICES if start_service(service, env)]
    for service in SERVICES:
        wait_for(f"the {service} service", lambda s=service: service_ready(s, env), paths().logfile(service))  # type: ignore[misc]
    log("services healthy: " + ", ".join(f"{s} on :{env[f'{s.upper()}_HTTP_PORT']}" for s in SERVICES))
    return started


def stop(components: Sequence[str]) -> None:
    for name in components:
        if name == "postgres":
            if postgres_running():
                stop_postgres()
                log("stopped postgres")
            continue
        marker = {"kafka": kafka_marker(), "smtp": SMTP_MARKER}.get(name, service_marker(name))
        pid = running_pid(name, marker)
        if pid is not None:
            stop_pid(name, pid)
            log(f"stopped {name}")


def status(env: dict[str, str]) -> None:
    states = {
        "postgres": postgres_running(),
        "kafka": running_pid("kafka", kafka_marker()) is not None,
        "smtp": running_pid("smtp", SMTP_MARKER) is not None,
    }
    states.update({s: running_pid(s, service_marker(s)) is not None for s in SERVICES})
    for name, running in states.items():
        print(f"{name:14} {'running' if running else 'stopped'}")


def run_tests(env: dict[str, str], pytest_args: list[str]) -> int:
    started = infra_up(env)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], env=env, cwd=REPO_ROOT, check=False
        )
        if result.returncode == 5:
            log("pytest collected no tests: that is a failure")
            return 1
        return result.returncode
    finally:
        stop(list(reversed(started)))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    env = {**os.environ, **local_env()}
    try:
        if command == "env":
            for key, value in sorted(local_env().items()):
                print(f"export {key}={value}")
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
