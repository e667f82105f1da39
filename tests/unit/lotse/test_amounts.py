"""Amounts on the command line (`lotse budget set`, lotse.commands.parse_euros): euros, German or
plain; a dot is never a decimal point."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lotse.commands import MAX_CENTS, AmountError, parse_euros
from lotse.present import euros
from shared.commands import SetBudget


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("200.000", 20_000_000),
        ("200000", 20_000_000),
        ("200.000,00", 20_000_000),
        ("200000,50", 20_000_050),
        ("200000,5", 20_000_050),
        ("1.234.567,89", 123_456_789),
        ("0", 0),
        ("0,01", 1),
        ("999", 99_900),
        (" 150.000 ", 15_000_000),
        ("150.000,00 €", 15_000_000),
        ("150000 EUR", 15_000_000),
        ("1.000.000.000", MAX_CENTS),
    ],
)
def test_an_amount_in_euros(text: str, cents: int) -> None:
    assert parse_euros(text) == cents


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2.50",  # a dot as a decimal point: refused, not read as 250 or 2,50
        "200.00",
        "200.0000",
        "1.23.456",
        ".200",
        "200.",
        "200,",
        "200,123",  # below a cent
        "200.000.5",
        "-5",
        "+5",
        "1e6",
        "zweihundert",
        "200 000",
        "1.000.000.000,01",  # more than the contract takes
        "1000000001",
    ],
)
def test_what_is_not_an_amount(text: str) -> None:
    with pytest.raises(AmountError, match=r"amount in euros|more than the contract"):
        parse_euros(text)


@given(st.integers(min_value=0, max_value=MAX_CENTS))
def test_the_german_form_lotse_prints_reads_back(cents: int) -> None:
    printed = euros(cents)  # 1.234,56 €
    assert parse_euros(printed) == cents
    assert parse_euros(printed.removesuffix(" €").replace(".", "")) == cents


def test_the_upper_bound_is_the_contracts() -> None:
    fields = {"command_id": "0b6a1c9e-8f3d-4c1a-9d7e-2f5b8a6c4e21", "requested_by": "op", "reason": "r"}
    assert SetBudget.model_validate({**fields, "period_id": "2023", "budget_cents": MAX_CENTS}, strict=False)
    with pytest.raises(ValueError, match="less than or equal"):
        SetBudget.model_validate({**fields, "period_id": "2023", "budget_cents": MAX_CENTS + 1}, strict=False)
