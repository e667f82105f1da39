"""The programme definition files: the shipped one, invalid ones, and rules of other Länder."""

from __future__ import annotations

from datetime import date

import pytest

from services.funding.settings import FundingSettings
from shared.directory import KommuneKind
from shared.program import DEFAULT_PROGRAM_FILE, ProgramError, load_program, parse_program
from tests.unit.funding.samples import SMALL_BUDGET_TOML, directory


def test_the_niedersachsen_programme_loads_with_its_rules() -> None:
    program = load_program(DEFAULT_PROGRAM_FILE)
    assert program.id == "niedersachsen"
    assert [(p.id, p.starts_on, p.ends_on, p.budget_cents) for p in program.periods] == [
        ("2021-2022", date(2021, 3, 4), date(2022, 12, 31), None),
        ("2023", date(2023, 1, 1), date(2023, 12, 31), 20_000_000),
    ]
    assert program.amount_cents(123_457, date(2023, 3, 1), date(2023, 3, 3)) == 61_728
    assert program.eligibility.lands == ["03"]
    assert set(program.eligibility.kinds) == {
        KommuneKind.LANDKREIS,
        KommuneKind.KREISFREIE_STADT,
        KommuneKind.EINHEITSGEMEINDE,
        KommuneKind.SAMTGEMEINDE,
    }
    hannover = directory().get("03241")
    assert hannover is not None and program.quota_for(hannover) == 2


def test_the_settings_default_to_the_niedersachsen_programme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUNDING_PROGRAM_FILE", raising=False)
    assert FundingSettings().program_file == DEFAULT_PROGRAM_FILE
    monkeypatch.setenv("FUNDING_PROGRAM_FILE", "/elsewhere/bayern.toml")
    monkeypatch.setenv("FUNDING_HTTP_PORT", "9999")
    settings = FundingSettings()
    assert str(settings.program_file) == "/elsewhere/bayern.toml"
    assert settings.http_port == 9999


def test_exactly_440_kommunen_are_eligible_in_the_2022_directory() -> None:
    program = load_program(DEFAULT_PROGRAM_FILE)
    eligible = [k for k in directory().kommunen.values() if program.eligibility.admits(k)]
    assert len(eligible) == 440
    counts = {kind: sum(1 for k in eligible if k.kind is kind) for kind in program.eligibility.kinds}
    assert counts == {
        KommuneKind.LANDKREIS: 37,
        KommuneKind.KREISFREIE_STADT: 8,
        KommuneKind.EINHEITSGEMEINDE: 281,
        KommuneKind.SAMTGEMEINDE: 114,
    }


BROKEN = {
    "overlapping periods": SMALL_BUDGET_TOML.replace("starts_on = 2023-01-01", "starts_on = 2022-12-31"),
    "share as a float": SMALL_BUDGET_TOML.replace('share = "0.5"', "share = 0.5"),
    "share above 1": SMALL_BUDGET_TOML.replace('share = "0.5"', 'share = "1.5"'),
    "unknown kind": SMALL_BUDGET_TOML.replace('"samtgemeinde"]', '"bezirk"]'),
    "unknown field": SMALL_BUDGET_TOML.replace("[quota]", "[quota]\nplaces_per_period = 1"),
    "negative budget": SMALL_BUDGET_TOML.replace("budget_cents = 150_000", "budget_cents = -1"),
    "period ends before it starts": SMALL_BUDGET_TOML.replace("ends_on = 2023-12-31", "ends_on = 2022-12-31"),
    "duplicate period id": SMALL_BUDGET_TOML.replace('id = "2023"', 'id = "2021-2022"'),
    "unknown amount rule": SMALL_BUDGET_TOML.replace('rule = "share_of_fee"', 'rule = "lump_sum"'),
    "not TOML": "id = ",
}


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_programme_is_refused(text: str) -> None:
    with pytest.raises(ProgramError):
        parse_program(text)


def test_a_missing_programme_file_is_refused() -> None:
    with pytest.raises(ProgramError, match=r"nowhere\.toml"):
        load_program("/nowhere/nowhere.toml")


# The format must express the other Länder's rules (../shared/DOMAIN.md) as configuration.
BAYERN_LIKE = """
id = "bayern"
name = "Grundkurs Digitallotse Bayern"
[amount]
rule = "share_of_fee"
share = "0.8"
[quota]
places = 1
[eligibility]
lands = ["09"]
kinds = ["landkreis", "kreisfreie_stadt", "einheitsgemeinde", "mitgliedsgemeinde"]
[[periods]]
id = "2024-2025"
starts_on = 2024-01-01
ends_on = 2025-12-31
budget_cents = 64_000_000
"""

BADEN_WUERTTEMBERG_LIKE = """
id = "baden-wuerttemberg"
name = "Digitalakademie@bw Grundkurs"
[amount]
rule = "per_seminar_day"
cents_per_day = 10_000
[quota]
places = 0
[[quota.bands]]
kinds = ["einheitsgemeinde", "mitgliedsgemeinde", "kreisfreie_stadt"]
max_population = 9_999
places = 1
[[quota.bands]]
kinds = ["einheitsgemeinde", "mitgliedsgemeinde", "kreisfreie_stadt"]
min_population = 10_000
max_population = 30_000
places = 2
[[quota.bands]]
kinds = ["einheitsgemeinde", "mitgliedsgemeinde", "kreisfreie_stadt"]
min_population = 30_001
max_population = 130_000
places = 3
[[quota.bands]]
kinds = ["landkreis"]
max_population = 175_000
places = 4
[[quota.bands]]
kinds = ["landkreis"]
min_population = 175_001
places = 5
[eligibility]
lands = ["08"]
kinds = ["landkreis", "kreisfreie_stadt", "einheitsgemeinde", "mitgliedsgemeinde"]
[[periods]]
id = "2024"
starts_on = 2024-01-01
ends_on = 2024-12-31
"""


def test_bayern_80_percent_for_the_first_participant_is_configuration() -> None:
    program = parse_program(BAYERN_LIKE)
    muenchen = directory().get("091620000000")
    assert muenchen is not None and program.eligibility.admits(muenchen)
    assert program.quota_for(muenchen) == 1
    assert program.amount_cents(99_999, date(2024, 5, 6), date(2024, 5, 9)) == 79_999


def test_baden_wuerttemberg_per_day_and_population_quota_is_configuration() -> None:
    program = parse_program(BADEN_WUERTTEMBERG_LIKE)
    assert program.amount_cents(50_000, date(2024, 5, 6), date(2024, 5, 8)) == 30_000
    assert program.amount_cents(20_000, date(2024, 5, 6), date(2024, 5, 8)) == 20_000  # never above the fee
    bw = [k for k in directory().in_land("08") if program.eligibility.admits(k)]
    by_places = {
        (k.kind, program.quota_for(k))
        for k in bw
        if k.kind in (KommuneKind.LANDKREIS, KommuneKind.EINHEITSGEMEINDE, KommuneKind.MITGLIEDSGEMEINDE)
    }
    for kommune in bw:
        places = program.quota_for(kommune)
        if kommune.kind is KommuneKind.LANDKREIS:
            assert places == (4 if kommune.population <= 175_000 else 5), kommune
        elif kommune.population < 10_000:
            assert places == 1, kommune
        elif kommune.population <= 30_000:
            assert places == 2, kommune
        elif kommune.population <= 130_000:
            assert places == 3, kommune
    assert {places for _, places in by_places} >= {1, 2, 3, 4, 5}
