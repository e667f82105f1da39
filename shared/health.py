"""A tiny HTTP endpoint per service, for supervisors and Prometheus.

- `/livez`: the process runs and answers (200 while it does); restart it when this fails.
- `/readyz`: the broker and the database are reachable, and every consumer and the outbox relay
  make progress while they have work; `/healthz` is the same, kept for existing supervisors.
- `/metrics`: Prometheus.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.logging import get_logger

log = get_logger(__name__)

HealthCheck = Callable[[], Awaitable[dict[str, bool]]]
READINESS_PATHS = ("/readyz", "/healthz")


class Progress:
    """Whether a worker has work in hand, and since when it has made no progress on it.

    Work that failed stays in hand while it keeps coming back (a rewound batch is redelivered at
    once); work that has not come back for the stall limit was taken elsewhere (a rebalance), and
    is not held against this worker.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waiting_since: float | None = None
        self._active = False
        self._last_attempt = 0.0

    def begin(self) -> None:
        """Work is in hand; work that failed and comes again keeps its first time."""
        now = self._clock()
        if self._waiting_since is None:
            self._waiting_since = now
        self._active = True
        self._last_attempt = now

    def advance(self) -> None:
        """Part of the work is done: progress, though more is in hand."""
        if self._waiting_since is not None:
            self._waiting_since = self._clock()

    def finish(self) -> None:
        """All the work in hand is done."""
        self._waiting_since = None
        self._active = False

    def failed(self) -> None:
        """The attempt failed; the work is expected back."""
        self._active = False
        self._last_attempt = self._clock()

    def stalled(self, after_seconds: float) -> bool:
        if self._waiting_since is None:
            return False
        now = self._clock()
        still_in_hand = self._active or now - self._last_attempt <= after_seconds
        return still_in_hand and now - self._waiting_since > after_seconds


class HealthServer:
    def __init__(self, host: str, port: int, check: HealthCheck) -> None:
        self._host = host
        self._port = port
        self._check = check
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("health endpoint listening", host=self._host, port=self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else "/"
            if path == "/metrics":
                status, content_type, body = 200, CONTENT_TYPE_LATEST, generate_latest()
            elif path == "/livez":
                status, content_type, body = 200, "application/json", b'{"status": "ok"}'
            elif path in READINESS_PATHS:
                checks = await self._check()
                status = 200 if all(checks.values()) else 503
                content_type = "application/json"
                body = json.dumps(
                    {"status": "ok" if status == 200 else "not ready", "checks": checks}
                ).encode()
            else:
                status, content_type, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
