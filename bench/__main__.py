"""`make bench`: start the bench stack, measure the floors, latency at several offered loads and
bursts of several sizes, report, stop the stack."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench.report import report
from bench.run import Options, run
from shared.settings import REPO_ROOT
from tests.support.stack import Stack, process_alive, stack_env

PORT_OFFSET = 20_000
VAR_DIR = REPO_ROOT / "var" / "bench-stack"
# Held while a benchmark runs: a second one would remove the first one's stack directory.
LOCK_FILE = REPO_ROOT / "var" / "bench-stack.lock"


def parse(argv: list[str]) -> tuple[Options, dict[str, str], bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--bursts", type=_numbers(int), default=(10_000, 100_000), help="burst sizes, comma-separated"
    )
    parser.add_argument(
        "--steady-rates",
        type=_numbers(float),
        default=(100.0, 250.0, 500.0, 1000.0),
        help="offered registrations/s of the latency phases, comma-separated",
    )
    parser.add_argument("--steady-seconds", type=float, default=20.0, help="length of each latency phase")
    parser.add_argument("--floor-events", type=int, help="events through each floor (default: largest burst)")
    parser.add_argument(
        "--sink",
        choices=("postfix", "aiosmtpd"),
        default="postfix",
        help="SMTP server: Postfix's smtp-sink (C, no STARTTLS) or the bundled Python sink",
    )
    parser.add_argument("--replicas", type=int, default=1, help="instances per service")
    parser.add_argument("--seminars", type=int, default=400)
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="earlier registrations, with their decisions and letters, written before the warm-up",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=180.0,
        help="longest warm-up at 100/s, which ends once the broker's JIT compilers fall quiet",
    )
    parser.add_argument("--stall-seconds", type=float, default=120.0, help="give up a phase without progress")
    parser.add_argument("--timeout-seconds", type=float, default=1800.0, help="longest wait per phase")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one 5,000 burst, 10 s at 100/s and 500/s, a warm-up of 30 s at most, for iterating",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="tuning variable for the bench stack"
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench stack running")
    args = parser.parse_args(argv)
    if args.quick:
        args.bursts, args.steady_rates, args.steady_seconds = (5_000,), (100.0, 500.0), 10.0
        args.warmup_seconds = min(args.warmup_seconds, 30.0)
    # smtp-sink speaks no STARTTLS: notification sends in plain text to it, on loopback only.
    sink = {"SMTP_SINK": args.sink} | ({"SMTP_STARTTLS": "false"} if args.sink == "postfix" else {})
    tuning = (
        sink
        | {"REPLICAS": str(args.replicas), "EVENT_LOOP": "uvloop"}
        | dict(item.split("=", 1) for item in args.set)
    )
    options = Options(
        bursts=tuple(args.bursts),
        steady_rates=tuple(args.steady_rates),
        steady_seconds=args.steady_seconds,
        floor_events=args.floor_events or max(args.bursts),
        seminars=args.seminars,
        stall_seconds=args.stall_seconds,
        timeout_seconds=args.timeout_seconds,
        history=args.history,
        warmup_seconds=args.warmup_seconds,
    )
    return options, tuning, args.keep_stack


def _numbers(kind: type[int] | type[float]) -> Callable[[str], tuple[float, ...]]:
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers, e.g. 100,500") from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: at least one number, each above 0")
        return values

    return parse


@contextlib.contextmanager
def only_benchmark(lock_file: Path | None = None) -> Iterator[bool]:
    """True inside while this process holds the bench stack's lock; False when another benchmark
    holds it (the lock ends with its process, however that ends)."""
    lock_file = lock_file or LOCK_FILE
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as held:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def main(argv: list[str]) -> int:
    options, tuning, keep = parse(argv)
    console = Console()
    with only_benchmark() as alone:
        if not alone:
            console.print(f"another benchmark is running (it holds {LOCK_FILE}): wait for it to end")
            return 1
        return _benchmark(options, tuning, keep, console)


def _benchmark(options: Options, tuning: dict[str, str], keep: bool, console: Console) -> int:
    began = time.monotonic()

    def log(message: str) -> None:
        console.log(f"[{time.monotonic() - began:6.0f} s] {message}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    left_running = [name for name, pid in Stack({}, VAR_DIR).pids().items() if process_alive(pid)]
    if left_running:
        # An earlier run kept its stack (--keep-stack) or was killed: stop what still runs from
        # the folder before removing it, or its processes would hold the ports without their data.
        log(f"stopping what an earlier run left running in {VAR_DIR}: {', '.join(sorted(left_running))}")
        Stack(stack_env(VAR_DIR, PORT_OFFSET), VAR_DIR).run(
            "-m", "deploy.local.stack", "down", check=False, timeout=300
        )
    shutil.rmtree(VAR_DIR, ignore_errors=True)
    VAR_DIR.mkdir(parents=True)
    os.chmod(VAR_DIR, 0o755)  # the postgres system user must reach its data folder
    env = {**stack_env(VAR_DIR, PORT_OFFSET), "LOG_LEVEL": "WARNING", **tuning}
    stack = Stack(env, VAR_DIR)
    # This process and the floor's hops publish, read and measure as the bench stack's admin.
    env.update(stack.credentials_env())
    os.environ.update({"LOTSE_VAR_DIR": str(VAR_DIR), **stack.credentials_env()})
    try:
        log(f"starting the bench stack in {VAR_DIR} (ports +{PORT_OFFSET}); settings: {tuning}")
        if tuning.get("SMTP_STARTTLS") == "false":
            log("smtp-sink offers no STARTTLS: notification sends to it in plain text (loopback only)")
        up = stack.run("-m", "deploy.local.stack", "up", check=False, timeout=600)
        if up.returncode != 0:
            console.print(up.stdout + up.stderr)
            return 1
        results = asyncio.run(run(stack, options, tuning, log))
        report(results, stamp, console)
        return 0
    finally:
        if not keep:
            log("stopping the bench stack")
            down = stack.run("-m", "deploy.local.stack", "down", check=False, timeout=300)
            if down.returncode != 0:
                console.print(down.stdout + down.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
