"""`lotse kommune` explains eligibility in words; the reasons follow the programme file."""

from __future__ import annotations

import pytest

from lotse.reference import ReferenceData, load_reference_data
from shared.directory import KommuneKind
from shared.program import DEFAULT_PROGRAM_FILE
from shared.settings import DEFAULT_DIRECTORY_FILE


@pytest.fixture(scope="module")
def reference() -> ReferenceData:
    return load_reference_data(DEFAULT_PROGRAM_FILE, DEFAULT_DIRECTORY_FILE)


@pytest.mark.parametrize(
    ("key", "eligible", "because"),
    [
        ("03241", True, "Landkreis in Land 03"),
        ("031010000000", True, "kreisfreie Stadt in Land 03"),
        ("033595403", True, "Samtgemeinde in Land 03"),
        ("032410001001", True, "Einheitsgemeinde in Land 03"),
        ("031515406001", False, "Mitgliedsgemeinde of the Samtgemeinde"),
        ("091620000000", False, "it lies in Land 09"),
    ],
)
def test_eligibility_and_its_reason(reference: ReferenceData, key: str, eligible: bool, because: str) -> None:
    kommune = reference.directory.get(key)
    assert kommune is not None
    found, why = reference.eligibility_of(kommune)
    assert found is eligible
    assert because in why


def test_a_member_is_pointed_to_its_samtgemeinde(reference: ReferenceData) -> None:
    member = reference.directory.get("031515406001")
    assert member is not None and member.parent_key is not None
    samtgemeinde = reference.directory.get(member.parent_key)
    assert samtgemeinde is not None
    assert f"{samtgemeinde.name} ({samtgemeinde.key})" in reference.eligibility_of(member)[1]


def test_gemeindefreie_gebiete_are_not_eligible(reference: ReferenceData) -> None:
    gebiete = [k for k in reference.directory.in_land("03") if k.kind is KommuneKind.GEMEINDEFREIES_GEBIET]
    assert len(gebiete) == 25
    assert all(not reference.eligibility_of(k)[0] for k in gebiete)
    assert "not among the eligible kinds" in reference.eligibility_of(gebiete[0])[1]


def test_the_programme_admits_exactly_440_kommunen(reference: ReferenceData) -> None:
    assert reference.eligible_kommunen == 440
    assert reference.budgets == {"2021-2022": None, "2023": 20_000_000}
