"""`python -m services.funding`: run the funding service."""

from __future__ import annotations

import asyncio

from services.funding.app import build
from services.funding.settings import FundingSettings


def main() -> None:
    asyncio.run(build(FundingSettings()).app.run())


if __name__ == "__main__":
    main()
