"""`meltano run tap-klaviyo-segments target-postgres` into a real PostgreSQL server.

The server (``postgres`` fixture) is started by the tests on a free port of 127.0.0.1 and
stopped afterwards; each test loads its own database with MeltanoLabs' target-postgres (the venv
``meltano install`` made) and reads it back with that venv's psycopg. Checked: exactly the
stand-in's rows, the column types an analyst relies on, the primary keys the target creates
from the streams' key properties, upserts on a second run, and an hourly series across a DST
change in a non-UTC account, where the repeated local hour must load as two rows.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import MeltanoProject, meltano_env
from e2e_scenario import SEED, SEGMENTS, Scenario, tap_config
from e2e_truth import (
    STATISTICS,
    active_segment_ids,
    as_datetime,
    assert_segments_match,
    assert_series_match,
    assert_values_match,
    expected_segments,
    expected_series,
    expected_values,
    series_rows_by_key,
)
from postgres_server import PostgresServer

from klaviyo_standin import StandinServer, StandinSettings
from tap_klaviyo_segments.series import SegmentSeriesStream
from tap_klaviyo_segments.streams import SegmentsStream, SegmentValuesStream

SCHEMA = "klaviyo"
TABLES = ("segments", "segment_series", "segment_values")

#: Column types (information_schema data_type) by table and column. bucket_date (a local
#: date) belongs in segment_series here once the stream has it.
COLUMN_TYPES = {
    "segment_series": {
        "segment_id": {"character varying", "text"},
        "interval": {"character varying", "text"},
        # UTC, without the offset: the value check below (and the DST test) prove it is UTC.
        "date_time": {"timestamp without time zone"},
        # The account's calendar day of the bucket: a date, whatever the target does to date_time.
        "bucket_date": {"date"},
        "is_complete": {"boolean"},
        **{name: {"bigint", "integer"} for name in STATISTICS},
    },
    "segment_values": {
        "segment_id": {"character varying", "text"},
        "timeframe": {"character varying", "text"},
        "as_of_date": {"date"},
        **{name: {"bigint", "integer"} for name in STATISTICS},
    },
    "segments": {
        "id": {"character varying", "text"},
        "name": {"character varying", "text"},
        "is_active": {"boolean"},
        "created": {"timestamp without time zone"},
        "updated": {"timestamp without time zone"},
    },
}

PRIMARY_KEYS = {
    stream.name: set(stream.primary_keys)
    for stream in (SegmentsStream, SegmentValuesStream, SegmentSeriesStream)
}


def read_postgres(python: Path, server: PostgresServer, database: str) -> dict[str, Any]:
    """The three tables' rows, column types and primary keys."""
    return server.read(python, database, SCHEMA, TABLES)


def postgres_project(
    meltano_bin: Path,
    tmp_path: Path,
    standin: StandinServer,
    config: dict[str, Any],
    postgres: PostgresServer,
    database: str,
) -> MeltanoProject:
    """The repo's Meltano project aimed at ``standin`` and at a new database ``database``."""
    env = meltano_env(tmp_path, standin, config)
    env.update(postgres.target_env(postgres.create_database(database)))
    return MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)


def assert_types_and_keys(loaded: dict[str, Any]) -> None:
    for table, columns in COLUMN_TYPES.items():
        for column, allowed in columns.items():
            got = loaded["types"].get(table, {}).get(column)
            assert got in allowed, f"{table}.{column} is {got}, expected one of {allowed}"
    keys = {table: set(columns) for table, columns in loaded["keys"].items()}
    assert keys == PRIMARY_KEYS, "the target must create the streams' primary keys"


