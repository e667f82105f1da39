"""The HTML report (`lotse report --html`): one self-contained German page, charts as inline SVG.

matplotlib draws each chart (its SVG backend, text kept as text); Jinja2 renders the page with
autoescape. Every chart carries role="img" with a title and stands beside a table with the same
figures. Nothing is loaded from the network: no script, no font, no stylesheet from outside.
The output depends only on the data: the SVG ids derive from a fixed salt, the SVG carries no date.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.typing import RcKeyType

from lotse.dashboard import OUTCOMES, WAITLISTS, Dashboard
from lotse.present import ATTRIBUTION, euros, thousands
from lotse.report import AreaParticipation

# Okabe and Ito's palette, safe for the common colour-vision deficiencies; bars get a dark edge
# and a hatch of their own, lines a dash and a marker, so that no figure rests on colour alone.
INK = "#1a1a1a"
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
OUTCOME_STYLES = {
    "approved": ("#0072B2", ""),
    "promoted": ("#56B4E9", "//"),
    "waitlisted": ("#E69F00", ".."),
    "declined": ("#D55E00", "xx"),
    "released": ("#CC79A7", "\\\\"),
}
DASHES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
LEVEL_TITLES = {"bezirk": "Bezirk", "kreis": "Landkreis und kreisfreier Stadt"}
LEVEL_LABELS = {"bezirk": "Bezirk", "kreis": "Kreis"}

_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text: searchable, scalable, no embedded glyphs
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: the same layout everywhere
    "font.size": 10,
    "text.color": INK,
    "axes.labelcolor": INK,
    "axes.edgecolor": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "hatch.color": INK,
    "hatch.linewidth": 0.6,
}

# German names of the terminal report's states: of a registration, and of its funding.
REGISTRATION_STATES = {
    "accepted": "angenommen",
    "waitlisted": "auf der Seminar-Warteliste",
    "withdrawn": "zurückgezogen",
    "rejected": "abgewiesen",
}
FUNDING_STATES = {
    "approved": "bewilligt",
    "approved.promoted": "bewilligt (nachgerückt)",
    "waitlisted": "auf der Förder-Warteliste",
    "declined": "abgelehnt",
    "released": "zurückgegeben (nach Rückzug)",
    "withdrawn": "zurückgezogen",
    "withdrawn.from_waitlist": "von der Förder-Warteliste zurückgezogen",
}
REASON_LABELS = {
    "withdrawn_by_portal": "vom Portal zurückgezogen",
    "seminar_cancelled": "Seminar abgesagt",
    "quota_exhausted": "Plätze der Kommune vergeben",
    "budget_exhausted": "Budget ausgeschöpft",
    "unknown_kommune": "Kommune unbekannt",
    "kommune_not_eligible": "Kommune nicht förderfähig",
    "outside_funding_period": "außerhalb der Förderzeiträume",
    "period_closed": "Förderzeitraum geschlossen",
    "prerequisite_missing": "Grundkurs fehlt",
    "registered_after_start": "nach Seminarbeginn angemeldet",
    "course_not_funded": "Kurs nicht gefördert",
    "unknown_seminar": "Seminar unbekannt",
    "duplicate_participant": "bereits angemeldet",
    "invalid_kommune_key": "Gemeindeschlüssel ungültig",
    "registration_id_conflict": "Registrierungsnummer doppelt vergeben",
}


def state_label(key: str, states: dict[str, str]) -> str:
    """accepted -> angenommen; declined.period_closed -> abgelehnt: Förderzeitraum geschlossen."""
    if key in states:
        return states[key]
    state, _, reason = key.partition(".")
    return f"{states.get(state, state)}: {REASON_LABELS.get(reason, reason)}"


def percent(share: float) -> str:
    """German: 12,5 %."""
    return f"{share * 100:.1f}".replace(".", ",") + " %"


def moment(at: datetime) -> str:
    return f"{at:%d.%m.%Y %H:%M}"


@dataclass(frozen=True)
class Table:
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]  # per column: right-aligned figures


@dataclass(frozen=True)
class Chart:
    chart_id: str
    title: str
    description: str  # what the chart shows, in a sentence (its aria description)
    svg: Markup
    table: Table


# --- the tables: the same figures as the charts, and today's terminal report ------------------


def budget_table(dashboard: Dashboard) -> Table:
    headers: list[str] = ["Stand am Ende"]
    for series in dashboard.budgets:
        headers += [f"{series.period_id}: gebunden", f"{series.period_id}: verbleibend"]
    rows = []
    for end in dashboard.bucket_ends():
        row = [dashboard.bucket.end_name(end)]
        for series in dashboard.budgets:
            committed = series.committed_at(end)
            row += [euros(committed), euros(series.remaining(committed))]
        rows.append(tuple(row))
    return Table(
        "Gebundenes und verbleibendes Geld je Förderzeitraum, am Ende jedes Abschnitts",
        tuple(headers),
        tuple(rows),
        (False, *[True] * (len(headers) - 1)),
    )


def decisions_table(dashboard: Dashboard) -> Table:
    headers = (dashboard.bucket.label, *[label for _, label in OUTCOMES], "zusammen")
    rows = tuple(
        (
            dashboard.bucket.name(row.start),
            *[thousands(row.counts[outcome]) for outcome, _ in OUTCOMES],
            thousands(row.total),
        )
        for row in dashboard.decisions
    )
    return Table(
        f"Förderentscheidungen je {dashboard.bucket.label} nach Ergebnis",
        headers,
        rows,
        (False, *[True] * (len(headers) - 1)),
    )


def participation_table(level: str, entries: Sequence[AreaParticipation]) -> Table:
    return Table(
        f"Teilnahme je {LEVEL_LABELS.get(level, level)}, höchster Anteil zuerst",
        (LEVEL_LABELS.get(level, level), "Schlüssel", "förderfähige Kommunen", "mit Förderung", "Anteil"),
        tuple(
            (
                f"{entry.area.name} ({entry.area.label})",
                entry.area.key,
                thousands(entry.eligible_kommunen),
                thousands(entry.funded_kommunen),
                percent(entry.funded_share),
            )
            for entry in entries
        ),
        (False, False, True, True, True),
    )


def waitlist_table(dashboard: Dashboard) -> Table:
    rows = []
    for end in dashboard.bucket_ends():
        waiting = dashboard.waiting_at(end)
        counts = [thousands(waiting.get(reason, 0)) for reason, _ in WAITLISTS]
        rows.append((dashboard.bucket.end_name(end), *counts))
    return Table(
        "Registrierungen auf den Förder-Wartelisten, am Ende jedes Abschnitts",
        ("Stand am Ende", *[label for _, label in WAITLISTS]),
        tuple(rows),
        (False, True, True),
    )


def figure_tables(dashboard: Dashboard) -> list[Table]:
    """Today's figures, as the terminal report (`lotse report`) states them."""
    report = dashboard.report

    def counts(caption: str, counted: dict[str, int], states: dict[str, str]) -> Table:
        rows = [(state_label(key, states), thousands(counted[key])) for key in sorted(counted)]
        rows.append(("zusammen", thousands(sum(counted.values()))))
        return Table(caption, ("Stand", "Registrierungen"), tuple(rows), (False, True))

    budgets = Table(
        "Budget je Förderzeitraum",
        ("Zeitraum", "von", "bis", "Budget", "gebunden (bewilligt − zurückgegeben)", "verbleibend"),
        tuple(
            (
                period.period_id,
                f"{period.starts_on:%d.%m.%Y}" if period.starts_on else "",
                f"{period.ends_on:%d.%m.%Y}" if period.ends_on else "",
                euros(period.budget_cents),
                euros(period.used_cents),
                euros(period.remaining_cents),
            )
            for period in report.periods
        ),
        (False, False, False, True, True, True),
    )
    kommunen = Table(
        "Kommunen und E-Mails",
        ("Kennzahl", "Wert"),
        (
            ("förderfähige Kommunen", thousands(report.eligible_kommunen)),
            ("Plätze im Programm", thousands(report.places)),
            ("Kommunen mit mindestens einer geförderten Person", thousands(report.funded_kommunen)),
            ("Anteil der förderfähigen Kommunen", percent(report.funded_share)),
            ("E-Mails versandt", thousands(report.emails_sent)),
            ("E-Mails gescheitert und zurückgestellt", thousands(report.emails_failed)),
        ),
        (False, True),
    )
    return [
        counts("Registrierungen: aktueller Stand", dict(report.registrations), REGISTRATION_STATES),
        counts("Förderung: aktuelle Entscheidung", dict(report.funding), FUNDING_STATES),
        budgets,
        kommunen,
    ]


