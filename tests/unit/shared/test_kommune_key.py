"""The kommune_key's shape: one rule, the same in Python and in the contract's pattern."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared.kommune_key import WellShapedKey, is_well_shaped

CONTRACT = TypeAdapter(WellShapedKey)


def accepted_by_contract(key: str) -> bool:
    try:
        CONTRACT.validate_python(key)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(
    ("key", "well_shaped"),
    [
        ("091", True),  # a Bezirk in Bayern (Oberbayern)
        ("031", True),  # well shaped; names no Kommune (a statistical region of Niedersachsen)
        ("09", False),
        ("0911", False),
        ("０９１", False),  # full-width
        ("091\n", False),
        ("03241", True),
        ("03241001", True),
        ("031515406", True),
        ("032410001001", True),
        ("0324", False),
        ("032410", False),
        ("0324100100110", False),
        ("０３２４１", False),  # full-width
        ("٠٣٢٤١", False),  # Arabic-Indic
        ("03241\n", False),
        ("\n03241", False),
        ("03 241", False),
        ("", False),
    ],
)
def test_shapes(key: str, well_shaped: bool) -> None:
    assert is_well_shaped(key) is well_shaped
    assert accepted_by_contract(key) is well_shaped


@given(st.text(alphabet=st.sampled_from("0123456789０٣\n a"), max_size=14))
def test_contract_pattern_agrees_with_the_python_rule(key: str) -> None:
    assert accepted_by_contract(key) is is_well_shaped(key)
