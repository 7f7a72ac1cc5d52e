"""One call per window for the whole account, checked, with batches as the fallback.

The stand-in answers a report without a filter for every segment of its account, inactive ones
included; it can also cap such an answer or refuse it. In each case every wanted segment's rows
are exact, and the calls are the fewest the answers allow.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from klaviyo_standin import StandinSettings
from tests.tap_runner import SyncResult, base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)
START = datetime(2026, 7, 1)
DAYS = (NOW_LOCAL.date() - START.date()).days + 1  # 151: three daily windows
SERIES = "/api/segment-series-reports"
VALUES = "/api/segment-values-reports"
STATS = ("total_members", "members_added", "members_removed", "net_members_changed")


@pytest.fixture(scope="module")
def standin_settings():
    """This module's account, served by the shared ``standin`` fixture (tests/conftest.py)."""
    return StandinSettings(segment_count=260, seed=13, now=NOW_LOCAL, rate_limits_enabled=False)


@pytest.fixture(autouse=True)
def _fresh(standin):
    standin.clear_log()
    standin.settings.unfiltered_cap = None
    standin.settings.reject_unfiltered = False


def wanted(server) -> list[str]:
    """The active segments: what the tap lists and reports on by default."""
    return [seg["id"] for seg in server.account.segments() if seg["is_active"]]


def calls(server, path: str, *, unfiltered: bool | None = None) -> int:
    entries = [e for e in server.log if e.path == path and e.counted]
    if unfiltered is not None:
        entries = [
            e for e in entries if ("filter" not in e.body["data"]["attributes"]) == unfiltered
        ]
    return len(entries)


def config(server, **overrides) -> dict:
    return base_config(
        server.url,
        start_date=START.date().isoformat(),
        values_timeframes=["last_30_days"],
        **overrides,
    )


def assert_rows_exact(server, result: SyncResult) -> None:
    ids = wanted(server)
    series = result.records["segment_series"]
    assert {row["segment_id"] for row in series} == set(ids), "wanted segments only, all of them"
    values = result.records["segment_values"]
    assert sorted(row["segment_id"] for row in values) == sorted(ids)
    by_segment: dict[str, list] = {}
    for row in series:
        by_segment.setdefault(row["segment_id"], []).append(row)
    for sid in (ids[0], ids[len(ids) // 2], ids[-1]):
        truth = server.account.series(sid, "daily", START, NOW_LOCAL)
        rows = sorted(by_segment[sid], key=lambda r: r["date_time"])
        assert [(r["date_time"], *(r[k] for k in STATS)) for r in rows] == [
            (stamp, *(stats[k] for k in STATS)) for stamp, stats in truth
        ]
    for row in values:
        if row["segment_id"] in (ids[0], ids[-1]):
            truth = server.account.values(row["segment_id"], "last_30_days")
            assert {k: row[k] for k in truth} == truth


def test_more_than_100_wanted_segments_cost_one_call_per_window(standin):
    assert len(wanted(standin)) > 200
    result = run_tap(config(standin), now=NOW_UTC)
    assert_rows_exact(standin, result)
    assert calls(standin, SERIES) == calls(standin, SERIES, unfiltered=True) == math.ceil(DAYS / 60)
    assert calls(standin, VALUES) == calls(standin, VALUES, unfiltered=True) == 1
    assert "not asked for" not in result.logs, "inactive segments are dropped quietly"
    # The next day: one call per interval and one per values timeframe.
    standin.clear_log()
    run_tap(config(standin), state=result.final_state, now=NOW_UTC)
    assert (calls(standin, SERIES), calls(standin, VALUES)) == (1, 1)


def test_an_answer_that_leaves_segments_out_is_completed_in_batches(standin):
    standin.settings.unfiltered_cap = 120  # the first 120 of the account's segments only
    result = run_tap(config(standin), now=NOW_UTC)
    assert_rows_exact(standin, result)
    assert "left out" in result.logs
    # One unfiltered call per stream; its missing segments are asked again in batches (and
    # only they), then batches for the rest of the run.
    answered = set(standin.account.segment_ids()[:120])
    missing = [sid for sid in wanted(standin) if sid not in answered]
    batches = math.ceil(len(wanted(standin)) / 100)
    assert calls(standin, SERIES, unfiltered=True) == 1
    assert calls(standin, VALUES, unfiltered=True) == 1
    assert calls(standin, VALUES, unfiltered=False) == math.ceil(len(missing) / 100)
    windows = math.ceil(DAYS / 60)
    assert calls(standin, SERIES, unfiltered=False) == (
        math.ceil(len(missing) / 100) + (windows - 1) * batches
    )
    # Nothing is remembered: the next run tries the whole account again, and asks in batches
    # only for the segments its answer leaves out (not again for the ones it answered).
    assert "whole_account_calls" not in result.final_state["bookmarks"]["segment_series"]
    standin.clear_log()
    run_tap(config(standin), state=result.final_state, now=NOW_UTC)
    for path in (SERIES, VALUES):
        assert calls(standin, path, unfiltered=True) == 1
        assert calls(standin, path, unfiltered=False) == math.ceil(len(missing) / 100)


def test_a_refused_unfiltered_call_falls_back_to_batches_now_and_later(standin):
    standin.settings.reject_unfiltered = True
    result = run_tap(config(standin), now=NOW_UTC)
    assert_rows_exact(standin, result)
    assert calls(standin, SERIES, unfiltered=True) == 1
    assert calls(standin, VALUES, unfiltered=True) == 1
    batches = math.ceil(len(wanted(standin)) / 100)
    assert calls(standin, SERIES, unfiltered=False) == batches * math.ceil(DAYS / 60)
    lines = [line for line in result.logs.splitlines() if "asks in filtered batches" in line]
    assert len(lines) == 2, "one INFO line per stream"
    assert "A filter on segment_id is required" in lines[0]
    bookmarks = result.final_state["bookmarks"]
    assert bookmarks["segment_series"]["whole_account_calls"] == "refused"
    assert bookmarks["segment_values"]["whole_account_calls"] == "refused"
    standin.clear_log()
    run_tap(config(standin), state=result.final_state, now=NOW_UTC)
    assert calls(standin, SERIES, unfiltered=True) + calls(standin, VALUES, unfiltered=True) == 0


def test_never_asks_in_batches_only(standin):
    result = run_tap(config(standin, whole_account_calls="never"), now=NOW_UTC)
    assert_rows_exact(standin, result)
    assert calls(standin, SERIES, unfiltered=True) + calls(standin, VALUES, unfiltered=True) == 0
    batches = math.ceil(len(wanted(standin)) / 100)
    assert calls(standin, SERIES) == batches * math.ceil(DAYS / 60)


def test_100_segments_or_fewer_keep_the_documented_filter(standin):
    ids = wanted(standin)[:100]
    result = run_tap(config(standin, segment_ids=ids), now=NOW_UTC)
    assert {row["segment_id"] for row in result.records["segment_series"]} == set(ids)
    assert calls(standin, SERIES, unfiltered=True) == 0
    assert calls(standin, SERIES) == math.ceil(DAYS / 60)
