"""Sample Kommunen, programmes and registrations for the funding tests."""

from __future__ import annotations

from datetime import date, timedelta

from services.funding.domain import Application
from shared.directory import Directory, load_directory
from shared.program import Program, parse_program
from shared.settings import DEFAULT_DIRECTORY_FILE

SAMTGEMEINDE = "033595403"  # Harsefeld
MITGLIEDSGEMEINDE = "033595403002"  # Ahlerstedt, a member of Harsefeld
LANDKREIS = "03151"  # Gifhorn
REGION_HANNOVER = "03241"
KREISFREIE_STADT = "031010000000"  # Braunschweig
EINHEITSGEMEINDE = "031590016016"  # Göttingen, Stadt
GEMEINDEFREI = "031519501501"  # Giebel, gemeindefreies Gebiet
OUTSIDE_LAND = "091620000000"  # München, Landeshauptstadt
UNKNOWN = "039999999"  # well shaped, not in the directory

ELIGIBLE = [SAMTGEMEINDE, LANDKREIS, REGION_HANNOVER, KREISFREIE_STADT, EINHEITSGEMEINDE]

IN_2022 = date(2022, 5, 2)
IN_2023 = date(2023, 5, 2)

# Two periods like Niedersachsen, but the second has money for three approvals of 500 EUR.
SMALL_BUDGET_TOML = """
id = "small"
name = "Test programme with a small budget"

[amount]
rule = "share_of_fee"
share = "0.5"

[quota]
places = 2

[eligibility]
lands = ["03"]
kinds = ["landkreis", "kreisfreie_stadt", "einheitsgemeinde", "samtgemeinde"]

[[periods]]
id = "2021-2022"
starts_on = 2021-03-04
ends_on = 2022-12-31

[[periods]]
id = "2023"
starts_on = 2023-01-01
ends_on = 2023-12-31
budget_cents = 150_000
"""


def directory() -> Directory:
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


def small_program() -> Program:
    return parse_program(SMALL_BUDGET_TOML)


def application(
    registration_id: str,
    kommune_key: str = EINHEITSGEMEINDE,
    *,
    starts_on: date = IN_2023,
    fee_cents: int = 100_000,
    days: int = 3,
) -> Application:
    return Application(
        registration_id=registration_id,
        kommune_key=kommune_key,
        seminar_id=f"S-{starts_on.isoformat()}",
        seminar_starts_on=starts_on,
        seminar_ends_on=starts_on + timedelta(days=days - 1),
        fee_cents=fee_cents,
    )


# Like Baden-Württemberg's rules (ADR 0014) over Niedersachsen's Kommunen: follow-up courses
# funded at 50 EUR a day for a participant with a funded basic course, taking no place; basic
# courses at 100 EUR a day; no funding for a registration submitted once its seminar began.
COURSES_TOML = """
id = "courses"
name = "Test programme with follow-up courses"
funds_registrations_after_start = false

[amount]
rule = "per_seminar_day"
cents_per_day = 10_000

[courses.follow_up]
funded = true
requires_funded_basic = true
takes_quota_place = false

[courses.follow_up.amount]
rule = "per_seminar_day"
cents_per_day = 5_000

[quota]
places = 1

[eligibility]
lands = ["03"]
kinds = ["landkreis", "kreisfreie_stadt", "einheitsgemeinde", "samtgemeinde"]

[[periods]]
id = "2021-2022"
starts_on = 2021-03-04
ends_on = 2022-12-31

[[periods]]
id = "2023"
starts_on = 2023-01-01
ends_on = 2023-12-31
budget_cents = 100_000
"""

PARTICIPANT_KEY = b"k" * 32


def courses_program() -> Program:
    return parse_program(COURSES_TOML)
