"""`make bench`: start the bench stack, measure floor, burst and steady load, report, stop the stack."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from datetime import UTC, datetime

from rich.console import Console

from bench.report import report
from bench.run import Options, run
from shared.settings import REPO_ROOT
from tests.support.stack import Stack, stack_env

PORT_OFFSET = 20_000
VAR_DIR = REPO_ROOT / "var" / "bench-stack"


def parse(argv: list[str]) -> tuple[Options, dict[str, str], bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--burst", type=int, default=100_000, help="registrations in the burst")
    parser.add_argument("--steady-rate", type=float, default=1000.0, help="registrations/s offered")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--floor-events", type=int, help="events through the floor (default: --burst)")
    parser.add_argument("--seminars", type=int, default=400)
    parser.add_argument("--stall-seconds", type=float, default=120.0, help="give up a phase without progress")
    parser.add_argument("--timeout-seconds", type=float, default=1800.0, help="longest wait per phase")
    parser.add_argument("--quick", action="store_true", help="5,000 burst, 10 s steady, for iterating")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="tuning variable for the bench stack"
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench stack running")
    args = parser.parse_args(argv)
    if args.quick:
        args.burst, args.steady_seconds = 5_000, 10.0
    tuning = dict(item.split("=", 1) for item in args.set)
    options = Options(
        burst=args.burst,
        steady_rate=args.steady_rate,
        steady_seconds=args.steady_seconds,
        floor_events=args.floor_events or args.burst,
        seminars=args.seminars,
        stall_seconds=args.stall_seconds,
        timeout_seconds=args.timeout_seconds,
    )
    return options, tuning, args.keep_stack


def main(argv: list[str]) -> int:
    options, tuning, keep = parse(argv)
    console = Console()
    began = time.monotonic()

    def log(message: str) -> None:
        console.log(f"[{time.monotonic() - began:6.0f} s] {message}")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    shutil.rmtree(VAR_DIR, ignore_errors=True)
    VAR_DIR.mkdir(parents=True)
    os.chmod(VAR_DIR, 0o755)  # the postgres system user must reach its data folder
    env = {**stack_env(VAR_DIR, PORT_OFFSET), "LOG_LEVEL": "WARNING", **tuning}
    stack = Stack(env, VAR_DIR)
    # This process and the floor's hops publish, read and measure as the bench stack's admin.
    env.update(stack.credentials_env())
    os.environ.update({"LOTSE_VAR_DIR": str(VAR_DIR), **stack.credentials_env()})
    try:
        log(f"starting the bench stack in {VAR_DIR} (ports +{PORT_OFFSET}); tuning: {tuning or 'defaults'}")
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
