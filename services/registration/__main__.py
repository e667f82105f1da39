"""`python -m services.registration`: run the registration service."""

from __future__ import annotations

import asyncio

from services.registration.app import build
from services.registration.settings import RegistrationSettings


def main() -> None:
    asyncio.run(build(RegistrationSettings()).app.run())


if __name__ == "__main__":
    main()
