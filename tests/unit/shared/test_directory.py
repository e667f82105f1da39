"""The GV100AD directory, parsed strictly from the official file, and the kommune_key forms."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from shared.directory import (
    KIND_LABELS_DE,
    Directory,
    DirectoryFormatError,
    Kommune,
    KommuneKind,
    load_directory,
    parse_directory,
)
from shared.kommune_key import is_well_shaped
from shared.settings import DEFAULT_DIRECTORY_FILE


@pytest.fixture(scope="module")
def directory():  # type: ignore[no-untyped-def]
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


def test_lower_saxony_counts_match_the_published_figures(directory) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(k.kind for k in directory.in_land("03"))
    assert kinds == {
        KommuneKind.LANDKREIS: 37,
        KommuneKind.KREISFREIE_STADT: 8,
        KommuneKind.EINHEITSGEMEINDE: 281,
        KommuneKind.SAMTGEMEINDE: 114,
        KommuneKind.MITGLIEDSGEMEINDE: 650,
        KommuneKind.GEMEINDEFREIES_GEBIET: 25,
    }


@pytest.mark.parametrize(
    ("given", "canonical", "name", "kind"),
    [
        ("03241", "03241", "Region Hannover", KommuneKind.LANDKREIS),
        ("03101", "031010000000", "Braunschweig, Stadt", KommuneKind.KREISFREIE_STADT),
        ("03101000", "031010000000", "Braunschweig, Stadt", KommuneKind.KREISFREIE_STADT),
        ("03241001", "032410001001", "Hannover, Landeshauptstadt", KommuneKind.EINHEITSGEMEINDE),
        ("032410001001", "032410001001", "Hannover, Landeshauptstadt", KommuneKind.EINHEITSGEMEINDE),
        ("033595403", "033595403", "Harsefeld", KommuneKind.SAMTGEMEINDE),
        ("031515401", "031515401", "Boldecker Land", KommuneKind.SAMTGEMEINDE),
        ("03151001", "031515406001", "Adenbüttel", KommuneKind.MITGLIEDSGEMEINDE),
    ],
)
def test_every_key_form_maps_to_its_canonical_kommune(directory, given, canonical, name, kind) -> None:  # type: ignore[no-untyped-def]
    assert directory.canonical_key(given) == canonical
    kommune = directory.get(canonical)
    assert kommune is not None
    assert (kommune.name, kommune.kind) == (name, kind)


def test_member_knows_its_samtgemeinde(directory) -> None:  # type: ignore[no-untyped-def]
    member = directory.get("031515406001")
    assert member.parent_key == "031515406"
    samtgemeinde = directory.get("031515406")
    assert samtgemeinde.kind is KommuneKind.SAMTGEMEINDE


def test_well_shaped_unknown_key_stays_as_given(directory) -> None:  # type: ignore[no-untyped-def]
    assert directory.canonical_key("03999") == "03999"
    assert directory.get("03999") is None


# Full-width and Arabic-Indic digits, and a trailing newline, pass `str.isdigit` or `\\d$`.
BADLY_SHAPED = ["", "0324", "032411", "0324100100", "03241a", " 03241", "0324100100011"]
OTHER_DIGITS = ["０３２４１", "٠٣٢٤١", "03241\n"]


@pytest.mark.parametrize("key", [*BADLY_SHAPED, *OTHER_DIGITS])
def test_badly_shaped_keys_are_refused(directory, key: str) -> None:  # type: ignore[no-untyped-def]
    assert not is_well_shaped(key)
    with pytest.raises(ValueError, match="wrong shape"):
        directory.canonical_key(key)


def test_parser_is_strict_about_line_length(tmp_path: Path) -> None:
    lines = DEFAULT_DIRECTORY_FILE.read_text("utf-8").splitlines()[:3]
    broken = tmp_path / "broken.txt"
    broken.write_text("\n".join([*lines, lines[-1][:-1]]) + "\n", "utf-8")
    with pytest.raises(DirectoryFormatError, match=r":4: line has 219 characters"):
        parse_directory(broken)


def test_parser_refuses_unknown_record_types(tmp_path: Path) -> None:
    line = DEFAULT_DIRECTORY_FILE.read_text("utf-8").splitlines()[0]
    broken = tmp_path / "broken.txt"
    broken.write_text("99" + line[2:] + "\n", "utf-8")
    with pytest.raises(DirectoryFormatError, match="unknown Satzart"):
        parse_directory(broken)


# --- Other Länder (../shared/DOMAIN.md "Other Länder"): Bezirke, Verwaltungsgemeinschaften, Kreise ---

BAYERNS_BEZIRKE = {
    "091": "Oberbayern",
    "092": "Niederbayern",
    "093": "Oberpfalz",
    "094": "Oberfranken",
    "095": "Mittelfranken",
    "096": "Unterfranken",
    "097": "Schwaben",
}


def _kommune(directory: Directory, key: str) -> Kommune:
    kommune = directory.get(key)
    assert kommune is not None, key
    return kommune


def test_bayerns_seven_bezirke_are_kommunen_with_their_3_digit_keys(directory: Directory) -> None:
    bezirke = {k.key: k.name for k in directory.kommunen.values() if k.kind is KommuneKind.BEZIRK}
    assert bezirke == BAYERNS_BEZIRKE
    for key in BAYERNS_BEZIRKE:
        assert directory.canonical_key(key) == key
        assert _kommune(directory, key).land == "09"


def test_a_bezirks_population_is_the_sum_of_its_gemeinden(directory: Directory) -> None:
    for key in BAYERNS_BEZIRKE:
        gemeinden = [k for k in directory.in_land("09") if len(k.key) == 12 and k.key.startswith(key)]
        assert _kommune(directory, key).population == sum(k.population for k in gemeinden) > 1_000_000
    assert sum(_kommune(directory, key).population for key in BAYERNS_BEZIRKE) == sum(
        k.population for k in directory.in_land("09") if len(k.key) == 12
    )


def test_a_kreises_population_is_the_sum_of_its_gemeinden(directory: Directory) -> None:
    landkreise = [k for k in directory.kommunen.values() if k.kind is KommuneKind.LANDKREIS]
    assert len(landkreise) > 100
    gemeinden_by_kreis: Counter[str] = Counter()
    for kommune in directory.kommunen.values():
        if len(kommune.key) == 12:
            gemeinden_by_kreis[kommune.key[:5]] += kommune.population
    for landkreis in landkreise:
        assert landkreis.population == gemeinden_by_kreis[landkreis.key] > 0, landkreis
    assert _kommune(directory, "09171").population == 113_798  # Altötting


@pytest.mark.parametrize(
    ("land", "regierungsbezirk"),
    [("03", "031"), ("03", "034"), ("08", "081"), ("08", "084"), ("05", "051")],
)
def test_regierungsbezirke_outside_bayern_are_no_kommunen(
    directory: Directory, land: str, regierungsbezirk: str
) -> None:
    assert directory.canonical_key(regierungsbezirk) == regierungsbezirk  # well shaped, stays as given
    assert directory.get(regierungsbezirk) is None
    assert not any(k.kind is KommuneKind.BEZIRK for k in directory.in_land(land))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # Bayern: a member of a Verwaltungsgemeinschaft (Textkennzeichen 54), by AGS and by ARS
        (
            "09171114",
            ("091715101114", "Emmerting", KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, "091715101"),
        ),
        (
            "091715101114",
            ("091715101114", "Emmerting", KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, "091715101"),
        ),
        # Baden-Württemberg: a member of a Gemeindeverwaltungsverband (Textkennzeichen 56)
        (
            "08115001",
            ("081155001001", "Aidlingen", KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT, "081155001"),
        ),
        # A Stadtkreis is one Kommune: its Kreis key maps to its Gemeinde
        ("08111", ("081110000000", "Stuttgart, Landeshauptstadt", KommuneKind.KREISFREIE_STADT, None)),
        ("08211", ("082110000000", "Baden-Baden, Stadt", KommuneKind.KREISFREIE_STADT, None)),
        ("09162", ("091620000000", "München, Landeshauptstadt", KommuneKind.KREISFREIE_STADT, None)),
        ("09171", ("09171", "Altötting", KommuneKind.LANDKREIS, None)),
        ("091", ("091", "Oberbayern", KommuneKind.BEZIRK, None)),
    ],
)
def test_kommunen_of_bayern_and_baden_wuerttemberg(
    directory: Directory, given: str, expected: tuple[str, str, KommuneKind, str | None]
) -> None:
    canonical = directory.canonical_key(given)
    kommune = _kommune(directory, canonical)
    assert (canonical, kommune.name, kommune.kind, kommune.parent_key) == expected


@pytest.mark.parametrize(
    ("land", "expected"),
    [
        (
            "09",
            {
                KommuneKind.BEZIRK: 7,
                KommuneKind.LANDKREIS: 71,
                KommuneKind.KREISFREIE_STADT: 25,
                KommuneKind.EINHEITSGEMEINDE: 1_049,
                KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT: 982,
                KommuneKind.GEMEINDEVERBAND: 311,
                KommuneKind.GEMEINDEFREIES_GEBIET: 173,
            },
        ),
        (
            "08",
            {
                KommuneKind.LANDKREIS: 35,
                KommuneKind.KREISFREIE_STADT: 9,
                KommuneKind.EINHEITSGEMEINDE: 181,
                KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT: 911,
                KommuneKind.GEMEINDEVERBAND: 270,
                KommuneKind.GEMEINDEFREIES_GEBIET: 2,
            },
        ),
    ],
)
def test_bayern_and_baden_wuerttemberg_counts(
    directory: Directory, land: str, expected: dict[KommuneKind, int]
) -> None:
    assert Counter(k.kind for k in directory.in_land(land)) == expected


def test_samtgemeinde_members_stay_mitgliedsgemeinden(directory: Directory) -> None:
    # Niedersachsen excludes them; Verwaltungsgemeinschaften exist only outside Land 03.
    members = [k for k in directory.in_land("03") if k.parent_key is not None]
    assert len(members) == 650
    assert {k.kind for k in members} == {KommuneKind.MITGLIEDSGEMEINDE}
    assert all(_kommune(directory, k.parent_key or "").kind is KommuneKind.SAMTGEMEINDE for k in members)


def _first_lines(count: int) -> list[str]:
    return DEFAULT_DIRECTORY_FILE.read_text("utf-8").splitlines()[:count]


def _with_line(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "directory.txt"
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def _replace(line: str, start: int, value: str) -> str:
    """`value` at 1-based position `start`, the line's length unchanged."""
    return line[: start - 1] + value + line[start - 1 + len(value) :]


