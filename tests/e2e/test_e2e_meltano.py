"""`meltano run tap-klaviyo-segments target-jsonl|target-duckdb` against the stand-in.

Each test runs the pipeline twice on one Meltano system DB: the first run must land exactly the
stand-in's ground truth and save state; the second must resume from that state and spend only
the lookback's report calls (counted in the stand-in's request log).
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from typing import Any

from e2e_scenario import INTERVALS, LOOKBACK_DAYS, TIMEFRAMES, Scenario
from e2e_truth import (
    SERIES_REPORTS,
    VALUES_REPORTS,
    as_datetime,
    assert_segments_match,
    assert_series_match,
    assert_values_match,
    expected_segments,
    expected_series,
    expected_values,
    read_duckdb,
    read_jsonl,
    series_rows_by_key,
)


def report_calls(server: Any, path: str) -> list[dict[str, Any]]:
    """Bodies of the report requests the stand-in answered (200) on ``path``, in order."""
    return [entry.body for entry in server.report_calls() if entry.path.rstrip("/") == path]


def window_start(body: dict[str, Any]) -> datetime:
    """The local start of a report request's custom timeframe."""
    start = body["data"]["attributes"]["timeframe"]["start"]
    return as_datetime(start).replace(tzinfo=None)


def lookback_floor(scenario: Scenario) -> datetime:
    """No second-run read may start before this: the lookback, widened to a weekly bucket."""
    return scenario.data_end - timedelta(days=LOOKBACK_DAYS + 7)


def assert_second_run_reads_only_the_lookback(
    server: Any, scenario: Scenario, series_before: int, values_before: int
) -> None:
    """The second run: one series call per interval, none starting before the lookback."""
    series = report_calls(server, SERIES_REPORTS)[series_before:]
    values = report_calls(server, VALUES_REPORTS)[values_before:]
    assert len(series) == len(INTERVALS), (
        f"second run made {len(series)} series report calls, expected {len(INTERVALS)} "
        f"(one per interval, for the lookback)"
    )
    assert len(values) == len(TIMEFRAMES)
    for body in series:
        assert window_start(body) >= lookback_floor(scenario), (
            f"second run re-read from {window_start(body)}"
        )


def test_meltano_run_target_jsonl(meltano: Any, standin: Any, recent: Scenario) -> None:
    """Two runs into target-jsonl: exact rows, saved state, then only the lookback."""
    out = meltano.tmp / "jsonl"
    meltano.run("run", "tap-klaviyo-segments", "target-jsonl")

    series_rows = read_jsonl(out / "segment_series.jsonl")
    truth = expected_series(standin.account, recent)
    assert_series_match(series_rows, truth, recent)
    assert_values_match(
        read_jsonl(out / "segment_values.jsonl"),
        expected_values(standin.account),
        standin.account.now_local().date(),
    )
    assert_segments_match(read_jsonl(out / "segments.jsonl"), expected_segments(standin.account))

    state = meltano.state("dev:tap-klaviyo-segments-to-target-jsonl")
    bookmarks = state["singer_state"]["bookmarks"]
    partitions = bookmarks["segment_series"]["partitions"]
    assert len(partitions) == len({(k[0], k[1]) for k in truth}), partitions

    series_before = len(report_calls(standin, SERIES_REPORTS))
    values_before = len(report_calls(standin, VALUES_REPORTS))
    assert series_before >= len(INTERVALS)
    meltano.run("run", "tap-klaviyo-segments", "target-jsonl")
    assert_second_run_reads_only_the_lookback(standin, recent, series_before, values_before)

    # target-jsonl appends: the second run added only lookback rows, all still true.
    all_rows = read_jsonl(out / "segment_series.jsonl")
    new_rows = all_rows[len(series_rows) :]
    assert 0 < len(new_rows) < len(series_rows) / 4, f"{len(new_rows)} rows on the second run"
    for key, row in series_rows_by_key(new_rows).items():
        assert key in truth, key
        assert key[2].replace(tzinfo=None) >= lookback_floor(recent), key
        assert row["total_members"] == truth[key]["total_members"]


def test_meltano_run_target_duckdb(
    meltano: Any, standin: Any, recent: Scenario, plugin_bins: dict[str, Any]
) -> None:
    """Two runs into target-duckdb (pinned duckdb): exact row counts and values both times."""
    version = subprocess.run(
        [str(plugin_bins["duckdb-python"]), "-c", "import duckdb; print(duckdb.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "1.2.2", f"target-duckdb's venv has duckdb {version}; meltano.yml pins 1.2.2"
    database = meltano.tmp / "warehouse.duckdb"
    meltano.run("run", "tap-klaviyo-segments", "target-duckdb")

    series_truth = expected_series(standin.account, recent)
    values_truth = expected_values(standin.account)
    segments_truth = expected_segments(standin.account)
    tables = read_duckdb(plugin_bins["duckdb-python"], database)
    # Exact counts first: target-duckdb 0.8.0 on duckdb >= 1.3 drops a row per batch.
    assert len(tables["segment_series"]) == len(series_truth)
    assert len(tables["segment_values"]) == len(values_truth)
    assert len(tables["segments"]) == len(segments_truth)
    assert_series_match(tables["segment_series"], series_truth, recent)
    assert_values_match(tables["segment_values"], values_truth, standin.account.now_local().date())
    assert_segments_match(tables["segments"], segments_truth)

    state = meltano.state("dev:tap-klaviyo-segments-to-target-duckdb")
    assert state["singer_state"]["bookmarks"]["segment_series"]["partitions"]

    series_before = len(report_calls(standin, SERIES_REPORTS))
    values_before = len(report_calls(standin, VALUES_REPORTS))
    meltano.run("run", "tap-klaviyo-segments", "target-duckdb")
    assert_second_run_reads_only_the_lookback(standin, recent, series_before, values_before)

    # Upserts on the primary keys: the same rows, no duplicates, still equal to the truth.
    tables = read_duckdb(plugin_bins["duckdb-python"], database)
    assert len(tables["segment_series"]) == len(series_truth)
    assert_series_match(tables["segment_series"], series_truth, recent)
    assert len(tables["segments"]) == len(segments_truth)
    assert len(tables["segment_values"]) == len(values_truth)
