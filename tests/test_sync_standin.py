"""The tap against the local stand-in: exact rows, fewest calls, bookmarks, lookback, buckets."""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from klaviyo_standin import StandinServer, StandinSettings
from tap_klaviyo_segments.settings import STATISTICS
from tests.tap_runner import base_config, run_tap

# Frozen clocks: the stand-in's account and the tap agree on "now".
NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def standin_settings():
    return StandinSettings(segment_count=12, seed=3, now=NOW_LOCAL, rate_limits_enabled=False)


def series_calls(server) -> list:
    return [e for e in server.report_calls() if e.path.endswith("segment-series-reports")]


def series_only(server, **overrides):
    return base_config(server.url, **overrides)


def test_backfill_matches_ground_truth_exactly(standin):
    ids = standin.account.segment_ids()[:3]
    config = series_only(standin, segment_ids=ids, start_date="2026-06-01")
    result = run_tap(config, now=NOW_UTC, select=("segment_series",))
    rows = result.records["segment_series"]
    for sid in ids:
        truth = standin.account.series(sid, "daily", datetime(2026, 6, 1), NOW_LOCAL)
        got = [r for r in rows if r["segment_id"] == sid]
        assert [r["date_time"] for r in got] == [stamp for stamp, _ in truth]
        for record, (_, stats) in zip(got, truth, strict=True):
            assert {k: record[k] for k in stats} == stats
    # 181 days -> 4 windows of <= 60 days, one batch.
    assert len(series_calls(standin)) == 4


def test_each_bucket_is_emitted_once_and_only_the_last_is_in_progress(standin):
    ids = standin.account.segment_ids()[:2]
    result = run_tap(
        series_only(standin, segment_ids=ids, start_date="2026-01-01"),
        now=NOW_UTC,
        select=("segment_series",),
    )
    rows = result.records["segment_series"]
    keys = Counter((r["segment_id"], r["interval"], r["date_time"]) for r in rows)
    assert max(keys.values()) == 1
    incomplete = [r for r in rows if not r["is_complete"]]
    assert {r["date_time"][:10] for r in incomplete} == {"2026-11-28"}
    assert len(incomplete) == len(ids)


@pytest.mark.parametrize("end_inclusive", [True, False])
def test_inclusive_or_exclusive_timeframe_ends_give_the_same_rows(end_inclusive):
    settings = StandinSettings(
        segment_count=3,
        seed=5,
        now=NOW_LOCAL,
        rate_limits_enabled=False,
        end_inclusive=end_inclusive,
    )
    with StandinServer(settings) as server:
        ids = server.account.segment_ids()
        result = run_tap(
            base_config(server.url, segment_ids=ids, start_date="2026-03-01"),
            now=NOW_UTC,
            select=("segment_series",),
        )
        rows = result.records["segment_series"]
        days = (NOW_LOCAL.date() - datetime(2026, 3, 1).date()).days + 1
        assert len(rows) == days * len(ids)
        for sid in ids:
            truth = server.account.series(sid, "daily", datetime(2026, 3, 1), NOW_LOCAL)
            assert [r["total_members"] for r in rows if r["segment_id"] == sid] == [
                s["total_members"] for _, s in truth
            ]


@pytest.mark.parametrize("count", [1, 100, 101, 250])
def test_ids_are_batched_100_per_call(count):
    """With whole_account_calls=never (tests/test_whole_account.py covers auto)."""
    settings = StandinSettings(
        segment_count=count, seed=9, now=NOW_LOCAL, rate_limits_enabled=False
    )
    with StandinServer(settings) as server:
        ids = server.account.segment_ids()
        config = base_config(
            server.url,
            start_date="2026-10-01",
            values_timeframes=["last_7_days"],
            include_inactive_segments=True,
            whole_account_calls="never",
        )
        result = run_tap(config, now=NOW_UTC)
        series = [e for e in server.report_calls() if e.path.endswith("segment-series-reports")]
        values = [e for e in server.report_calls() if e.path.endswith("segment-values-reports")]
        batches = math.ceil(count / 100)
        assert len(series) == batches  # 59 days fit one window
        assert len(values) == batches
        filters = [e.body["data"]["attributes"]["filter"] for e in series]
        if count == 1:
            assert filters == [f'equals(segment_id,"{ids[0]}")']
        assert len(result.records["segment_values"]) == count
        assert len(result.records["segments"]) == count


