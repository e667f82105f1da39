"""`python -m services.funding`: run the funding service."""

from __future__ import annotations

from services.funding.app import build
from services.funding.settings import FundingSettings
from shared import event_loop


def main() -> None:
    event_loop.run(build(FundingSettings()).app.run())


if __name__ == "__main__":
    main()
