"""`python -m services.notification`: run the notification service."""

from __future__ import annotations

from services.notification.app import build
from services.notification.settings import NotificationSettings
from shared import event_loop


def main() -> None:
    event_loop.run(build(NotificationSettings()).app.run())


if __name__ == "__main__":
    main()
