"""The SMTP sink's own ceiling: how many emails/s it takes with nothing else to do.

`python -m bench.sink [--emails N] [--sessions C]` starts the sink (`deploy.local.smtp_sink`,
aiosmtpd) on a free port with a scratch mail folder, sends N emails of the size and shape of the
service's letters (about 4.4 KB in 103 lines) over C reused SMTP sessions, and prints emails/s
and the sink's CPU time per email. The burst's emails/s cannot exceed this on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

import aiosmtplib

from bench.observe import tree_cpu_seconds
from deploy.local.stack import smtp_ready, wait_for
from shared.settings import REPO_ROOT

LINE = b"Sehr geehrte Damen und Herren, die Anmeldung wurde =C3=BCbernommen.=\r\n"
HEADERS = b"From: sender@example.org\r\nTo: kontakt@kommune.example\r\nSubject: Bench\r\n\r\n"


def letter() -> bytes:
    return HEADERS + LINE * 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def send_all(port: int, emails: int, sessions: int) -> float:
    message = letter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(emails):
        queue.put_nowait(number)

    async def session() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
            while not queue.empty():
                queue.get_nowait()
                await client.sendmail("sender@example.org", ["kontakt@kommune.example"], message)

    began = time.monotonic()
    await asyncio.gather(*(session() for _ in range(sessions)))
    return time.monotonic() - began


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__)
    parser.add_argument("--emails", type=int, default=5_000)
    parser.add_argument("--sessions", type=int, default=4)
    args = parser.parse_args(argv)
    port = free_port()
    with tempfile.TemporaryDirectory() as mail_dir:
        env = {**os.environ, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "MAIL_DIR": mail_dir}
        command = [sys.executable, "-m", "deploy.local.smtp_sink"]
        sink = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_for("the SMTP sink", lambda: smtp_ready(env), logfile=None, timeout=30)
            cpu_before = tree_cpu_seconds(sink.pid) or 0.0
            seconds = asyncio.run(send_all(port, args.emails, args.sessions))
            cpu = (tree_cpu_seconds(sink.pid) or 0.0) - cpu_before
            stored = sum(1 for name in os.listdir(mail_dir) if name.endswith(".eml"))
        finally:
            sink.terminate()
            sink.wait(timeout=10)
    print(f"sink: {stored:,} of {args.emails:,} emails stored over {args.sessions} sessions")
    per_email = cpu / args.emails * 1e6
    print(f"sink: {args.emails / seconds:,.0f} emails/s, {per_email:,.0f} µs sink CPU per email")
    return 0 if stored == args.emails else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
