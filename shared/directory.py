"""The official municipality directory (Destatis GV100AD), parsed strictly, and canonical kommune_keys.

A key's shapes are defined in `shared.kommune_key`.

Layout: ../shared/data/README.md. Positions are characters of the UTF-8 decoded line.

What becomes a Kommune:
- Satzart 20 (Regierungsbezirk) only in Bayern: there a Bezirk is the third tier of local
  self-government and covers the Regierungsbezirk whose 3-digit key it shares. Elsewhere the
  record is an administrative or statistical region (Niedersachsen's four statistical regions,
  Baden-Württemberg's Regierungsbezirke), not a Kommune.
- Satzart 40: a Landkreis (Textkennzeichen 43, 44, 45); a kreisfreie Stadt or Stadtkreis (41, 42)
  is its Gemeinde, to which its 5-digit key maps.
- Satzart 50: a Samtgemeinde (52) or another Gemeindeverband; a verbandsfreie Gemeinde's own
  record (50) is not a Kommune of its own.
- Satzart 60: a Gemeinde; its kind says what it belongs to: a Samtgemeinde member
  (Mitgliedsgemeinde, excluded in Niedersachsen), a member of a Verwaltungsgemeinschaft
  (Textkennzeichen 54, or 56 Verwaltungsverband such as Baden-Württemberg's
  Gemeindeverwaltungsverband; a Kommune in its own right, funded in Bayern and
  Baden-Württemberg), a member of another Verband (Amt, Verbandsgemeinde ...: Mitgliedsgemeinde
  as before), or none.
The population of a Gemeinde is its Bevölkerung; a Verband's is the sum of its members', a
Landkreis's and a Bezirk's the sum of all Satzart-60 records in their area (the gemeindefreie
Gebiete included, so all their inhabitants).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from shared import kommune_key

LINE_LENGTH = 220
ATTRIBUTION = "Quelle: Statistisches Bundesamt (Destatis), Gemeindeverzeichnis GV100AD"


_SATZARTEN = {"10", "20", "30", "40", "50", "60"}
_REGIERUNGSBEZIRK = "20"
_KREISFREIE_STADT_KREIS = {"41", "42"}
_KREIS_KINDS = {"43", "44", "45"}
_KREISFREIE_STADT_GEMEINDE = {"61", "62"}
_GEMEINDEFREI = {"65", "66"}
_VERBAND_KINDS = {"50", "51", "52", "53", "54", "55", "56", "57", "58"}
_GEMEINDE_KINDS = {"60", "61", "62", "63", "64", "65", "66", "67"}
_VERBANDSFREI = "50"
_SAMTGEMEINDE = "52"
# Verwaltungsgemeinschaft (54) and Verwaltungsverband (56): in Baden-Württemberg a
# Gemeindeverwaltungsverband is one of the two forms of Verwaltungsgemeinschaft (§ 59 GemO).
_VERWALTUNGSGEMEINSCHAFT = {"54", "56"}

# The Länder whose Regierungsbezirke (Satzart 20) are Kommunen: Bayern's seven Bezirke.
BEZIRK_LANDS = frozenset({"09"})


class DirectoryFormatError(ValueError):
    def __init__(self, path: Path, line_no: int, reason: str) -> None:
        super().__init__(f"{path}:{line_no}: {reason}")


class KommuneKind(StrEnum):
    LANDKREIS = "landkreis"
    KREISFREIE_STADT = "kreisfreie_stadt"
    EINHEITSGEMEINDE = "einheitsgemeinde"
    SAMTGEMEINDE = "samtgemeinde"
    MITGLIEDSGEMEINDE = "mitgliedsgemeinde"
    GEMEINDEVERBAND = "gemeindeverband"
    GEMEINDEFREIES_GEBIET = "gemeindefreies_gebiet"
    # A Gemeinde in a Verwaltungsgemeinschaft or Verwaltungsverband (Bayern, Baden-Württemberg):
    # a Kommune of its own, unlike a Samtgemeinde's Mitgliedsgemeinde in Niedersachsen's programme.
    GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT = "gemeinde_in_verwaltungsgemeinschaft"
    BEZIRK = "bezirk"  # Bayern's Bezirke, 3-digit key


KIND_LABELS_DE = {
    KommuneKind.LANDKREIS: "Landkreis",
    KommuneKind.KREISFREIE_STADT: "kreisfreie Stadt",
    KommuneKind.EINHEITSGEMEINDE: "Einheitsgemeinde",
    KommuneKind.SAMTGEMEINDE: "Samtgemeinde",
    KommuneKind.MITGLIEDSGEMEINDE: "Mitgliedsgemeinde",
    KommuneKind.GEMEINDEVERBAND: "Gemeindeverband",
    KommuneKind.GEMEINDEFREIES_GEBIET: "gemeindefreies Gebiet",
    KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT: "Gemeinde in einer Verwaltungsgemeinschaft",
    KommuneKind.BEZIRK: "Bezirk",
}


@dataclass(frozen=True)
class Kommune:
    key: str  # canonical: 3 digits (Bezirk), 5 (Kreis), 9 (Gemeindeverband), 12 (Gemeinde ARS)
    name: str
    kind: KommuneKind
    land: str
    population: int
    ags: str | None = None  # Gemeinden only
    # The Samtgemeinde, Verwaltungsgemeinschaft or other Gemeindeverband of a member
    parent_key: str | None = None


@dataclass
class Directory:
    gebietsstand: date
    kommunen: dict[str, Kommune]
    _by_ags: dict[str, str] = field(default_factory=dict)
    _kreisfreie_by_kreis: dict[str, str] = field(default_factory=dict)
    _einheitsgemeinde_by_verband: dict[str, str] = field(default_factory=dict)

    def canonical_key(self, key: str) -> str:
        """The canonical form of a well-shaped key; a key not in the directory stays as given."""
        if not kommune_key.is_well_shaped(key):
            raise ValueError("kommune_key has the wrong shape")
        if len(key) == kommune_key.KREIS_LENGTH:
            return self._kreisfreie_by_kreis.get(key, key)
        if len(key) == kommune_key.AGS_LENGTH:
            return self._by_ags.get(key, key)
        if len(key) == kommune_key.VERBAND_LENGTH:
            return self._einheitsgemeinde_by_verband.get(key, key)
        return key

    def canonical_or_none(self, given: str) -> str | None:
        """The canonical form of any given key; None if its shape is wrong."""
        return self.canonical_key(given) if kommune_key.is_well_shaped(given) else None

    def get(self, key: str) -> Kommune | None:
        return self.kommunen.get(key)

    def in_land(self, land: str) -> list[Kommune]:
        return [kommune for kommune in self.kommunen.values() if kommune.land == land]


@dataclass
class _Verband:
    key: str
    name: str
    textkennzeichen: str
    members: list[str] = field(default_factory=list)


def _digits(value: str, line_no: int, path: Path, what: str) -> str:
    if not kommune_key.is_ascii_digits(value):
        raise DirectoryFormatError(path, line_no, f"{what} {value!r} is not numeric")
    return value


def _gebietsstand(line: str, line_no: int, path: Path) -> date:
    stand = _digits(line[2:10], line_no, path, "Gebietsstand")
    try:
        return date(int(stand[:4]), int(stand[4:6]), int(stand[6:8]))
    except ValueError as exc:
        raise DirectoryFormatError(path, line_no, f"Gebietsstand {stand!r} is not a date") from exc


def _bezirk(line: str, line_no: int, path: Path, name: str) -> Kommune | None:
    """A Regierungsbezirk record: a Bezirk where it is a Kommune (Bayern), else nothing."""
    key = _digits(line[10:13], line_no, path, "Regierungsbezirk")
    if line[13:22].strip():
        raise DirectoryFormatError(
            path, line_no, f"Regierungsbezirk record has Kreis or Gemeinde {line[13:22]!r}"
        )
    if key[:2] not in BEZIRK_LANDS:
        return None
    return Kommune(key, name, KommuneKind.BEZIRK, key[:2], 0)


def parse_directory(path: Path) -> Directory:
    text = path.read_bytes().decode("utf-8")
    gebietsstand: date | None = None
    kommunen: dict[str, Kommune] = {}
    verbaende: dict[str, _Verband] = {}
    gemeinden: list[tuple[str, str, str, str, str, int]] = []  # ars, ags, name, tk, verband, population
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) != LINE_LENGTH:
            raise DirectoryFormatError(
                path, line_no, f"line has {len(line)} characters, expected {LINE_LENGTH}"
            )
        satzart = line[0:2]
        if satzart not in _SATZARTEN:
            raise DirectoryFormatError(path, line_no, f"unknown Satzart {satzart!r}")
        line_stand = _gebietsstand(line, line_no, path)
        if gebietsstand is None:
            gebietsstand = line_stand
        elif line_stand != gebietsstand:
            raise DirectoryFormatError(path, line_no, "Gebietsstand differs from the first record")
        land = _digits(line[10:12], line_no, path, "Land")
        name = line[22:72].rstrip()
        textkennzeichen = line[122:124].strip()
        if satzart == _REGIERUNGSBEZIRK:
            bezirk = _bezirk(line, line_no, path, name)
            if bezirk is not None:
                if bezirk.key in kommunen:
                    raise DirectoryFormatError(path, line_no, f"Bezirk {bezirk.key} appears twice")
                kommunen[bezirk.key] = bezirk
        elif satzart == "40":
            kreis = _digits(line[10:15], line_no, path, "Kreis")
            if textkennzeichen in _KREIS_KINDS:
                kommunen[kreis] = Kommune(kreis, name, KommuneKind.LANDKREIS, land, 0)
            elif textkennzeichen not in _KREISFREIE_STADT_KREIS:
                raise DirectoryFormatError(path, line_no, f"Kreis Textkennzeichen {textkennzeichen!r}")
        elif satzart == "50":
            verband = _digits(line[10:15] + line[18:22], line_no, path, "Gemeindeverband")
            if textkennzeichen not in _VERBAND_KINDS:
                raise DirectoryFormatError(
                    path, line_no, f"Gemeindeverband Textkennzeichen {textkennzeichen!r}"
                )
            verbaende[verband] = _Verband(verband, name, textkennzeichen)
        elif satzart == "60":
            kreis = _digits(line[10:15], line_no, path, "Kreis")
            gemeinde = _digits(line[15:18], line_no, path, "Gemeinde")
            verband_code = _digits(line[18:22], line_no, path, "Gemeindeverband")
            population = int(_digits(line[139:150], line_no, path, "Bevölkerung"))
            if textkennzeichen not in _GEMEINDE_KINDS:
                raise DirectoryFormatError(path, line_no, f"Gemeinde Textkennzeichen {textkennzeichen!r}")
            gemeinden.append(
                (
                    kreis + verband_code + gemeinde,
                    kreis + gemeinde,
                    name,
                    textkennzeichen,
                    kreis + verband_code,
                    population,
                )
            )
    if gebietsstand is None:
        raise DirectoryFormatError(path, 0, "file has no records")
    directory = Directory(gebietsstand, kommunen)
    _add_gemeinden(directory, gemeinden, verbaende, path)
    return directory


def _add_gemeinden(
    directory: Directory,
    gemeinden: list[tuple[str, str, str, str, str, int]],
    verbaende: dict[str, _Verband],
    path: Path,
) -> None:
    population_by_parent: dict[str, int] = defaultdict(int)
    for ars, ags, name, textkennzeichen, verband_key, population in gemeinden:
        verband = verbaende.get(verband_key)
        if verband is None:
            raise DirectoryFormatError(
                path, 0, f"Gemeinde {ars} refers to unknown Gemeindeverband {verband_key}"
            )
        verband.members.append(ars)
        parent: str | None = None
        if ars[:2] in BEZIRK_LANDS and ars[:3] not in directory.kommunen:
            raise DirectoryFormatError(
                path, 0, f"Gemeinde {ars} lies in Bezirk {ars[:3]}, which has no record"
            )
        if textkennzeichen in _GEMEINDEFREI:
            kind = KommuneKind.GEMEINDEFREIES_GEBIET
        elif textkennzeichen in _KREISFREIE_STADT_GEMEINDE:
            kind = KommuneKind.KREISFREIE_STADT
            directory._kreisfreie_by_kreis[ars[:5]] = ars
        elif verband.textkennzeichen == _VERBANDSFREI:
            kind = KommuneKind.EINHEITSGEMEINDE
        else:
            kind = (
                KommuneKind.GEMEINDE_IN_VERWALTUNGSGEMEINSCHAFT
                if verband.textkennzeichen in _VERWALTUNGSGEMEINSCHAFT
                else KommuneKind.MITGLIEDSGEMEINDE
            )
            parent = verband_key
            population_by_parent[verband_key] += population
        # A Kreis's and a Bezirk's population: everyone living in their Gemeinden (and in their
        # gemeindefreie Gebiete, which GV100AD lists as Satzart 60 too).
        population_by_parent[ars[:5]] += population
        population_by_parent[ars[:3]] += population
        directory.kommunen[ars] = Kommune(ars, name, kind, ars[:2], population, ags=ags, parent_key=parent)
        directory._by_ags[ags] = ars
    for verband in verbaende.values():
        gemeinden_in_verband = [directory.kommunen[m] for m in verband.members]
        if verband.textkennzeichen == _VERBANDSFREI:
            if (
                len(gemeinden_in_verband) == 1
                and gemeinden_in_verband[0].kind is not KommuneKind.GEMEINDEFREIES_GEBIET
            ):
                directory._einheitsgemeinde_by_verband[verband.key] = gemeinden_in_verband[0].key
            continue
        kind = (
            KommuneKind.SAMTGEMEINDE
            if verband.textkennzeichen == _SAMTGEMEINDE
            else KommuneKind.GEMEINDEVERBAND
        )
        directory.kommunen[verband.key] = Kommune(
            verband.key, verband.name, kind, verband.key[:2], population_by_parent[verband.key]
        )
    for key, kommune in list(directory.kommunen.items()):
        if kommune.kind in (KommuneKind.LANDKREIS, KommuneKind.BEZIRK):
            directory.kommunen[key] = Kommune(
                key, kommune.name, kommune.kind, kommune.land, population_by_parent[key]
            )


@lru_cache(maxsize=4)
def load_directory(path: str) -> Directory:
    """Parsed once per process: the directory is read-only reference data."""
    return parse_directory(Path(path))
