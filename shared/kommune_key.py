"""The kommune_key: its shapes and its canonical forms, the one place that defines them.

A key is ASCII digits only, in one of five lengths: 3 (a Bezirk in Bayern: Land + Regierungsbezirk,
e.g. `091` Oberbayern), 5 (Landkreis, Region Hannover, kreisfreie Stadt or Stadtkreis), 8 (Gemeinde
AGS), 9 (Gemeindeverband, e.g. a Samtgemeinde) or 12 (Gemeinde ARS). Python's
`str.isdigit` and regular expressions' `\\d` also accept other digits (full-width "３", Arabic-Indic
"٣"), and `$` matches before a trailing newline, so neither is used on its own.

Canonical forms, which the registration service produces before anything else sees a key: the
12-digit ARS for every Gemeinde (a kreisfreie Stadt's 5-digit key and an 8-digit AGS map to it),
9 digits for a Gemeindeverband, 5 for a Landkreis, 3 for a Bezirk. A well-shaped key that the
directory does not know stays as given (a 3-digit key outside Bayern, e.g. one of Niedersachsen's
statistical regions, names no Kommune: the funding service declines it as `unknown_kommune`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

KEY_LENGTHS = frozenset({3, 5, 8, 9, 12})
BEZIRK_LENGTH = 3
KREIS_LENGTH = 5
AGS_LENGTH = 8
VERBAND_LENGTH = 9
ARS_LENGTH = 12


def is_ascii_digits(value: str) -> bool:
    """Only the characters 0-9, at least one."""
    return value.isascii() and value.isdigit()


def is_well_shaped(key: str) -> bool:
    """ASCII digits only, in one of the five lengths."""
    return is_ascii_digits(key) and len(key) in KEY_LENGTHS


# The same rule for the contract and its AsyncAPI document: `[0-9]`, not `\\d`, and pydantic's
# regex engine matches `$` only at the very end. tests/unit/shared/test_kommune_key.py keeps the
# two in step.
KEY_PATTERN = r"^([0-9]{3}|[0-9]{5}|[0-9]{8}|[0-9]{9}|[0-9]{12})$"

# A key in the contract after the registration service has checked and canonicalised it.
WellShapedKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