BAYERN_LAND = "102022123109          Bayern".ljust(220)
OBERBAYERN = "2020221231091         Oberbayern".ljust(220)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([BAYERN_LAND, OBERBAYERN, OBERBAYERN], "Bezirk 091 appears twice"),
        ([BAYERN_LAND, _replace(OBERBAYERN, 14, "62")], "Regierungsbezirk record has Kreis or Gemeinde"),
        ([BAYERN_LAND, _replace(OBERBAYERN, 13, "x")], "Regierungsbezirk '09x' is not numeric"),
        ([BAYERN_LAND, _replace(OBERBAYERN, 11, "０９")], "Land '０９' is not numeric"),
    ],
    ids=["twice", "with a Kreis", "letter", "full-width digits"],
)
def test_parser_is_strict_about_regierungsbezirke(tmp_path: Path, lines: list[str], error: str) -> None:
    with pytest.raises(DirectoryFormatError, match=error):
        parse_directory(_with_line(tmp_path, lines))


def test_parser_refuses_a_bayern_gemeinde_outside_any_bezirk(tmp_path: Path) -> None:
    lines = DEFAULT_DIRECTORY_FILE.read_text("utf-8").splitlines()
    oberbayern_without_its_record = [line for line in lines if line[10:13] == "091" and line[:2] != "20"]
    with pytest.raises(
        DirectoryFormatError, match=r"Gemeinde 091\d+ lies in Bezirk 091, which has no record"
    ):
        parse_directory(_with_line(tmp_path, oberbayern_without_its_record))


@pytest.mark.parametrize(
    ("satzart", "textkennzeichen", "error"),
    [("50", "59", "Gemeindeverband Textkennzeichen '59'"), ("60", "68", "Gemeinde Textkennzeichen '68'")],
)
def test_parser_refuses_unknown_textkennzeichen(
    tmp_path: Path, satzart: str, textkennzeichen: str, error: str
) -> None:
    lines = _first_lines(40)
    number = next(i for i, line in enumerate(lines) if line.startswith(satzart))
    lines[number] = _replace(lines[number], 123, textkennzeichen)
    with pytest.raises(DirectoryFormatError, match=f":{number + 1}: {error}"):
        parse_directory(_with_line(tmp_path, lines))


def test_every_kind_has_a_german_label() -> None:
    # Letters and lotse print the label of any Kommune, Bezirke included.
    assert set(KIND_LABELS_DE) == set(KommuneKind)
    assert KIND_LABELS_DE[KommuneKind.BEZIRK] == "Bezirk"
