"""A backfill larger than a day's budget goes on in full windows, day after day.

The issue's case: 150 segments, 150 days of daily history, ``report_calls_per_day=4`` (two of
them spent on segment_values each day). An unlimited run needs 6 series calls; spread over daily
runs, the series calls must add up to the same 6, and the union of the rows must be complete.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from klaviyo_standin import StandinSettings
from tests.tap_runner import base_config, run_tap

FIRST_NOW = datetime(2026, 11, 28, 10, 30)


@pytest.fixture(scope="module")
def standin_settings():
    """This module's account, served by the shared ``standin`` fixture (tests/conftest.py)."""
    return StandinSettings(segment_count=150, seed=9, now=FIRST_NOW, rate_limits_enabled=False)


def test_daily_runs_read_full_windows_and_spend_what_one_unlimited_run_spends(standin):
    ids = standin.account.segment_ids()
    start = (FIRST_NOW - timedelta(days=150)).date()
    config = base_config(
        standin.url,
        segment_ids=ids,
        start_date=start.isoformat(),
        values_timeframes=["last_30_days"],
        report_calls_per_day=4,
        lookback_days=0,
        whole_account_calls="never",  # the case: two batches a window
    )
    state: dict = {}
    series_calls = values_calls = 0
    rows: dict[tuple[str, str], dict] = {}
    day = 0
    for day in range(6):
        # Each run a little over 24 hours after the last, so yesterday's calls have left the
        # daily budget's rolling window.
        now = FIRST_NOW + day * timedelta(hours=24, minutes=5)
        standin.settings.now = now
        standin.clear_log()
        result = run_tap(config, state=state, now=now.replace(tzinfo=timezone.utc))
        state = result.final_state
        counts = Counter(e.path for e in standin.report_calls())
        series_calls += counts["/api/segment-series-reports"]
        values_calls += counts["/api/segment-values-reports"]
        for row in result.records.get("segment_series", []):
            rows[(row["segment_id"], row["date_time"])] = row
        if "Stopping" not in result.logs:
            break
    # Three full 60-day windows' worth for each of the two batches, like one unlimited run.
    assert series_calls == 2 * math.ceil(151 / 60)
    assert values_calls == 2 * (day + 1)
    assert day == 2, "done on the third day"
    last_now = FIRST_NOW + day * timedelta(hours=24, minutes=5)
    for sid in (ids[0], ids[99], ids[100], ids[-1]):
        truth = standin.account.series(
            sid, "daily", datetime.combine(start, datetime.min.time()), last_now
        )
        got = sorted((stamp, r) for (s, stamp), r in rows.items() if s == sid)
        assert [stamp for stamp, _ in got] == [stamp for stamp, _ in truth]
        # Rows read on the last day are that day's truth; earlier days' final buckets too.
        final = {stamp: stats for stamp, stats in truth[:-3]}
        for stamp, record in got:
            if stamp in final:
                assert {k: record[k] for k in final[stamp]} == final[stamp]
