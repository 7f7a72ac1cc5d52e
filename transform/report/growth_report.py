"""Write the segment growth report: one static HTML page from the growth models.

The page works offline: plotly.js is inlined (include_plotlyjs=True), so opening the file fetches
nothing. It shows total members over time per segment, members added against removed per period
(Klaviyo's weekly series where loaded, else days), the top movers over 7 and 30 days with the
shrinking ones first, and the alerts. Run by the growth-report utility of meltano.yml:

    meltano invoke growth-report:duckdb       # or growth-report:postgres (libpq's PG* variables)
    python transform/report/growth_report.py --duckdb output/klaviyo_dev.duckdb --output out.html
"""

from __future__ import annotations

import argparse
import html
import sys
from collections import defaultdict
from datetime import date, datetime, timezone
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from growth_data import GrowthData, ModelsMissingError, Mover, Warehouse, read_growth

#: Added and removed are drawn in these colors everywhere on the page.
ADDED = "#2a9d8f"
REMOVED = "#e76f51"
#: Days of history in the charts (the models keep all of it).
DEFAULT_DAYS = 365

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222;
       padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
section { margin: 2.5rem 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.down { color: #b23a1e; } td.up { color: #1d6f64; }
.movers { display: grid; grid-template-columns: 1fr 1fr; gap: 2rem; }
.note { color: #666; font-size: 0.9rem; }
"""


def fmt_int(value: int | None, *, signed: bool = False) -> str:
    """A count with thousands separators ('-' when unknown)."""
    if value is None:
        return "-"
    return f"{value:+,}" if signed else f"{value:,}"


def fmt_pct(value: float | None) -> str:
    """A fraction as a signed percentage ('-' when unknown)."""
    return "-" if value is None else f"{value * 100:+.1f}%"


def css_class(value: float | None) -> str:
    """'down' / 'up' for coloring a change."""
    if value is None or value == 0:
        return ""
    return "down" if value < 0 else "up"


def figure_html(figure: go.Figure, div_id: str, *, first: bool) -> str:
    """A figure as a <div>; the first one carries plotly.js itself (inlined, ~4 MB)."""
    figure.update_layout(
        template="plotly_white", margin={"l": 60, "r": 20, "t": 50, "b": 40}, height=480
    )
    return pio.to_html(
        figure,
        full_html=False,
        include_plotlyjs=first,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def members_figure(data: GrowthData) -> go.Figure:
    """Total members per segment per complete day."""
    series: dict[str, tuple[list[date], list[int]]] = defaultdict(lambda: ([], []))
    for row in data.daily:
        if row["is_complete"]:
            days, totals = series[data.label(row)]
            days.append(row["day"])
            totals.append(int(row["total_members"]))
    figure = go.Figure()
    for label in sorted(series, key=str.lower):
        days, totals = series[label]
        figure.add_trace(go.Scatter(x=days, y=totals, mode="lines", name=label))
    figure.update_layout(
        title="Total members per segment (complete days)",
        yaxis_title="members",
        hovermode="x unified",
        # Segments of very different sizes: a log scale shows the small ones' changes too.
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "x": 1,
                "y": 1.14,
                "xanchor": "right",
                "buttons": [
                    {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                    {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
                ],
            }
        ],
    )
    return figure


def added_removed_figure(data: GrowthData) -> tuple[go.Figure, str]:
    """Members added (up) against removed (down), all segments together, per complete period.

    Klaviyo's own weekly series where it was loaded; else days (never days summed into weeks).
    """
    added: dict[date, int] = defaultdict(int)
    removed: dict[date, int] = defaultdict(int)
    if data.weekly:
        period, rows, day_column = "week", data.weekly, "week_start"
    else:
        period, rows, day_column = "day", data.daily, "day"
    for row in rows:
        if not row["is_complete"]:
            continue
        added[row[day_column]] += int(row["members_added"])
        removed[row[day_column]] += int(row["members_removed"])
    periods = sorted(added)
    # Bars as wide as most of their period (a date axis measures widths in milliseconds).
    width = (6 if period == "week" else 0.8) * 86_400_000
    figure = go.Figure(
        [
            go.Bar(
                x=periods,
                y=[added[p] for p in periods],
                name="added",
                marker_color=ADDED,
                width=width,
            ),
            go.Bar(
                x=periods,
                y=[-removed[p] for p in periods],
                name="removed",
                marker_color=REMOVED,
                width=width,
            ),
        ]
    )
    figure.update_layout(
        title=f"Members added and removed per {period}, all segments",
        barmode="relative",
        yaxis_title="members (removed below zero)",
    )
    return figure, period


def movers_figure(data: GrowthData) -> go.Figure:
    """Percent change over 30 days per segment, shrinking first."""
    movers = [m for m in data.movers_by(30) if m.pct_change_30d is not None]
    figure = go.Figure(
        go.Bar(
            x=[m.pct_change_30d * 100 for m in movers if m.pct_change_30d is not None],
            y=[m.label for m in movers],
            orientation="h",
            marker_color=[REMOVED if (m.pct_change_30d or 0) < 0 else ADDED for m in movers],
            name="30-day change",
        )
    )
    figure.update_layout(
        title="Change over 30 days (%), shrinking first",
        xaxis_title="% change",
        yaxis={"autorange": "reversed"},
        height=max(320, 28 * len(movers) + 100),
    )
    return figure


def movers_table(movers: list[Mover], days: int) -> str:
    """A table of segments over ``days`` (7 or 30), shrinking first."""
    rows = []
    for mover in movers:
        change, pct = (
            (mover.change_7d, mover.pct_change_7d)
            if days == 7
            else (mover.change_30d, mover.pct_change_30d)
        )
        added, removed = (
            (mover.added_7d, mover.removed_7d)
            if days == 7
            else (mover.added_30d, mover.removed_30d)
        )
        rows.append(
            f"<tr><td>{html.escape(mover.label)}</td><td>{fmt_int(mover.total_members)}</td>"
            f'<td class="{css_class(change)}">{fmt_int(change, signed=True)}</td>'
            f'<td class="{css_class(pct)}">{fmt_pct(pct)}</td>'
            f"<td>{fmt_int(added, signed=True)}</td><td>{fmt_int(-removed, signed=True)}</td></tr>"
        )
    return (
        f'<table id="movers-{days}d"><thead><tr><th>segment</th><th>members</th>'
        f"<th>{days}-day change</th><th>%</th><th>added</th><th>removed</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def alerts_table(data: GrowthData, limit: int = 100) -> str:
    """The alerts, newest first."""
    if not data.alerts:
        return '<p class="note" id="alerts-none">No alerts: no day was out of the ordinary.</p>'
    rows = [
        f"<tr><td>{row['day']}</td><td class='text'>{html.escape(data.label(row))}</td>"
        f"<td>{fmt_int(row['total_members'])}</td>"
        f"<td class='{css_class(row['net_members_changed'])}'>"
        f"{fmt_int(row['net_members_changed'], signed=True)}</td>"
        f"<td class='text'>{html.escape(str(row['alert_kind']).replace('_', ' '))}</td>"
        f"<td class='text'>{html.escape(str(row['reason']))}</td></tr>"
        for row in data.alerts[:limit]
    ]
    more = (
        f'<p class="note">{len(data.alerts) - limit} older alerts are in the model.</p>'
        if len(data.alerts) > limit
        else ""
    )
    return (
        '<table id="alerts"><thead><tr><th>day</th><th class="text">segment</th><th>members</th>'
        '<th>net</th><th class="text">kind</th><th class="text">reason</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{more}"
    )


def render(data: GrowthData) -> str:
    """The whole page."""
    if not data.latest:
        raise ModelsMissingError(f"the growth models in {data.source} have no complete day yet")
    as_of = max(m.as_of for m in data.movers)
    incomplete = data.incomplete_days
    unfinished = (
        f" The unfinished day{'s' if len(incomplete) > 1 else ''} "
        f"{', '.join(str(d) for d in incomplete)} {'are' if len(incomplete) > 1 else 'is'} "
        "left out of the numbers."
        if incomplete
        else ""
    )
    added_removed, period = added_removed_figure(data)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    charts = [
        ("members", members_figure(data)),
        ("added-removed", added_removed),
        ("movers", movers_figure(data)),
    ]
    divs = [
        figure_html(figure, f"chart-{name}", first=index == 0)
        for index, (name, figure) in enumerate(charts)
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Klaviyo segment growth</title><style>{STYLE}</style></head>
<body>
<h1>Klaviyo segment growth</h1>
<p class="meta">{len(data.movers)} segments, as of {as_of} (each segment's last complete day).
{unfinished} From the growth models in {html.escape(data.source)}; generated {generated}.</p>
<section><h2>Top movers</h2><p class="note">Shrinking first. Added and removed are Klaviyo's
counts over the same days.</p>
<div class="movers"><div><h3>Last 7 days</h3>{movers_table(data.movers_by(7), 7)}</div>
<div><h3>Last 30 days</h3>{movers_table(data.movers_by(30), 30)}</div></div></section>
<section><h2>Members over time</h2>{divs[0]}</section>
<section><h2>Added against removed</h2><p class="note">Per complete {period}
{"(Klaviyo's weekly series)" if period == "week" else "(no weekly series loaded)"}.</p>
{divs[1]}</section>
<section><h2>Change over 30 days</h2>{divs[2]}</section>
<section><h2>Alerts ({len(data.alerts)})</h2>{alerts_table(data)}</section>
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    """Write the page and print its path; a one-line error when the models are not there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--duckdb", metavar="PATH", help="DuckDB file holding the models")
    where.add_argument(
        "--postgres",
        nargs="?",
        const="",
        metavar="DSN",
        help="PostgreSQL (a libpq DSN; default: the PG* environment variables)",
    )
    parser.add_argument("--schema", default="klaviyo_growth", help="schema of the models")
    parser.add_argument("--output", required=True, help="path of the HTML page to write")
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"days of history (default {DEFAULT_DAYS})"
    )
    args = parser.parse_args(argv)
    if args.days < 31:
        parser.error("--days must be at least 31 (the 30-day movers need them)")
    if args.duckdb is not None and not Path(args.duckdb).is_file():
        print(f"error: no DuckDB file at {args.duckdb}: load it first", file=sys.stderr)
        return 1
    try:
        warehouse = Warehouse(duckdb_path=args.duckdb, postgres_dsn=args.postgres)
        try:
            data = read_growth(warehouse, args.schema, days=args.days)
        finally:
            warehouse.close()
        page = render(data)
    except (ModelsMissingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    print(f"Growth report: {output.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
