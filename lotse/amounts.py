"""Amounts on the command line: euros, German or plain (`200.000`, `200000`, `200.000,00`,
`200000,50`). A dot only groups thousands, never a decimal point: `2.50` is refused rather than
read as 250 € or 2,50 €, because an operator who typed it may have meant either."""

from __future__ import annotations

import re

# Whole euros (plain, or grouped by dots in threes), then optionally a comma and one or two cents digits.
_AMOUNT = re.compile(r"(?P<euros>[0-9]+|[0-9]{1,3}(?:\.[0-9]{3})+)(?:,(?P<cents>[0-9]{1,2}))?")
# The contract's upper bound on an amount (shared.events.Cents): one billion euros.
MAX_CENTS = 10**11


class AmountError(ValueError):
    """Not an amount in euros as the command line takes it; the message says what is."""


def parse_euros(text: str) -> int:
    """The amount in cents; AmountError for anything else (a dot as decimal point, sub-cent
    digits, a sign, letters, more than the contract allows). A trailing `€` or `EUR` is allowed."""
    cleaned = text.strip().removesuffix("€").removesuffix("EUR").strip()
    found = _AMOUNT.fullmatch(cleaned)
    if found is None:
        raise AmountError(
            f"{text!r} is not an amount in euros: digits, dots only between groups of three "
            "(200.000), a comma before at most two cent digits (200.000,50)"
        )
    cents = int(found["euros"].replace(".", "")) * 100 + int((found["cents"] or "0").ljust(2, "0"))
    if cents > MAX_CENTS:
        raise AmountError(f"{text!r} is more than the contract allows (1.000.000.000 €)")
    return cents
