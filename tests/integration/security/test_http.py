"""Every HTTP endpoint (/healthz, /metrics, and whatever the health server serves later) listens
on loopback locally, and docker-compose publishes no port beyond 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib
import socket
import urllib.request
from pathlib import Path

import pytest
import yaml

from deploy.local.config import SERVICES, local_env
from shared.health import HealthServer
from shared.settings import REPO_ROOT, CommonSettings

LISTEN = "0A"  # TCP state in /proc/net/tcp


def listening_addresses(port: int) -> set[str]:
    """The local addresses that listen on `port`, from the kernel's socket tables."""
    found = set()
    for table, family in (("/proc/net/tcp", "ipv4"), ("/proc/net/tcp6", "ipv6")):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != LISTEN or int(hex_port, 16) != port:
                continue
            if family == "ipv4":
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
            else:
                found.add(f"ipv6:{address}")
    return found


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_listens_on_loopback_by_default(service: str) -> None:
    module = importlib.import_module(f"services.{service}.settings")
    settings_class = next(
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, CommonSettings) and value is not CommonSettings
    )
    assert settings_class.model_fields["http_host"].default == "127.0.0.1"
    assert local_env().get("HTTP_HOST", "127.0.0.1") == "127.0.0.1"


async def test_the_health_server_binds_to_loopback_only() -> None:
    async def healthy() -> dict[str, bool]:
        return {"database": True, "kafka": True}

    port = free_port()
    server = HealthServer(CommonSettings().http_host, port, healthy)
    await server.start()
    try:
        assert listening_addresses(port) == {"127.0.0.1"}
        for path in ("/healthz", "/metrics"):
            assert await asyncio.to_thread(status_of, f"http://127.0.0.1:{port}{path}") == 200
    finally:
        await server.stop()


def test_the_running_services_listen_on_loopback_only() -> None:
    env = local_env()
    ports = [int(env[f"{service.upper()}_HTTP_PORT"]) for service in SERVICES]
    running = {port: listening_addresses(port) for port in ports if listening_addresses(port)}
    if not running:
        pytest.skip("no service of the local stack runs (`make up` starts them)")
    assert all(addresses == {"127.0.0.1"} for addresses in running.values()), running


def test_docker_compose_publishes_nothing_beyond_loopback() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    published = [str(entry) for spec in compose["services"].values() for entry in spec.get("ports", [])]
    assert published
    assert all(entry.startswith("127.0.0.1:") for entry in published), published
