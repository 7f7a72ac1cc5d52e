"""The answer checks alone (no HTTP): placement on the grid, coverage, offsets, learning."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_klaviyo_segments.answers import (
    GridMismatch,
    TimezoneMismatch,
    check_series_answer,
    wall_clock,
)
from tap_klaviyo_segments.planning import BucketGrid, ReportCall
from tap_klaviyo_segments.reports import MalformedReportError, SeriesReport

UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")


def call_for(grid: BucketGrid, first: int, last: int, end: datetime | None = None) -> ReportCall:
    return ReportCall(
        interval=grid.interval,
        start=grid.start(first),
        end=end or grid.start(last + 1),
        first_bucket=first,
        last_bucket=last,
        segment_ids=("A",),
    )


def report(labels: list[str]) -> SeriesReport:
    return SeriesReport(date_times=labels, results={"A": {"total_members": [1] * len(labels)}})


def labels_of(starts: list[datetime], tz: ZoneInfo = UTC) -> list[str]:
    return [start.replace(tzinfo=tz).isoformat() for start in starts]


def test_a_whole_answer_is_placed_bucket_by_bucket():
    grid = BucketGrid("daily", datetime(2026, 1, 1))
    call = call_for(grid, 10, 19)
    answer = check_series_answer(
        report(labels_of([grid.start(i) for i in range(10, 20)])), call, grid, UTC
    )
    assert [b.index for b in answer.buckets] == list(range(10, 20))
    assert all(b.complete for b in answer.buckets)
    assert answer.buckets[0].local_date == "2026-01-11"


def test_only_the_bucket_in_progress_may_be_left_out():
    grid = BucketGrid("daily", datetime(2026, 1, 1))
    now = datetime(2026, 1, 20, 12)
    call = call_for(grid, 10, 19, end=now)
    starts = [grid.start(i) for i in range(10, 19)]  # the 20th, in progress, is missing
    answer = check_series_answer(report(labels_of(starts)), call, grid, UTC)
    assert answer.returned == list(range(10, 19))
    with pytest.raises(MalformedReportError, match="ends early"):
        check_series_answer(report(labels_of(starts[:-1])), call, grid, UTC)


@pytest.mark.parametrize(
    ("drop", "words"),
    [(slice(1, None), "1 leading daily buckets"), (slice(0, 0), "date_times is empty")],
)
def test_leading_or_all_buckets_missing_is_malformed(drop, words):
    grid = BucketGrid("daily", datetime(2026, 1, 1))
    call = call_for(grid, 0, 9)
    starts = [grid.start(i) for i in range(10)][drop]
    with pytest.raises(MalformedReportError, match=words):
        check_series_answer(report(labels_of(starts)), call, grid, UTC)


def test_a_gap_in_the_middle_is_malformed():
    grid = BucketGrid("daily", datetime(2026, 1, 1))
    starts = [grid.start(i) for i in range(10) if i != 4]
    with pytest.raises(MalformedReportError, match="missing"):
        check_series_answer(report(labels_of(starts)), call_for(grid, 0, 9), grid, UTC)


def test_labels_of_other_weeks_teach_their_grid():
    wednesday = datetime(2026, 9, 2)
    grid = BucketGrid("weekly", wednesday)  # calendar weeks from Monday, the tap's first guess
    assert grid.alignment == "monday"
    call = call_for(grid, 0, 5)
    assert call.start == datetime(2026, 8, 31)
    mondays = [datetime(2026, 8, 31) + timedelta(days=7 * k) for k in range(6)]
    answer = check_series_answer(report(labels_of(mondays)), call, grid, UTC)
    assert answer.returned == list(range(6))
    # Sunday weeks: the first label is the Sunday before the timeframe start.
    sundays = [datetime(2026, 8, 30) + timedelta(days=7 * k) for k in range(6)]
    with pytest.raises(GridMismatch) as learned:
        check_series_answer(report(labels_of(sundays)), call, grid, UTC)
    assert learned.value.alignment == "sunday"
    # Steps from the timeframe start show only where a window starts off Monday: at the floor.
    floor = BucketGrid("weekly", datetime(2023, 6, 1))  # a Thursday, bucket 0 cut short
    thursdays = [datetime(2023, 6, 1) + timedelta(days=7 * k) for k in range(4)]
    with pytest.raises(GridMismatch) as learned:
        check_series_answer(report(labels_of(thursdays)), call_for(floor, 0, 3), floor, UTC)
    assert learned.value.alignment == "start"


def test_labels_on_no_known_grid_are_malformed():
    grid = BucketGrid("weekly", datetime(2026, 9, 2))
    odd = [datetime(2026, 9, 2), datetime(2026, 9, 5), datetime(2026, 9, 12)]
    with pytest.raises(MalformedReportError, match="not bucket starts"):
        check_series_answer(report(labels_of(odd)), call_for(grid, 0, 2), grid, UTC)


def test_a_first_bucket_labelled_at_the_timeframe_start_or_at_its_own_start_is_placed():
    # Calendar weeks from Monday; the data floor (Thursday 2023-06-01) cuts bucket 0.
    grid = BucketGrid("weekly", datetime(2023, 6, 1), "monday")
    assert grid.truncated(0)
    for first_label in (datetime(2023, 6, 1), datetime(2023, 5, 29)):
        starts = [first_label, datetime(2023, 6, 5), datetime(2023, 6, 12)]
        answer = check_series_answer(report(labels_of(starts)), call_for(grid, 0, 2), grid, UTC)
        assert [b.complete for b in answer.buckets] == [False, True, True]


def test_hourly_labels_across_both_dst_changes_are_whole():
    for day in (datetime(2026, 3, 8), datetime(2026, 11, 1)):
        grid = BucketGrid("hourly", day)
        start = day.replace(tzinfo=NEW_YORK).astimezone(UTC)  # step in real hours
        labels = [(start + timedelta(hours=k)).astimezone(NEW_YORK).isoformat() for k in range(25)]
        hours = 24 + (day.month == 11) - (day.month == 3)
        call = call_for(grid, 0, 23)
        answer = check_series_answer(report(labels[:hours]), call, grid, NEW_YORK)
        assert len(answer.buckets) == hours


def test_an_offset_of_another_zone_is_refused_with_what_to_set():
    with pytest.raises(TimezoneMismatch) as raised:
        wall_clock("2026-11-02T00:00:00+01:00", UTC)
    message = str(raised.value)
    assert "+01:00 (e.g. 2026-11-02T00:00:00+01:00)" in message
    assert "'UTC' has offset +00:00" in message
    assert "Set account_timezone" in message
    with pytest.raises(MalformedReportError, match="no UTC offset"):
        wall_clock("2026-11-02T00:00:00", UTC)


@settings(max_examples=200, deadline=None)
@given(
    interval=st.sampled_from(["daily", "weekly", "monthly"]),
    alignment_pick=st.integers(0, 2),
    anchor_day=st.integers(0, 900),
    first=st.integers(0, 30),
    length=st.integers(1, 10),
)
def test_property_answers_on_the_grid_pass_and_keep_every_bucket(
    interval, alignment_pick, anchor_day, first, length
):
    from tap_klaviyo_segments.planning import ALIGNMENTS

    alignments = ALIGNMENTS[interval]
    grid = BucketGrid(
        interval,
        datetime(2023, 6, 1) + timedelta(days=anchor_day),
        alignments[alignment_pick % len(alignments)],
    )
    call = call_for(grid, first, first + length - 1)
    starts = [grid.start(i) for i in range(first, first + length)]
    answer = check_series_answer(report(labels_of(starts)), call, grid, UTC)
    assert answer.returned == list(range(first, first + length))
    assert all(b.complete != grid.truncated(b.index) for b in answer.buckets)
