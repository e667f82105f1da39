"""`python -m services.notification`: run the notification service."""

from __future__ import annotations

import asyncio

from services.notification.app import build
from services.notification.settings import NotificationSettings


def main() -> None:
    asyncio.run(build(NotificationSettings()).app.run())


if __name__ == "__main__":
    main()
