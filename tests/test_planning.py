"""The call planner alone: windows, batches, resume points (no HTTP, no clock)."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_klaviyo_segments.planning import (
    BUCKETS_PER_WINDOW,
    FIRST_DATA_DAY,
    INTERVALS,
    BucketGrid,
    ReportCall,
    batch_ids,
    bucket_is_complete,
    last_bucket_index,
    next_resume_point,
    plan_series_calls,
    reporting_anchor,
)
from tests.plan_math import minimum_series_calls

ANCHOR = datetime(2023, 6, 1)
NOW = datetime(2026, 11, 28, 10, 30)


def ids(count: int) -> list[str]:
    return [f"S{i:05d}" for i in range(count)]


def covered(calls: list[ReportCall], segment_id: str) -> list[int]:
    """Bucket indexes fetched for one segment, in call order."""
    buckets: list[int] = []
    for call in calls:
        if segment_id in call.segment_ids:
            buckets.extend(range(call.first_bucket, call.last_bucket + 1))
    return buckets


@pytest.mark.parametrize("count", [1, 100, 101, 250])
def test_batches_hold_at_most_100_ids_in_the_fewest_calls(count):
    batches = batch_ids(ids(count))
    assert len(batches) == math.ceil(count / 100)
    assert all(len(batch) <= 100 for batch in batches)
    assert [sid for batch in batches for sid in batch] == ids(count)


@pytest.mark.parametrize(
    ("interval", "days", "segments"),
    [
        ("daily", 1276, 1),
        ("daily", 1276, 100),
        ("daily", 1276, 101),
        ("daily", 1276, 250),
        ("daily", 60, 1),
        ("daily", 61, 1),
        ("hourly", 30, 5),
        ("weekly", 1276, 3),
        ("monthly", 1276, 3),
    ],
)
def test_full_backfill_costs_the_minimum(interval, days, segments):
    grid = BucketGrid(interval, ANCHOR)
    data_end = ANCHOR + timedelta(days=days)
    calls = plan_series_calls(grid, dict.fromkeys(ids(segments)), data_end)
    buckets = last_bucket_index(grid, data_end) + 1
    assert len(calls) == minimum_series_calls(segments, buckets, interval)
    for sid in ids(segments):
        assert covered(calls, sid) == list(range(buckets))


def test_daily_backfill_matches_the_issue_arithmetic():
    """ceil(S/100) x ceil(D/60) for S=250 segments over D=1,276 days."""
    grid = BucketGrid("daily", ANCHOR)
    calls = plan_series_calls(grid, dict.fromkeys(ids(250)), ANCHOR + timedelta(days=1276))
    assert len(calls) == 3 * 22


@pytest.mark.parametrize(
    ("interval", "limit"), [("hourly", timedelta(days=7)), ("daily", timedelta(days=60))]
)
def test_windows_stay_within_klaviyos_length_limit(interval, limit):
    grid = BucketGrid(interval, ANCHOR)
    for call in plan_series_calls(grid, dict.fromkeys(ids(3)), NOW):
        assert call.timeframe_end - call.start < limit
        assert call.last_bucket - call.first_bucket + 1 <= BUCKETS_PER_WINDOW[interval]


def test_monthly_windows_fit_in_52_weeks_and_weekly_in_52_weeks():
    for interval in ("weekly", "monthly"):
        grid = BucketGrid(interval, ANCHOR)
        for call in plan_series_calls(grid, dict.fromkeys(ids(1)), NOW):
            assert call.timeframe_end - call.start < timedelta(weeks=52)


def test_windows_start_at_local_midnight_and_end_a_second_before_the_next():
    grid = BucketGrid("daily", ANCHOR)
    calls = plan_series_calls(grid, dict.fromkeys(ids(1)), NOW)
    for earlier, later in itertools.pairwise(calls):
        assert later.start == earlier.end
        assert earlier.timeframe_end == later.start - timedelta(seconds=1)
        assert later.start.time() == datetime.min.time()
    assert calls[-1].end == NOW


def test_next_day_run_costs_one_call_per_100_segments():
    grid = BucketGrid("daily", ANCHOR)
    resume = dict.fromkeys(ids(250), NOW.replace(hour=0, minute=0) - timedelta(days=2))
    calls = plan_series_calls(grid, resume, NOW + timedelta(days=1))
    assert len(calls) == 3
    assert {call.start for call in calls} == {datetime(2026, 11, 26)}


def test_a_segment_added_later_is_backfilled_and_shares_the_newest_window():
    grid = BucketGrid("daily", ANCHOR)
    resume = dict.fromkeys(ids(5), datetime(2026, 11, 26))
    resume["NEW"] = None
    calls = plan_series_calls(grid, resume, NOW)
    assert covered(calls, "NEW") == list(range(last_bucket_index(grid, NOW) + 1))
    newest = [call for call in calls if call.last_bucket == last_bucket_index(grid, NOW)]
    assert len(newest) == 1
    assert set(newest[0].segment_ids) == {"NEW", *ids(5)}
    # The old segments ride along only in the newest window: no call is added for them.
    assert len(calls) == math.ceil((last_bucket_index(grid, NOW) + 1) / 60)


def test_resume_points_in_the_past_of_start_are_raised_to_the_anchor():
    grid = BucketGrid("daily", ANCHOR)
    calls = plan_series_calls(grid, {"A": datetime(2020, 1, 1)}, ANCHOR + timedelta(days=10))
    assert calls[0].start == ANCHOR


def test_a_segment_already_complete_to_the_end_needs_nothing():
    grid = BucketGrid("daily", ANCHOR)
    end = datetime(2024, 1, 1)
    assert plan_series_calls(grid, {"A": end}, end) == []


def test_reporting_anchor_floors_start_to_2023_06_01():
    assert reporting_anchor(datetime(2020, 5, 5, 13)) == FIRST_DATA_DAY
    assert reporting_anchor(datetime(2024, 5, 5, 13)) == datetime(2024, 5, 5)


def test_monthly_grid_is_calendar_months_from_the_month_that_holds_a_mid_month_anchor():
    # The bucket that holds start_date is read whole (issue 9), so it starts at the 1st.
    grid = BucketGrid("monthly", datetime(2024, 3, 15))
    assert grid.start(0) == datetime(2024, 3, 1)
    assert not grid.truncated(0)
    assert grid.start(1) == datetime(2024, 4, 1)
    assert grid.index(datetime(2025, 1, 20)) == 10
    assert grid.end(0) == datetime(2024, 4, 1)


def test_weekly_grid_is_calendar_weeks_from_monday_first():
    # Klaviyo's recorded weekly answer was cut in calendar weeks from Monday: assumed first.
    grid = BucketGrid("weekly", ANCHOR)  # Thursday 2023-06-01, Klaviyo's first data day
    assert grid.alignment == "monday"
    assert grid.natural_start(0) == datetime(2023, 5, 29)
    assert grid.start(0) == ANCHOR
    assert grid.truncated(0)
    assert grid.start(1) == datetime(2023, 6, 5)
    assert grid.index(datetime(2023, 6, 11, 23)) == 1


def test_weekly_grid_steps_seven_days_from_the_anchor():
    grid = BucketGrid("weekly", ANCHOR, "start")
    assert grid.start(2) == ANCHOR + timedelta(days=14)
    assert grid.index(ANCHOR + timedelta(days=13, hours=23)) == 1


def test_in_progress_bucket_is_not_complete():
    grid = BucketGrid("daily", ANCHOR)
    assert not bucket_is_complete(grid, grid.index(datetime(2026, 11, 28)), NOW)
    assert bucket_is_complete(grid, grid.index(datetime(2026, 11, 27)), NOW)


def _call(grid: BucketGrid, start: datetime, end: datetime) -> ReportCall:
    return ReportCall(
        interval=grid.interval,
        start=start,
        end=end,
        first_bucket=grid.index(start),
        last_bucket=last_bucket_index(grid, end),
        segment_ids=("A",),
    )


def test_resume_point_keeps_lookback_days_and_the_in_progress_bucket():
    grid = BucketGrid("daily", ANCHOR)
    call = _call(grid, datetime(2026, 11, 1), NOW)
    starts = list(range(call.first_bucket, call.last_bucket + 1))
    two_days = next_resume_point(grid, call, starts, read_at=NOW, lookback=timedelta(days=2))
    assert two_days == datetime(2026, 11, 26)
    none = next_resume_point(grid, call, starts, read_at=NOW, lookback=timedelta(0))
    assert none == datetime(2026, 11, 28)  # never past the bucket in progress


def test_resume_point_after_an_old_window_skips_its_final_buckets():
    grid = BucketGrid("daily", ANCHOR)
    call = _call(grid, datetime(2024, 1, 1), datetime(2024, 3, 1))
    starts = list(range(call.first_bucket, call.last_bucket + 1))
    resume = next_resume_point(grid, call, starts, read_at=NOW, lookback=timedelta(days=2))
    assert resume == datetime(2024, 3, 1)


def test_resume_point_never_passes_buckets_klaviyo_did_not_return():
    grid = BucketGrid("daily", ANCHOR)
    call = _call(grid, datetime(2024, 1, 1), datetime(2024, 3, 1))
    starts = [grid.index(datetime(2024, 1, 1) + timedelta(days=i)) for i in range(10)]
    resume = next_resume_point(grid, call, starts, read_at=NOW, lookback=timedelta(days=2))
    assert resume == datetime(2024, 1, 11)
    assert next_resume_point(grid, call, [], read_at=NOW, lookback=timedelta(days=2)) is None


# Property-based: any start, end, interval and segment mix.

moments = st.datetimes(min_value=datetime(2023, 6, 1), max_value=datetime(2027, 1, 1))


@settings(max_examples=200, deadline=None)
@given(
    interval=st.sampled_from(INTERVALS),
    anchor_day=st.integers(min_value=0, max_value=600),
    span_hours=st.integers(min_value=1, max_value=24 * 900),
    segments=st.integers(min_value=1, max_value=260),
)
def test_property_uniform_segments_cover_every_bucket_once_at_minimum_cost(
    interval, anchor_day, span_hours, segments
):
    if interval == "hourly":
        span_hours = min(span_hours, 24 * 40)
    anchor = ANCHOR + timedelta(days=anchor_day)
    grid = BucketGrid(interval, anchor)
    data_end = anchor + timedelta(hours=span_hours)
    calls = plan_series_calls(grid, dict.fromkeys(ids(segments)), data_end)
    buckets = last_bucket_index(grid, data_end) + 1
    assert len(calls) == minimum_series_calls(segments, buckets, interval)
    for sid in (ids(segments)[0], ids(segments)[-1]):
        assert covered(calls, sid) == list(range(buckets))
    for call in calls:
        assert len(call.segment_ids) <= 100
        assert call.last_bucket - call.first_bucket + 1 <= BUCKETS_PER_WINDOW[interval]
        assert call.start == grid.start(call.first_bucket)
        assert call.end <= data_end


@settings(max_examples=200, deadline=None)
@given(
    interval=st.sampled_from(("daily", "weekly", "monthly")),
    resume_days=st.lists(st.one_of(st.none(), st.integers(0, 1300)), min_size=1, max_size=150),
)
def test_property_mixed_resume_points_each_get_exactly_their_buckets(interval, resume_days):
    grid = BucketGrid(interval, ANCHOR)
    data_end = NOW
    resume = {
        f"S{i}": None if day is None else ANCHOR + timedelta(days=day)
        for i, day in enumerate(resume_days)
    }
    calls = plan_series_calls(grid, resume, data_end)
    last = last_bucket_index(grid, data_end)
    for sid, point in resume.items():
        first = 0 if point is None else min(grid.index(point), last + 1)
        fetched = covered(calls, sid)
        assert set(range(first, last + 1)) <= set(fetched)
        assert len(fetched) == len(set(fetched)), "a bucket fetched twice for one segment"
    # Per window (calls sharing a last bucket), exactly ceil(members / 100) calls.
    by_window: dict[int, list[ReportCall]] = {}
    for call in calls:
        by_window.setdefault(call.last_bucket, []).append(call)
    for window_calls in by_window.values():
        members = {sid for call in window_calls for sid in call.segment_ids}
        assert len(window_calls) == math.ceil(len(members) / 100)