# --- the charts ----------------------------------------------------------------------------------


def _euro_axis(cents: float, _position: float) -> str:
    return thousands(round(cents / 100)) + " €"


def _count_axis(value: float, _position: float) -> str:
    return thousands(round(value))


def _date_axis(axes: Axes, dashboard: Dashboard) -> None:
    """German date ticks; an axis that spans at least four of the dashboard's buckets, so that a
    replay decided within a second still gets readable ticks."""
    low, high = axes.get_xlim()
    least = 4 * dashboard.bucket.step.total_seconds() / 86_400  # matplotlib dates count days
    if high - low < least:
        middle = (low + high) / 2
        axes.set_xlim(middle - least / 2, middle + least / 2)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
            locator,
            formats=["%Y", "%m.%Y", "%d.%m.", "%H:%M", "%H:%M", "%H:%M:%S"],
            zero_formats=["", "%Y", "%m.%Y", "%d.%m.", "%H:%M", "%H:%M:%S"],
            offset_formats=["", "%Y", "%m.%Y", "%d.%m.%Y", "%d.%m.%Y", "%d.%m.%Y"],
        )
    )


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center")
    axes.set_xticks([])
    axes.set_yticks([])


def _style(axes: Axes) -> None:
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#b0b0b0", linewidth=0.5)
    axes.set_axisbelow(True)


