"""`python -m services.registration`: run the registration service."""

from __future__ import annotations

from services.registration.app import build
from services.registration.settings import RegistrationSettings
from shared import event_loop


def main() -> None:
    event_loop.run(build(RegistrationSettings()).app.run())


if __name__ == "__main__":
    main()
