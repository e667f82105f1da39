"""The letters byte for byte: a change of wording or MIME structure shows here as a diff."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.notification.golden_cases import CASES, golden_letter, golden_path


@pytest.mark.parametrize(("name", "event_type", "overrides"), CASES, ids=[case[0] for case in CASES])
def test_niedersachsen_letters_are_the_golden_bytes(
    name: str, event_type: str, overrides: dict[str, Any]
) -> None:
    assert golden_letter(name, event_type, overrides) == golden_path("niedersachsen", name).read_bytes()
