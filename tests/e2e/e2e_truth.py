"""Expected rows from the stand-in's ground truth, and readers for what the targets wrote."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from e2e_scenario import INTERVALS, TIMEFRAMES, Scenario

STATISTICS = ("total_members", "members_added", "members_removed", "net_members_changed")
SERIES_REPORTS = "/api/segment-series-reports"
VALUES_REPORTS = "/api/segment-values-reports"

SeriesKey = tuple[str, str, datetime]


def as_datetime(value: object) -> datetime:
    """A date_time as written by a target, in UTC (DuckDB's naive timestamps are UTC)."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def as_date(value: object) -> date:
    """An as_of_date as written by a target."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return (
        datetime.fromisoformat(str(value)).date()
        if "T" in str(value) or " " in str(value)
        else (date.fromisoformat(str(value)))
    )


def active_segment_ids(account: Any) -> list[str]:
    """Ids the tap reports on by default (include_inactive_segments is false)."""
    return [row["id"] for row in account.segments() if row["is_active"]]


def expected_segments(account: Any) -> dict[str, dict[str, Any]]:
    """The segments stream's rows by id: every segment of the account."""
    return {row["id"]: row for row in account.segments()}


def expected_series(account: Any, scenario: Scenario) -> dict[SeriesKey, dict[str, int]]:
    """Every series bucket of the scenario's window for each active segment and interval.

    Weeks are calendar weeks from Monday (the stand-in's default, as Klaviyo answered); the tap
    reads the week that holds ``start`` whole, so the weekly truth starts on its Monday.
    """
    truth: dict[SeriesKey, dict[str, int]] = {}
    monday = scenario.first - timedelta(days=scenario.first.weekday())
    for segment_id in active_segment_ids(account):
        for interval in INTERVALS:
            first = monday if interval == "weekly" else scenario.first
            buckets = account.series(
                segment_id, interval, first, scenario.truth_end, end_inclusive=False
            )
            for stamp, stats in buckets:
                truth[(segment_id, interval, as_datetime(stamp))] = stats
    return truth


def expected_values(account: Any) -> dict[tuple[str, str], dict[str, int]]:
    """The values stream's statistics by (segment_id, timeframe) at the stand-in's clock."""
    return {
        (segment_id, timeframe): account.values(segment_id, timeframe)
        for segment_id in active_segment_ids(account)
        for timeframe in TIMEFRAMES
    }


def series_rows_by_key(rows: list[dict[str, Any]]) -> dict[SeriesKey, dict[str, Any]]:
    """Series rows keyed by their primary key, failing on a key seen twice."""
    keys = [(row["segment_id"], row["interval"], as_datetime(row["date_time"])) for row in rows]
    duplicates = [key for key, count in Counter(keys).items() if count > 1]
    assert not duplicates, f"duplicate segment_series keys: {duplicates[:5]}"
    return dict(zip(keys, rows, strict=True))


BUCKET_LENGTH = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


def assert_series_match(
    rows: list[dict[str, Any]], truth: dict[SeriesKey, dict[str, int]], scenario: Scenario
) -> None:
    """Exactly the expected buckets, with the expected statistics and completeness."""
    got = series_rows_by_key(rows)
    missing = sorted(set(truth) - set(got))[:5]
    extra = sorted(set(got) - set(truth))[:5]
    assert len(got) == len(truth), (
        f"{len(got)} segment_series rows, expected {len(truth)}; missing {missing}, extra {extra}"
    )
    assert not missing
    assert not extra
    wrong = [
        (key, {name: got[key][name] for name in STATISTICS}, expected)
        for key, expected in truth.items()
        if any(got[key][name] != expected[name] for name in STATISTICS)
    ]
    assert not wrong, f"{len(wrong)} series rows differ from the stand-in, e.g. {wrong[:3]}"
    for key, row in got.items():
        ends = key[2].replace(tzinfo=None) + BUCKET_LENGTH[key[1]]
        assert bool(row["is_complete"]) == (ends <= scenario.data_end), (key, row["is_complete"])


def assert_values_match(
    rows: list[dict[str, Any]], truth: dict[tuple[str, str], dict[str, int]], day: date
) -> None:
    """One row per (segment, timeframe), statistics equal to the stand-in's, dated ``day``.

    ``day`` is the stand-in's own day (its answers' Date header is Klaviyo's clock), which the
    tap dates values by, whatever the machine's clock says.
    """
    keys = [(row["segment_id"], row["timeframe"]) for row in rows]
    assert len(keys) == len(set(keys)) == len(truth), (
        f"{len(keys)} segment_values rows ({len(set(keys))} distinct), expected {len(truth)}"
    )
    assert set(keys) == set(truth)
    for row in rows:
        expected = truth[(row["segment_id"], row["timeframe"])]
        assert {name: row[name] for name in STATISTICS} == expected, row
        assert as_date(row["as_of_date"]) == day, (row["as_of_date"], day)


def assert_segments_match(rows: list[dict[str, Any]], truth: dict[str, dict[str, Any]]) -> None:
    """Every segment once, with its name and flags."""
    ids = [row["id"] for row in rows]
    assert sorted(ids) == sorted(truth), f"segments {sorted(ids)} != {sorted(truth)}"
    for row in rows:
        expected = truth[row["id"]]
        assert row["name"] == expected["name"]
        assert bool(row["is_active"]) == expected["is_active"]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a target-jsonl file (one JSON object a line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


_DUMP = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for table in sys.argv[3:]:
    rel = con.sql(f'select * from "{sys.argv[2]}"."{table}"')
    out[table] = [dict(zip(rel.columns, row)) for row in rel.fetchall()]
print(json.dumps(out, default=str))
"""


def read_duckdb(
    python: Path, database: Path, schema: str = "klaviyo"
) -> dict[str, list[dict[str, Any]]]:
    """Every row of the three tables, read with the duckdb package of target-duckdb's venv."""
    tables = ("segments", "segment_series", "segment_values")
    proc = subprocess.run(
        [str(python), "-c", _DUMP, str(database), schema, *tables],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"reading {database} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)