def test_next_run_reads_only_the_lookback_and_replaces_rows(standin):
    ids = standin.account.segment_ids()[:4]
    config = series_only(standin, segment_ids=ids, start_date="2025-06-01", lookback_days=2)
    first = run_tap(config, now=NOW_UTC, select=("segment_series",))
    first_calls = len(series_calls(standin))
    assert first_calls == math.ceil(546 / 60)
    standin.clear_log()
    second = run_tap(config, state=first.final_state, now=NOW_UTC, select=("segment_series",))
    calls = series_calls(standin)
    assert len(calls) == 1
    timeframe = calls[0].body["data"]["attributes"]["timeframe"]
    assert timeframe["start"].startswith("2026-11-26T00:00:00")
    dates = sorted({r["date_time"][:10] for r in second.records["segment_series"]})
    assert dates == ["2026-11-26", "2026-11-27", "2026-11-28"]


def test_bookmarks_are_per_segment_and_a_new_segment_is_backfilled(standin):
    ids = standin.account.segment_ids()
    config = series_only(standin, segment_ids=ids[:3], start_date="2026-01-01")
    first = run_tap(config, now=NOW_UTC, select=("segment_series",))
    standin.clear_log()
    config["segment_ids"] = ids[:4]
    second = run_tap(config, state=first.final_state, now=NOW_UTC, select=("segment_series",))
    rows = second.records["segment_series"]
    new_rows = [r for r in rows if r["segment_id"] == ids[3]]
    assert len(new_rows) == (NOW_LOCAL.date() - datetime(2026, 1, 1).date()).days + 1
    old_rows = [r for r in rows if r["segment_id"] == ids[0]]
    assert len(old_rows) == 3  # lookback 2 days + today
    # 332 days for the new one: 6 windows; the old ones ride in the newest window.
    assert len(series_calls(standin)) == 6
    partitions = second.final_state["bookmarks"]["segment_series"]["partitions"]
    contexts = {(p["context"]["interval"], p["context"]["segment_id"]) for p in partitions}
    assert contexts == {("daily", sid) for sid in ids[:4]}
    for partition in partitions:
        assert partition["replication_key"] == "date_time"
        assert partition["replication_key_value"] == "2026-11-26T00:00:00+00:00"


def test_bookmark_never_passes_the_bucket_in_progress_or_lies_in_the_future(standin):
    ids = standin.account.segment_ids()[:2]
    config = series_only(
        standin,
        segment_ids=ids,
        start_date="2026-11-01",
        lookback_days=0,
        series_intervals=["hourly", "daily", "monthly"],
    )
    result = run_tap(config, now=NOW_UTC, select=("segment_series",))
    values = {
        p["context"]["interval"]: p["replication_key_value"]
        for p in result.final_state["bookmarks"]["segment_series"]["partitions"]
    }
    assert values == {
        "hourly": "2026-11-28T10:00:00+00:00",
        "daily": "2026-11-28T00:00:00+00:00",
        "monthly": "2026-11-01T00:00:00+00:00",
    }


def test_future_bookmark_in_state_is_not_trusted_and_the_segment_is_re_read(standin):
    sid = standin.account.segment_ids()[0]
    state = {
        "bookmarks": {
            "segment_series": {
                "partitions": [
                    {
                        "context": {"interval": "daily", "segment_id": sid},
                        "replication_key": "date_time",
                        "replication_key_value": "2030-01-01T00:00:00+00:00",
                    }
                ]
            }
        }
    }
    config = series_only(standin, segment_ids=[sid], start_date="2026-01-01")
    result = run_tap(config, state=state, now=NOW_UTC, select=("segment_series",))
    assert "lies in the future" in result.logs
    dates = [r["date_time"][:10] for r in result.records["segment_series"]]
    assert dates[0] == "2026-01-01"
    assert dates[-1] == "2026-11-28"
    assert len(dates) == 332