def test_meltano_run_target_postgres(
    meltano_bin, plugin_bins, standin, recent: Scenario, postgres, tmp_path
):
    """Two runs into PostgreSQL: exact rows, types and keys, then upserts (no duplicates)."""
    project = postgres_project(
        meltano_bin, tmp_path, standin, tap_config(standin, recent), postgres, "recent"
    )
    project.run("run", "tap-klaviyo-segments", "target-postgres")

    series_truth = expected_series(standin.account, recent)
    values_truth = expected_values(standin.account)
    segments_truth = expected_segments(standin.account)
    loaded = read_postgres(plugin_bins["postgres-python"], postgres, "recent")
    assert_types_and_keys(loaded)
    rows = loaded["rows"]
    assert len(rows["segment_series"]) == len(series_truth)
    assert_series_match(rows["segment_series"], series_truth, recent)
    assert_values_match(rows["segment_values"], values_truth, standin.account.now_local().date())
    assert_segments_match(rows["segments"], segments_truth)

    state = project.state("dev:tap-klaviyo-segments-to-target-postgres")
    assert state["singer_state"]["bookmarks"]["segment_series"]["partitions"]
    calls_before = len(standin.report_calls())

    project.run("run", "tap-klaviyo-segments", "target-postgres")
    assert len(standin.report_calls()) > calls_before, "the second run re-read the lookback"
    rows = read_postgres(plugin_bins["postgres-python"], postgres, "recent")["rows"]
    assert len(rows["segment_series"]) == len(series_truth), "upserted, not appended"
    assert_series_match(rows["segment_series"], series_truth, recent)
    assert_values_match(rows["segment_values"], values_truth, standin.account.now_local().date())
    assert len(rows["segments"]) == len(segments_truth)


#: A closed window over the end of daylight saving time in New York (2025-11-02 01:00 happens
#: twice: -04:00, then -05:00), read long after (the stand-in's clock is frozen in 2026).
DST_ZONE = "America/New_York"
DST_START = date(2025, 11, 1)
DST_END = date(2025, 11, 3)  # inclusive


@pytest.fixture
def standin_new_york():
    settings = StandinSettings(
        segment_count=SEGMENTS,
        seed=SEED,
        timezone=DST_ZONE,
        now=datetime(2026, 6, 1, 12, 0),
        rate_limits_enabled=False,
    )
    with StandinServer(settings) as server:
        yield server


def test_hourly_series_across_a_dst_change_loads_every_bucket(
    meltano_bin, plugin_bins, standin_new_york, postgres, tmp_path
):
    standin = standin_new_york
    scenario = Scenario(
        name="dst", standin_now=datetime(2026, 6, 1, 12, 0), start=DST_START, end=DST_END
    )
    config = tap_config(standin, scenario)
    config.update(account_timezone=DST_ZONE, series_intervals=["hourly"])
    project = postgres_project(meltano_bin, tmp_path, standin, config, postgres, "dst")
    project.run("run", "tap-klaviyo-segments", "target-postgres")

    zone = ZoneInfo(DST_ZONE)
    first = datetime(DST_START.year, DST_START.month, DST_START.day, tzinfo=zone)
    end = datetime(DST_END.year, DST_END.month, DST_END.day, tzinfo=zone) + timedelta(days=1)
    hours = int((end.astimezone(timezone.utc) - first.astimezone(timezone.utc)).total_seconds())
    hours //= 3600
    assert hours == 3 * 24 + 1, "the window holds the repeated hour"

    truth: dict[tuple[str, str, datetime], dict[str, int]] = {}
    for segment_id in active_segment_ids(standin.account):
        buckets = standin.account.series(
            segment_id,
            "hourly",
            first.replace(tzinfo=None),
            end.replace(tzinfo=None),
            end_inclusive=False,
        )
        assert len(buckets) == hours, f"the stand-in's truth has {len(buckets)} hourly buckets"
        for stamp, stats in buckets:
            truth[(segment_id, "hourly", as_datetime(stamp))] = stats

    loaded = read_postgres(plugin_bins["postgres-python"], postgres, "dst")
    assert_types_and_keys(loaded)
    got = series_rows_by_key(loaded["rows"]["segment_series"])
    assert set(got) == set(truth), (
        f"{len(got)} rows loaded, {len(truth)} buckets; missing {sorted(set(truth) - set(got))[:4]}"
    )
    for key, row in got.items():
        assert {name: row[name] for name in STATISTICS} == truth[key], key
        assert row["is_complete"] is True, key
    repeated = [
        key[2]
        for key in got
        if key[2].astimezone(zone).replace(tzinfo=None) == datetime(2025, 11, 2, 1, 0)
    ]
    segments = len(active_segment_ids(standin.account))
    assert len(repeated) == 2 * segments, "01:00 on 2025-11-02 is two buckets per segment"
