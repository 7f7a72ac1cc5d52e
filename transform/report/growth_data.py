"""Read the growth models (transform/models/marts) from DuckDB or PostgreSQL.

Shared by the report page (growth_report.py) and the demo's text summary (scripts/summary.py),
so both show the models' numbers, never their own arithmetic over the raw tables. Runs in the
growth-report utility's venv (meltano.yml), which has duckdb and psycopg2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

MODELS = (
    "segment_growth_daily",
    "segment_growth_weekly",
    "segment_growth_monthly",
    "segment_growth_latest",
    "segment_growth_alerts",
)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ModelsMissingError(RuntimeError):
    """The schema lacks the growth models (dbt has not built them there)."""


class _Cursor(Protocol):
    description: Sequence[Sequence[Any]] | None

    def execute(self, sql: str) -> object: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Warehouse:
    """One connection to DuckDB (a file, read only) or PostgreSQL (libpq's PG* variables)."""

    def __init__(self, *, duckdb_path: str | None = None, postgres_dsn: str | None = None) -> None:
        if duckdb_path is not None:
            import duckdb

            self.name = duckdb_path
            self._connection: Any = duckdb.connect(duckdb_path, read_only=True)
        else:
            import psycopg2

            self._connection = psycopg2.connect(postgres_dsn or "")
            self.name = "PostgreSQL database " + self._connection.info.dbname

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of ``sql`` as dicts by column name."""
        cursor: _Cursor = self._connection.cursor()
        cursor.execute(sql)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def columns(self, schema: str, table: str) -> list[str]:
        """Column names of ``schema.table`` (empty when it does not exist)."""
        found = self.rows(
            "select column_name from information_schema.columns "  # noqa: S608 - identifiers checked
            f"where table_schema = '{schema}' and table_name = '{table}' "
            "order by ordinal_position"
        )
        return [row["column_name"] for row in found]

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


@dataclass
class Mover:
    """One segment's growth over 7 and 30 days, as of its last complete day."""

    label: str
    segment_id: str
    as_of: date
    total_members: int
    change_7d: int | None
    pct_change_7d: float | None
    change_30d: int | None
    pct_change_30d: float | None
    trend: str
    added_7d: int
    removed_7d: int
    added_30d: int
    removed_30d: int

    def sort_key(self, days: int) -> tuple[float, str]:
        """Shrinking first: by the percent change over ``days``, unknown changes last."""
        pct = self.pct_change_7d if days == 7 else self.pct_change_30d
        return (pct if pct is not None else float("inf"), self.label.lower())


@dataclass
class GrowthData:
    """What the report and the summary show, read from the models."""

    source: str
    has_account: bool
    daily: list[dict[str, Any]]
    weekly: list[dict[str, Any]]
    monthly: list[dict[str, Any]]
    latest: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    movers: list[Mover] = field(default_factory=list)

    def label(self, row: dict[str, Any]) -> str:
        """A segment's label: its name (the id when it has none), after its account if any."""
        name = row.get("segment_name") or row["segment_id"]
        return f"{row['account']} / {name}" if self.has_account else str(name)

    def movers_by(self, days: int) -> list[Mover]:
        """Every segment with a complete day, shrinking first over ``days`` (7 or 30)."""
        return sorted(self.movers, key=lambda mover: mover.sort_key(days))

    @property
    def incomplete_days(self) -> list[date]:
        """Days of the daily model not over yet (today's bucket), left out of the numbers."""
        return sorted({row["day"] for row in self.daily if not row["is_complete"]})


def _key(row: dict[str, Any], has_account: bool) -> tuple[str, str]:
    return (str(row["account"]) if has_account else "", str(row["segment_id"]))


def _sums(
    daily: list[dict[str, Any]], has_account: bool, as_of: dict[tuple[str, str], date], days: int
) -> dict[tuple[str, str], tuple[int, int]]:
    """members_added and members_removed over the ``days`` days ending at each segment's as_of."""
    sums: dict[tuple[str, str], tuple[int, int]] = {}
    for row in daily:
        key = _key(row, has_account)
        end = as_of.get(key)
        if end is None or not end - timedelta(days=days - 1) <= row["day"] <= end:
            continue
        added, removed = sums.get(key, (0, 0))
        sums[key] = (added + int(row["members_added"]), removed + int(row["members_removed"]))
    return sums


def _number(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def read_growth(warehouse: Warehouse, schema: str, *, days: int | None = None) -> GrowthData:
    """The models of ``schema``; ``days`` limits the daily rows to the last so many days."""
    if not IDENTIFIER.fullmatch(schema):
        raise ValueError(f"schema {schema!r} is not a plain identifier: use letters, digits, _")
    columns = {model: warehouse.columns(schema, model) for model in MODELS}
    missing = [model for model, names in columns.items() if not names]
    if missing:
        raise ModelsMissingError(
            f"no {', '.join(missing)} in schema {schema!r} of {warehouse.name}: build the "
            "models first (meltano invoke dbt-duckdb:build, or dbt-postgres:build)"
        )
    has_account = "account" in columns["segment_growth_latest"]
    account = "account, " if has_account else ""
    daily_filter = ""
    if days is not None:
        daily_filter = (
            f'where day > (select max(day) from "{schema}".segment_growth_daily) - {int(days)}'  # noqa: S608
        )

    def table(model: str, where: str, order: str) -> list[dict[str, Any]]:
        return warehouse.rows(
            f'select * from "{schema}"."{model}" {where} order by {account}{order}'  # noqa: S608
        )

    data = GrowthData(
        source=warehouse.name,
        has_account=has_account,
        daily=table("segment_growth_daily", daily_filter, "segment_id, day"),
        weekly=table("segment_growth_weekly", "", "segment_id, week_start"),
        monthly=table("segment_growth_monthly", "", "segment_id, month_start"),
        latest=table("segment_growth_latest", "", "segment_id"),
        alerts=table("segment_growth_alerts", "", "day desc, segment_id"),
    )
    as_of = {_key(row, has_account): row["as_of"] for row in data.latest}
    sums_7 = _sums(data.daily, has_account, as_of, 7)
    sums_30 = _sums(data.daily, has_account, as_of, 30)
    for row in data.latest:
        key = _key(row, has_account)
        data.movers.append(
            Mover(
                label=data.label(row),
                segment_id=str(row["segment_id"]),
                as_of=row["as_of"],
                total_members=int(row["total_members"]),
                change_7d=row["change_7d"],
                pct_change_7d=_number(row["pct_change_7d"]),
                change_30d=row["change_30d"],
                pct_change_30d=_number(row["pct_change_30d"]),
                trend=str(row["trend"]),
                added_7d=sums_7.get(key, (0, 0))[0],
                removed_7d=sums_7.get(key, (0, 0))[1],
                added_30d=sums_30.get(key, (0, 0))[0],
                removed_30d=sums_30.get(key, (0, 0))[1],
            )
        )
    return data