def test_start_date_before_2023_06_01_is_floored_with_a_warning(standin):
    sid = standin.account.segment_ids()[0]
    config = series_only(standin, segment_ids=[sid], start_date="2022-01-01", end_date="2023-06-10")
    result = run_tap(config, now=NOW_UTC, select=("segment_series",))
    assert "before 2023-06-01" in result.logs
    dates = [r["date_time"][:10] for r in result.records["segment_series"]]
    assert dates[0] == "2023-06-01"
    assert dates[-1] == "2023-06-10"
    assert all(r["is_complete"] for r in result.records["segment_series"])


def test_end_date_bounds_a_backfill_and_its_buckets_are_complete(standin):
    sid = standin.account.segment_ids()[0]
    config = series_only(standin, segment_ids=[sid], start_date="2024-01-01", end_date="2024-12-31")
    result = run_tap(config, now=NOW_UTC, select=("segment_series",))
    rows = result.records["segment_series"]
    assert len(rows) == 366
    assert all(r["is_complete"] for r in rows)
    assert len(series_calls(standin)) == 7
    bookmark = result.final_state["bookmarks"]["segment_series"]["partitions"][0]
    assert bookmark["replication_key_value"] == "2025-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("interval", "expected_calls"), [("hourly", 5), ("weekly", 1), ("monthly", 1)]
)
def test_other_intervals_match_ground_truth(standin, interval, expected_calls):
    sid = standin.account.segment_ids()[1]
    start = datetime(2026, 10, 29) if interval == "hourly" else datetime(2026, 1, 1)
    config = series_only(
        standin, segment_ids=[sid], start_date=start.date().isoformat(), series_intervals=[interval]
    )
    result = run_tap(config, now=NOW_UTC, select=("segment_series",))
    if interval == "weekly":
        # Calendar weeks from Monday (the stand-in's default, as Klaviyo answered): the tap
        # reads the week that holds start_date (Thursday 2026-01-01) whole, from its Monday.
        start = datetime(2025, 12, 29)
    truth = standin.account.series(sid, interval, start, NOW_LOCAL)
    rows = result.records["segment_series"]
    assert [(r["date_time"], r["total_members"], r["members_added"]) for r in rows] == [
        (stamp, stats["total_members"], stats["members_added"]) for stamp, stats in truth
    ]
    assert len(series_calls(standin)) == expected_calls


def test_account_timezone_windows_are_local_days():
    settings = StandinSettings(
        segment_count=2,
        seed=4,
        now=datetime(2026, 3, 10, 12),
        timezone="America/New_York",
        rate_limits_enabled=False,
    )
    with StandinServer(settings) as server:
        sid = server.account.segment_ids()[0]
        now_utc = datetime(2026, 3, 10, 12, tzinfo=ZoneInfo("America/New_York"))
        config = base_config(
            server.url,
            segment_ids=[sid],
            start_date="2026-03-01",
            account_timezone="America/New_York",
            series_intervals=["daily", "hourly"],
        )
        result = run_tap(config, now=now_utc, select=("segment_series",))
        rows = result.records["segment_series"]
        daily = [r for r in rows if r["interval"] == "daily"]
        assert daily[0]["date_time"] == "2026-03-01T00:00:00-05:00"
        assert daily[-1]["date_time"] == "2026-03-10T00:00:00-04:00"  # after the DST switch
        hourly_on_dst_day = [
            r for r in rows if r["interval"] == "hourly" and r["date_time"].startswith("2026-03-08")
        ]
        assert len(hourly_on_dst_day) == 23
        body = server.report_calls()[0].body["data"]["attributes"]["timeframe"]
        assert body["start"] == "2026-03-01T00:00:00-05:00"


