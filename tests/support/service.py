"""A service's ServiceRuntime, run in-process against a test's topic prefix and scratch database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from shared.runtime import ServiceRuntime
from shared.settings import CommonSettings
from shared.topics import Topics

SettingsT = TypeVar("SettingsT", bound=CommonSettings)
# Called with settings overrides; each call starts another instance (in the same consumer group).
ServiceFactory = Callable[..., AbstractAsyncContextManager[ServiceRuntime]]


def in_process(
    build: Callable[[SettingsT], ServiceRuntime],
    settings_class: type[SettingsT],
    *,
    kafka_bootstrap: str,
    topics: Topics,
    database_url: str,
    free_port: Callable[[], int],
    **defaults: Any,
) -> ServiceFactory:
    """Starts `build(settings_class(...))` on the test's topics and database, each on a free HTTP port.

    `defaults` are the test settings of every instance; the keyword arguments of a call override them.
    The FastStream app is started before the runtime is handed out and stopped when the block ends.
    """

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[ServiceRuntime]:
        settings = settings_class(
            **{
                "kafka_bootstrap_servers": kafka_bootstrap,
                "kafka_topic_prefix": topics.prefix,
                "database_url": database_url,
                "http_port": free_port(),
                **defaults,
                **overrides,
            }
        )
        runtime = build(settings)
        await runtime.app.start()
        try:
            yield runtime
        finally:
            await runtime.app.stop()

    return running