def draw_budgets(figure: Figure, dashboard: Dashboard) -> None:
    axes = figure.subplots()
    _style(axes)
    drawn = False
    for index, series in enumerate(dashboard.budgets):
        if not series.points:
            continue
        drawn = True
        colour, marker = PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)]
        times = mdates.date2num([point.at for point in series.points])  # type: ignore[no-untyped-call]
        committed = [point.committed_cents for point in series.points]
        label = f"{series.period_id}: gebunden"
        axes.step(times, committed, where="post", color=colour, linewidth=2, label=label)
        axes.plot(times[-1:], committed[-1:], marker=marker, color=colour, linestyle="none")
        if series.budget_cents is not None:
            remaining = [series.budget_cents - value for value in committed]
            axes.step(
                times,
                remaining,
                where="post",
                color=colour,
                linewidth=2,
                linestyle="--",
                label=f"{series.period_id}: verbleibend",
            )
    if not drawn:
        _empty(axes, "Noch keine Bewilligung")
        return
    axes.yaxis.set_major_formatter(FuncFormatter(_euro_axis))
    axes.set_ylim(bottom=0)
    _date_axis(axes, dashboard)
    figure.legend(frameon=False, loc="outside lower center", ncols=4, fontsize=9)


def draw_decisions(figure: Figure, dashboard: Dashboard) -> None:
    axes = figure.subplots()
    _style(axes)
    if not dashboard.decisions:
        _empty(axes, "Noch keine Förderentscheidung")
        return
    positions = list(range(len(dashboard.decisions)))
    bottom = [0] * len(positions)
    for outcome, label in OUTCOMES:
        values = [row.counts[outcome] for row in dashboard.decisions]
        colour, hatch = OUTCOME_STYLES[outcome]
        axes.bar(
            positions,
            values,
            bottom=bottom,
            color=colour,
            hatch=hatch,
            edgecolor=INK,
            linewidth=0.6,
            label=label,
        )
        bottom = [low + value for low, value in zip(bottom, values, strict=True)]
    names = [dashboard.bucket.name(row.start) for row in dashboard.decisions]
    step = max(1, len(names) // 12)
    axes.set_xticks(positions[::step], names[::step], rotation=45, ha="right")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_formatter(FuncFormatter(_count_axis))
    axes.set_ylabel("Entscheidungen")
    figure.legend(frameon=False, loc="outside lower center", ncols=5, fontsize=9)


def draw_participation(figure: Figure, entries: Sequence[AreaParticipation]) -> None:
    axes = figure.subplots()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="x", color="#b0b0b0", linewidth=0.5)
    axes.set_axisbelow(True)
    if not entries:
        _empty(axes, "Keine Gebiete im Programm")
        return
    positions = list(range(len(entries)))
    shares = [entry.funded_share * 100 for entry in entries]
    axes.barh(positions, shares, color=PALETTE[0], edgecolor=INK, linewidth=0.6)
    axes.set_yticks(positions, [entry.area.name for entry in entries], fontsize=8)
    axes.invert_yaxis()  # the highest share on top
    for position, entry in zip(positions, entries, strict=True):
        axes.text(
            entry.funded_share * 100 + 1,
            position,
            f"{percent(entry.funded_share)} ({entry.funded_kommunen}/{entry.eligible_kommunen})",
            va="center",
            fontsize=7,
        )
    axes.axvline(50, color=INK, linestyle="--", linewidth=1)
    axes.text(50.5, -0.9, "gut die Hälfte: 50 %", fontsize=8, va="bottom")
    axes.set_xlim(0, 115)
    axes.set_xticks([0, 25, 50, 75, 100], ["0 %", "25 %", "50 %", "75 %", "100 %"])
    axes.set_xlabel("Anteil der förderfähigen Kommunen mit mindestens einer geförderten Person")


