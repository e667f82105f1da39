"""The HTML report's data (lotse.dashboard) from small logs built by hand, and the page it renders."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from lotse.dashboard import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    WEEK,
    Bucket,
    bucket_for,
    budget_series,
    build_dashboard,
    decision_rows,
    participation_by_level,
    waitlist_course,
)
from lotse.report import Area, AreaParticipation, PeriodTerms, ProgrammeFigures, Report, build_report
from lotse.report_html import INK, render_html

T0 = datetime(2023, 3, 6, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Berlin
HANNOVER = Area("kreis", "03241", "Region Hannover", "Landkreis", frozenset({"03241", "032410001001"}))
CELLE = Area("kreis", "03351", "Celle", "Landkreis", frozenset({"03351", "033510001001", "033510002002"}))
PROGRAMME = ProgrammeFigures(
    program_id="niedersachsen",
    name="Digitallotsen Niedersachsen",
    lands=("03",),
    eligible_kommunen=5,
    places=10,
    periods=(
        PeriodTerms("2021-2022", date(2021, 3, 4), date(2022, 12, 31), None),
        PeriodTerms("2023", date(2023, 1, 1), date(2023, 12, 31), 200_000),
    ),
    areas=(HANNOVER, CELLE),
)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def funding(event_type: str, reg: str, hours: float, **data: Any) -> dict[str, Any]:
    return {
        "event_type": f"funding.{event_type}",
        "occurred_at": at(hours),
        "data": {"registration_id": reg, "kommune_key": "03241", **data},
    }


def approved(
    reg: str, hours: float, amount: int = 50_000, period: str = "2023", promoted: bool = False
) -> Any:
    return funding("approved", reg, hours, period_id=period, amount_cents=amount, promoted=promoted)


def released(reg: str, hours: float, amount: int = 50_000, period: str = "2023") -> Any:
    return funding("released", reg, hours, period_id=period, amount_cents=amount)


def waitlisted(reg: str, hours: float, reason: str = "quota_exhausted") -> Any:
    return funding("waitlisted", reg, hours, period_id="2023", reason=reason, position=1)


def declined(reg: str, hours: float, reason: str = "period_closed") -> Any:
    return funding("declined", reg, hours, reason=reason)


def withdrawn(reg: str, hours: float) -> dict[str, Any]:
    return {
        "event_type": "registration.withdrawn",
        "occurred_at": at(hours),
        "data": {"registration_id": reg, "kommune_key": "03241", "reason": "withdrawn_by_portal"},
    }


def report_of(funding_events: list[dict[str, Any]], registration_events: list[dict[str, Any]]) -> Report:
    return build_report(
        registration_events=registration_events,
        funding_events=funding_events,
        notification_events=[],
        programme=PROGRAMME,
        mail_location="",
    )


@pytest.mark.parametrize(
    ("span", "unit"),
    [
        (timedelta(days=365), "week"),
        (timedelta(weeks=4), "week"),
        (timedelta(weeks=4) - timedelta(seconds=1), "day"),
        (timedelta(days=4), "day"),
        (timedelta(days=3), "hour"),
        (timedelta(hours=4), "hour"),
        (timedelta(hours=3), "minute"),
        (timedelta(minutes=4), "minute"),
        (timedelta(minutes=3), "second"),
        (timedelta(0), "second"),
    ],
)
def test_decisions_are_counted_per_week_or_finer_when_they_span_less(span: timedelta, unit: str) -> None:
    assert bucket_for(span).unit == unit


@pytest.mark.parametrize(
    ("bucket", "moment", "start", "name"),
    [
        # Sunday 23:30 UTC is Monday 01:30 in Berlin (summer): the new week.
        (WEEK, datetime(2023, 6, 4, 23, 30, tzinfo=UTC), datetime(2023, 6, 5), "KW 23/2023"),
        (WEEK, datetime(2023, 6, 4, 21, 30, tzinfo=UTC), datetime(2023, 5, 29), "KW 22/2023"),
        (DAY, datetime(2023, 12, 31, 23, 30, tzinfo=UTC), datetime(2024, 1, 1), "01.01.2024"),
        (HOUR, datetime(2023, 3, 6, 9, 59, tzinfo=UTC), datetime(2023, 3, 6, 10), "06.03.2023 10:00"),
        (MINUTE, datetime(2023, 3, 6, 9, 5, 59, tzinfo=UTC), datetime(2023, 3, 6, 10, 5), "06.03.2023 10:05"),
        (
            SECOND,
            datetime(2023, 3, 6, 9, 5, 59, 900, tzinfo=UTC),
            datetime(2023, 3, 6, 10, 5, 59),
            "06.03.2023 10:05:59",
        ),
    ],
)
def test_a_bucket_starts_in_berlin_time(bucket: Bucket, moment: datetime, start: datetime, name: str) -> None:
    assert bucket.start_of(moment) == start
    assert bucket.name(start) == name


def test_decisions_per_bucket_count_each_outcome_and_keep_the_empty_buckets() -> None:
    events = [
        approved("R1", 0),
        approved("R2", 0.5, promoted=True),
        waitlisted("R3", 0.6),
        declined("R4", 2.2, reason="kommune_not_eligible"),
        released("R1", 2.5),
    ]
    rows = decision_rows(events, HOUR)
    assert [row.start for row in rows] == [
        datetime(2023, 3, 6, 10),
        datetime(2023, 3, 6, 11),
        datetime(2023, 3, 6, 12),
    ]
    assert rows[0].counts == {"approved": 1, "promoted": 1, "waitlisted": 1, "declined": 0, "released": 0}
    assert rows[1].total == 0
    assert rows[2].counts == {"approved": 0, "promoted": 0, "waitlisted": 0, "declined": 1, "released": 1}
    assert decision_rows([], WEEK) == ()


def test_committed_money_per_period_follows_approvals_and_releases_in_time_order() -> None:
    events = [
        approved("R2", 2, amount=30_000),
        approved("R1", 1, amount=50_000),
        approved("R9", 1.5, amount=70_000, period="2021-2022"),
        released("R1", 3, amount=50_000),
        approved("R5", 4, amount=10_000, period="no-such-period"),  # not in the programme: not drawn
        waitlisted("R3", 2.5),
    ]
    report = report_of(events, [])
    by_period = {series.period_id: series for series in budget_series(report, events)}
    assert set(by_period) == {"2021-2022", "2023"}
    this_year = by_period["2023"]
    assert [point.committed_cents for point in this_year.points] == [50_000, 80_000, 30_000]
    assert [point.at for point in this_year.points] == [
        datetime(2023, 3, 6, 11),
        datetime(2023, 3, 6, 12),
        datetime(2023, 3, 6, 13),
    ]
    assert this_year.committed_at(datetime(2023, 3, 6, 12, 30)) == 80_000
    assert this_year.committed_at(datetime(2023, 3, 6, 10)) == 0
    assert this_year.remaining(80_000) == 120_000
    unlimited = by_period["2021-2022"]
    assert [point.committed_cents for point in unlimited.points] == [70_000]
    assert unlimited.remaining(70_000) is None


@pytest.mark.parametrize(
    ("funding_events", "registration_events", "expected"),
    [
        pytest.param(
            [waitlisted("R1", 1), approved("R1", 3, promoted=True)],
            [],
            [(11, 1, 0), (13, 0, 0)],
            id="waits for a place, then promoted",
        ),
        pytest.param(
            [waitlisted("R1", 1, reason="budget_exhausted"), declined("R1", 2)],
            [],
            [(11, 0, 1), (12, 0, 0)],
            id="waits for money, then declined when the period closes",
        ),
        pytest.param(
            [waitlisted("R1", 1), waitlisted("R2", 1.5)],
            [withdrawn("R1", 2)],
            [(11, 1, 0), (11.5, 2, 0), (12, 1, 0)],
            id="withdrawn while waiting: no funding event, the withdrawal ends the wait",
        ),
        pytest.param(
            [waitlisted("R1", 2)],
            [withdrawn("R1", 1)],
            [(12, 0, 0)],
            id="withdrawn before funding waitlisted it: never counted as waiting",
        ),
        pytest.param(
            [waitlisted("R1", 1), waitlisted("R1", 2, reason="budget_exhausted")],
            [],
            [(11, 1, 0), (12, 0, 1)],
            id="moves from the place waitlist to the money waitlist",
        ),
        pytest.param([approved("R1", 1)], [], [], id="nobody waits"),
    ],
)
def test_the_waitlists_over_time(
    funding_events: list[dict[str, Any]],
    registration_events: list[dict[str, Any]],
    expected: list[tuple[float, int, int]],
) -> None:
    points = waitlist_course(registration_events, funding_events)
    berlin = datetime(2023, 3, 6, 0)  # T0 is 10:00 in Berlin: hours in the cases are Berlin hours
    assert [(p.at, p.waiting["quota_exhausted"], p.waiting["budget_exhausted"]) for p in points] == [
        (berlin + timedelta(hours=hour), places, money) for hour, places, money in expected
    ]


def test_participation_is_sorted_by_share_then_name_per_level() -> None:
    bezirk = Area("bezirk", "091", "Oberbayern", "Bezirk", frozenset({"091"}))
    report = Report(
        participation=[
            AreaParticipation(HANNOVER, 1),  # 1 of 2
            AreaParticipation(CELLE, 3),  # 3 of 3
            AreaParticipation(
                Area("kreis", "03101", "Braunschweig", "kreisfreie Stadt", frozenset({"03101"})), 0
            ),
            AreaParticipation(bezirk, 1),
        ]
    )
    levels = participation_by_level(report)
    assert list(levels) == ["bezirk", "kreis"]
    assert [entry.area.name for entry in levels["kreis"]] == ["Celle", "Region Hannover", "Braunschweig"]
    assert participation_by_level(Report()) == {}


def test_the_dashboard_of_an_empty_log_still_has_every_part() -> None:
    dashboard = build_dashboard(report_of([], []), [], [])
    assert dashboard.bucket is WEEK
    assert dashboard.decisions == ()
    assert dashboard.waitlists == ()
    assert dashboard.data_as_of is None
    page = render_html(dashboard)
    assert page.count('role="img"') == 4  # budget, decisions, one participation level, waitlists


# --- the page ----------------------------------------------------------------------------------


def sample_dashboard(area_name: str = "Region Hannover") -> Any:
    hannover = Area("kreis", "03241", area_name, "Landkreis", HANNOVER.eligible)
    programme = ProgrammeFigures(**{**PROGRAMME.__dict__, "areas": (hannover, CELLE)})
    funding_events = [
        approved("R1", 0),
        approved("R2", 24 * 9, promoted=True),
        waitlisted("R3", 24 * 10),
        declined("R4", 24 * 30, reason="kommune_not_eligible"),
        released("R1", 24 * 40),
    ]
    registration_events = [withdrawn("R1", 24 * 40)]
    report = build_report(
        registration_events=registration_events,
        funding_events=funding_events,
        notification_events=[],
        programme=programme,
        mail_location="",
    )
    return build_dashboard(report, registration_events, funding_events)


def test_the_page_is_german_self_contained_and_every_chart_is_an_accessible_svg() -> None:
    page = render_html(sample_dashboard())
    assert page.startswith('<!DOCTYPE html>\n<html lang="de">')
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    # Nothing from outside: no script, no external stylesheet, font or image.
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(http" not in page
    svgs = re.findall(r"<svg\b[^>]*>", page)
    assert len(svgs) == 4
    for opening in svgs:
        assert 'role="img"' in opening
        chart_id = re.search(r'aria-labelledby="([^"]+)-title"', opening)
        assert chart_id is not None
        assert f'<title id="{chart_id.group(1)}-title">' in page
    titles = re.findall(r'<title id="[^"]+-title">([^<]+)</title>', page)
    assert titles == [
        "Geld je Förderzeitraum: gebunden und verbleibend",
        "Förderentscheidungen je Woche nach Ergebnis",
        "Teilnahme je Landkreis und kreisfreier Stadt",
        "Förder-Wartelisten im Zeitverlauf",
    ]
    # A table beside each chart, and the figures of the terminal report, with the attribution.
    assert page.count("<table>") == 4 + 4
    assert "Quelle: Statistisches Bundesamt (Destatis), Gemeindeverzeichnis GV100AD" in page
    # Headings go down one level at a time: h1, then h2, then h3.
    levels = [int(level) for level in re.findall(r"<h([1-6])\b", page)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(after - before <= 1 for before, after in itertools.pairwise(levels))


def test_the_page_is_deterministic_and_its_ids_are_unique() -> None:
    first, second = render_html(sample_dashboard()), render_html(sample_dashboard())
    assert first == second
    ids = re.findall(r'\bid="([^"]+)"', first)
    assert len(ids) == len(set(ids))
    # Every reference inside an SVG points at an id of the page.
    assert set(re.findall(r'(?:href="#|url\(#)([^")]+)', first)) <= set(ids)


def test_names_from_the_directory_are_escaped() -> None:
    page = render_html(sample_dashboard("Hannover <script>alert(1)</script> & Co"))
    assert "<script>" not in page
    assert "Hannover &lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page


def test_the_tables_carry_the_charts_figures() -> None:
    page = render_html(sample_dashboard())
    assert "KW 10/2023" in page and "KW 11/2023" in page  # weeks: the decisions span six of them
    # 2.000 € in 2023: 500 € bound in the first week, 1.000 € after the promotion, 500 € after the release.
    budget_rows = re.findall(
        r'<th scope="row">(\d\d\.\d\d\.2023)</th><td class="number">[^<]*</td>'
        r'<td class="number">[^<]*</td><td class="number">([^<]*)</td>'
        r'<td class="number">([^<]*)</td>',
        page,
    )
    assert budget_rows[0] == ("12.03.2023", "500,00 €", "1.500,00 €")
    assert ("19.03.2023", "1.000,00 €", "1.000,00 €") in budget_rows
    assert budget_rows[-1][1:] == ("500,00 €", "1.500,00 €")
    assert "50,0 %" in page  # Region Hannover: 1 of 2 eligible Kommunen funded


def contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_text_has_at_least_the_contrast_wcag_asks_for() -> None:
    page = render_html(sample_dashboard())
    backgrounds = set(re.findall(r"background: (#[0-9a-fA-F]{6})", page))
    assert backgrounds == {"#ffffff", "#e6edf3"}
    for background in backgrounds:
        assert contrast(INK, background) >= 7  # AAA for body text


def test_a_programme_with_bezirke_gets_a_participation_chart_per_level() -> None:
    oberbayern = Area("bezirk", "091", "Oberbayern", "Bezirk", frozenset({"091", "09162"}))
    muenchen = Area("kreis", "09162", "München", "kreisfreie Stadt", frozenset({"09162"}))
    programme = ProgrammeFigures(**{**PROGRAMME.__dict__, "areas": (oberbayern, muenchen)})
    funding_events = [funding("approved", "R1", 0, period_id="2023", amount_cents=50_000, promoted=False)]
    funding_events[0]["data"]["kommune_key"] = "09162"
    report = build_report(
        registration_events=[],
        funding_events=funding_events,
        notification_events=[],
        programme=programme,
        mail_location="",
    )
    page = render_html(build_dashboard(report, [], funding_events))
    titles = re.findall(r'<title id="[^"]+-title">([^<]+)</title>', page)
    assert titles[2:4] == ["Teilnahme je Bezirk", "Teilnahme je Landkreis und kreisfreier Stadt"]
    assert "Oberbayern (Bezirk)" in page and "50,0 %" in page  # 1 of its 2 eligible Kommunen
