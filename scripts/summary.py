"""Print what a run landed in DuckDB: per segment, members at start and end and a sparkline.

Run with a Python that has the ``duckdb`` package, e.g. target-duckdb's own venv:
    .meltano/loaders/target-duckdb/venv/bin/python scripts/summary.py output/klaviyo_dev.duckdb
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import date, datetime

import duckdb

BARS = "▁▂▃▄▅▆▇█"
MAX_WIDTH = 40


def sparkline(values: list[int]) -> str:
    """Unicode bars for ``values``, scaled between their min and max."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[len(BARS) // 2] * len(values)
    span = high - low
    return "".join(BARS[round((value - low) / span * (len(BARS) - 1))] for value in values)


def to_day(value: object) -> date:
    """A DuckDB value of ``date_time`` (timestamp or ISO text) as a calendar day."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()


def growth_points(rows: list[tuple[object, int]]) -> tuple[str, list[int]]:
    """Daily totals, or weekly ones (last day of each ISO week) when there are too many days."""
    by_day: dict[date, int] = {}
    for when, total in rows:
        if total is not None:
            by_day[to_day(when)] = int(total)
    days = sorted(by_day)
    if len(days) <= MAX_WIDTH:
        return "day", [by_day[day] for day in days]
    by_week: dict[tuple[int, int], int] = {}
    for day in days:
        by_week[day.isocalendar()[:2]] = by_day[day]
    weeks = [by_week[key] for key in sorted(by_week)]
    return "week", weeks[-MAX_WIDTH:]


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the database."""
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


def main(argv: list[str] | None = None) -> int:
    """Print the summary; exit 1 when the database holds no segment data."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="DuckDB file written by target-duckdb")
    parser.add_argument(
        "--schema", default="klaviyo", help="schema of the tables (default klaviyo)"
    )
    args = parser.parse_args(argv)

    con = duckdb.connect(args.database, read_only=True)
    schema = args.schema
    tables = ("segments", "segment_series", "segment_values")
    missing = [table for table in tables if not table_exists(con, schema, table)]
    if missing:
        print(f"No table(s) {', '.join(missing)} in schema {schema!r} of {args.database}")
        return 1
    counts = {
        table: con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]  # noqa: S608
        for table in tables
    }
    print("Rows: " + ", ".join(f"{schema}.{table} = {count}" for table, count in counts.items()))

    segments = con.execute(f'select id, name, is_active from "{schema}".segments').fetchall()  # noqa: S608
    names = {segment_id: name for segment_id, name, _ in segments}
    inactive = {segment_id for segment_id, _, is_active in segments if is_active is False}
    intervals = [
        row[0]
        for row in con.execute(
            f'select distinct "interval" from "{schema}".segment_series'  # noqa: S608
        ).fetchall()
    ]
    interval = next((i for i in ("daily", "weekly", "monthly", "hourly") if i in intervals), None)
    series: dict[str, list[tuple[object, int]]] = defaultdict(list)
    if interval is not None:
        for segment_id, when, total in con.execute(
            f'select segment_id, date_time, total_members from "{schema}".segment_series '  # noqa: S608
            'where "interval" = ? order by segment_id, date_time',
            [interval],
        ).fetchall():
            series[segment_id].append((when, total))

    print()
    print(f"{'segment':<32} {'start':>9} {'end':>9} {'net':>8}  growth ({interval or 'no'} series)")
    for segment_id in sorted(set(names) | set(series), key=lambda s: (names.get(s) or s).lower()):
        name = (names.get(segment_id) or segment_id)[:32]
        rows = series.get(segment_id, [])
        unit, points = growth_points(rows)
        totals = [int(total) for _, total in rows if total is not None]
        if not totals:
            why = "inactive: not reported" if segment_id in inactive else "no series rows"
            print(f"{name:<32} {'-':>9} {'-':>9} {'-':>8}  ({why})")
            continue
        start, end = totals[0], totals[-1]
        first, last = to_day(rows[0][0]), to_day(rows[-1][0])
        print(
            f"{name:<32} {start:>9,} {end:>9,} {end - start:>+8,}  "
            f"{sparkline(points)}  ({first} .. {last}, by {unit})"
        )
    return 0 if counts["segment_series"] else 1


if __name__ == "__main__":
    sys.exit(main())