def draw_waitlists(figure: Figure, dashboard: Dashboard) -> None:
    axes = figure.subplots()
    _style(axes)
    if not dashboard.waitlists:
        _empty(axes, "Niemand stand auf einer Förder-Warteliste")
        return
    times = mdates.date2num([point.at for point in dashboard.waitlists])  # type: ignore[no-untyped-call]
    for index, (reason, label) in enumerate(WAITLISTS):
        values = [point.waiting.get(reason, 0) for point in dashboard.waitlists]
        axes.step(
            times,
            values,
            where="post",
            color=PALETTE[index],
            linestyle=DASHES[index],
            linewidth=2,
            label=label,
        )
        axes.plot(times[-1:], values[-1:], marker=MARKERS[index], color=PALETTE[index], linestyle="none")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.yaxis.set_major_formatter(FuncFormatter(_count_axis))
    axes.set_ylim(bottom=0)
    axes.set_ylabel("Registrierungen")
    _date_axis(axes, dashboard)
    figure.legend(frameon=False, loc="outside lower center", ncols=2, fontsize=9)


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(figure: Figure, chart_id: str, title: str, description: str) -> Markup:
    """The figure as an <svg> element for the page: no XML prolog or doctype, ids of its own
    (several charts share one document), role="img" named by its <title> and described."""
    buffer = io.StringIO()
    with matplotlib.rc_context(
        {"svg.hashsalt": f"lotse-report-{chart_id}"}
    ):  # ids from the chart, not random
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    ids = set(_ID.findall(svg))
    if ids:
        names = "|".join(re.escape(name) for name in sorted(ids, key=len, reverse=True))
        pattern = re.compile(r'(id="|#)(' + names + r')(?=["\)])')
        svg = pattern.sub(lambda found: f"{found.group(1)}{chart_id}-{found.group(2)}", svg)
    opening_end = svg.index(">") + 1
    # No fixed size: the page's CSS scales the chart to its column (the viewBox keeps the shape).
    opening = re.sub(r'\s(?:width|height)="[^"]*"', "", svg[: opening_end - 1]) + (
        f' role="img" aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc"'
        ' class="chart" focusable="false">'
    )
    labels = (
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>'
    )
    return Markup(opening + labels + svg[opening_end:])