def test_values_rows_are_keyed_by_day_and_match_ground_truth(standin):
    ids = standin.account.segment_ids()[:3]
    config = base_config(
        standin.url, segment_ids=ids, values_timeframes=["last_30_days", "this_month"]
    )
    result = run_tap(config, now=NOW_UTC, select=("segment_values",))
    rows = result.records["segment_values"]
    assert len(rows) == 6
    for row in rows:
        assert row["as_of_date"] == "2026-11-28"
        truth = standin.account.values(row["segment_id"], row["timeframe"])
        assert {k: row[k] for k in truth} == truth
    assert (
        result.final_state["bookmarks"]["segment_values"]["replication_key_value"] == "2026-11-28"
    )


def test_segments_stream_lists_every_segment_with_metadata(standin):
    result = run_tap(base_config(standin.url), now=NOW_UTC, select=("segments",))
    rows = result.records["segments"]
    truth = standin.account.segments()
    assert sorted(r["id"] for r in rows) == sorted(s["id"] for s in truth)
    assert set(rows[0]) == {
        "id",
        "name",
        "created",
        "updated",
        "is_active",
        "is_processing",
        "is_starred",
    }
    pages = [e for e in standin.log if e.path.endswith("/api/segments")]
    assert len(pages) == math.ceil(len(truth) / 10)


def test_inactive_segments_are_left_out_unless_asked_for(standin):
    active = [s["id"] for s in standin.account.segments() if s["is_active"]]
    inactive = [s["id"] for s in standin.account.segments() if not s["is_active"]]
    assert inactive, "the stand-in's account should have inactive segments"
    config = base_config(standin.url, values_timeframes=["today"])
    result = run_tap(config, now=NOW_UTC, select=("segment_values",))
    assert {r["segment_id"] for r in result.records["segment_values"]} == set(active)
    config["include_inactive_segments"] = True
    result = run_tap(config, now=NOW_UTC, select=("segment_values",))
    assert {r["segment_id"] for r in result.records["segment_values"]} == set(active + inactive)


def test_rows_always_hold_every_statistic_whatever_statistics_says(standin):
    """A loaded value is never overwritten with null: every statistic is read (at no cost)."""
    sid = standin.account.segment_ids()[0]
    config = series_only(
        standin, segment_ids=[sid], start_date="2026-11-20", statistics=["total_members"]
    )
    rows = run_tap(config, now=NOW_UTC, select=("segment_series",)).records["segment_series"]
    assert rows
    assert all(
        None not in (r["total_members"], r["members_added"], r["members_removed"]) for r in rows
    )
    body = series_calls(standin)[0].body["data"]["attributes"]
    assert body["statistics"] == list(STATISTICS)


def test_emitted_state_after_each_window_covers_only_emitted_rows(standin):
    """Every STATE bookmark is backed by rows emitted before it (what a kill would keep)."""
    sid = standin.account.segment_ids()[0]
    config = series_only(standin, segment_ids=[sid], start_date="2025-06-01")
    result = run_tap(config, now=NOW_UTC, select=("segment_series",))
    seen: set[str] = set()
    for message in result.messages:
        if message["type"] == "RECORD":
            seen.add(message["record"]["date_time"][:10])
        elif message["type"] == "STATE":
            partitions = (
                message["value"]
                .get("bookmarks", {})
                .get("segment_series", {})
                .get("partitions", [])
            )
            for partition in partitions:
                resume = datetime.fromisoformat(partition["replication_key_value"]).date()
                assert (resume - timedelta(days=1)).isoformat() in seen


def test_an_unknown_segment_id_is_named_once_per_run(standin):
    ids = [*standin.account.segment_ids()[:2], "Zzz999"]
    config = series_only(
        standin,
        segment_ids=ids,
        start_date="2026-03-01",  # several windows, and values calls too
        values_timeframes=["last_7_days", "this_month"],
    )
    result = run_tap(config, now=NOW_UTC)
    named = [line for line in result.logs.splitlines() if "does not know" in line]
    assert len(named) == 1, named
    assert "1 segments of segment_ids (Zzz999)" in named[0]
    assert result.final_state["unknown_segments"] == ["Zzz999"]
    assert len(series_calls(standin)) > 1
