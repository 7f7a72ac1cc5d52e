"""Print per-segment growth from the growth models: members, 7- and 30-day change, shrinking first.

The numbers are the models' (transform/, built by `meltano invoke dbt-duckdb:build`), as of
each segment's last complete day: today's unfinished bucket is left out, and named. Run with
the growth-report utility's Python (it has duckdb), e.g.
    .meltano/utilities/growth-report/venv/bin/python scripts/summary.py output/klaviyo_dev.duckdb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transform" / "report"))
from growth_data import GrowthData, ModelsMissingError, Mover, Warehouse, read_growth

NAME_WIDTH = 28


def fmt_change(change: int | None, pct: float | None) -> str:
    """'+123 (+1.2%)', or '-' when the earlier day is missing."""
    if change is None:
        return "-"
    return f"{change:+,} ({pct * 100:+.1f}%)" if pct is not None else f"{change:+,}"


def line(mover: Mover) -> str:
    """One segment's row."""
    return (
        f"{mover.label[:NAME_WIDTH]:<{NAME_WIDTH}} {mover.total_members:>9,} "
        f"{fmt_change(mover.change_7d, mover.pct_change_7d):>17} "
        f"{fmt_change(mover.change_30d, mover.pct_change_30d):>19} "
        f"{f'+{mover.added_30d:,} / -{mover.removed_30d:,}':>19}  {mover.trend}"
    )


def print_summary(data: GrowthData, schema: str) -> None:
    """The table, shrinking first (by the 7-day change, as the trend is)."""
    as_of = sorted({mover.as_of for mover in data.movers})
    when = str(as_of[-1]) if len(as_of) == 1 else f"{as_of[0]} .. {as_of[-1]}"
    unfinished = data.incomplete_days
    print(
        f"Segment growth from the models in schema {schema}, as of {when} (each segment's last "
        "complete day"
        + (
            f"; {', '.join(str(d) for d in unfinished)} is unfinished and left out)"
            if unfinished
            else ")"
        )
    )
    print("Shrinking first, by the 7-day change; added / removed are Klaviyo's 30-day counts.")
    print()
    print(
        f"{'segment':<{NAME_WIDTH}} {'members':>9} {'7 days':>17} {'30 days':>19} "
        f"{'added / removed':>19}  trend"
    )
    for mover in data.movers_by(7):
        print(line(mover))
    recent = [row for row in data.alerts if (as_of[-1] - row["day"]).days < 30]
    print()
    print(
        f"Alerts in the last 30 days: {len(recent)}"
        + (
            f" (latest: {data.label(recent[0])} on {recent[0]['day']}: {recent[0]['reason']})"
            if recent
            else ""
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Print the summary; exit 1 when the models are missing or empty."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="DuckDB file loaded by target-duckdb and modelled by dbt")
    parser.add_argument(
        "--models-schema", default="klaviyo_growth", help="schema of the growth models"
    )
    parser.add_argument(
        "--schema", default="klaviyo", help="schema of the loaded tables (default klaviyo)"
    )
    args = parser.parse_args(argv)
    if not Path(args.database).is_file():
        print(f"error: no DuckDB file at {args.database}: load it first", file=sys.stderr)
        return 1
    warehouse = Warehouse(duckdb_path=args.database)
    try:
        counts = {
            table: warehouse.rows(f'select count(*) as n from "{args.schema}"."{table}"')[0]["n"]  # noqa: S608
            for table in ("segments", "segment_series", "segment_values")
        }
        print("Rows loaded: " + ", ".join(f"{args.schema}.{t} = {n}" for t, n in counts.items()))
        inactive = warehouse.rows(
            f'select name from "{args.schema}".segments where is_active = false order by name'  # noqa: S608
        )
        data = read_growth(warehouse, args.models_schema, days=31)
    except ModelsMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        warehouse.close()
    if not data.movers:
        print("No segment has a complete day yet.")
        return 1
    print_summary(data, args.models_schema)
    if inactive:
        names = ", ".join(str(row["name"]) for row in inactive)
        print(f"Inactive segments (not reported by default): {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