def _chart(
    chart_id: str,
    *,
    title: str,
    description: str,
    size: tuple[float, float],
    draw: Callable[[Figure], None],
    table: Table,
) -> Chart:
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure)
        svg = inline_svg(figure, chart_id, title, description)
    return Chart(chart_id, title, description, svg, table)


def charts(dashboard: Dashboard) -> list[Chart]:
    bucket = dashboard.bucket.label
    found = [
        _chart(
            "budget",
            title="Geld je Förderzeitraum: gebunden und verbleibend",
            description="Treppenlinien je Förderzeitraum: das gebundene Geld (bewilligt abzüglich "
            "zurückgegeben, durchgezogen) und das verbleibende Budget (gestrichelt) im Zeitverlauf.",
            size=(8, 4),
            draw=lambda figure: draw_budgets(figure, dashboard),
            table=budget_table(dashboard),
        ),
        _chart(
            "decisions",
            title=f"Förderentscheidungen je {bucket} nach Ergebnis",
            description=f"Gestapelte Säulen: je {bucket} die Förderentscheidungen, aufgeteilt nach "
            "bewilligt, nachgerückt, Warteliste, abgelehnt und zurückgegeben.",
            size=(8, 4),
            draw=lambda figure: draw_decisions(figure, dashboard),
            table=decisions_table(dashboard),
        ),
    ]
    for level, entries in dashboard.participation.items():
        found.append(
            _chart(
                f"participation-{level}",
                title=f"Teilnahme je {LEVEL_TITLES.get(level, level)}",
                description="Waagerechte Balken, höchster Anteil zuerst: je "
                f"{LEVEL_LABELS.get(level, level)} der Anteil der förderfähigen Kommunen mit "
                "mindestens einer geförderten Person; die gestrichelte Linie markiert die Hälfte.",
                size=(8, max(2.5, 0.22 * len(entries) + 1.2)),
                draw=partial(draw_participation, entries=entries),
                table=participation_table(level, entries),
            )
        )
    found.append(
        _chart(
            "waitlists",
            title="Förder-Wartelisten im Zeitverlauf",
            description="Treppenlinien: wie viele Registrierungen auf einen Platz ihrer Kommune "
            "warten (durchgezogen) und wie viele auf Geld im Förderzeitraum (gestrichelt).",
            size=(8, 3.5),
            draw=lambda figure: draw_waitlists(figure, dashboard),
            table=waitlist_table(dashboard),
        )
    )
    return found


_ENVIRONMENT = Environment(
    loader=PackageLoader("lotse", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_html(dashboard: Dashboard) -> str:
    """The whole page; the same dashboard always gives the same bytes."""
    report = dashboard.report
    programme = report.programme
    return _ENVIRONMENT.get_template("report.html.j2").render(
        programme=programme,
        lands=", ".join(programme.lands) if programme else "",
        eligible=thousands(report.eligible_kommunen),
        places=thousands(report.places),
        funded=thousands(report.funded_kommunen),
        funded_share=percent(report.funded_share),
        data_as_of=moment(dashboard.data_as_of) if dashboard.data_as_of else None,
        bucket=dashboard.bucket,
        charts=charts(dashboard),
        figures=figure_tables(dashboard),
        attribution=ATTRIBUTION,
    )


def write_html_report(dashboard: Dashboard, path: Path) -> Path:
    """Render the page to `path` (folders made as needed); returns the absolute path."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(dashboard), encoding="utf-8")
    return path
