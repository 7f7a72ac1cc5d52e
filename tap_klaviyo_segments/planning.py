"""Plan report calls: which windows and which segment batches a sync asks Klaviyo for.

Klaviyo allows 2 report calls a minute and 225 a day, so the plan decides what a sync costs.
Everything here is pure (no I/O, no clock): the streams pass in config, bookmarks and "now",
and the tests pass in anything.

All datetimes here are *naive local wall-clock times in the account timezone*: Klaviyo reads a
custom timeframe's wall-clock part in the account timezone and ignores the offset, so the grid
of buckets and windows is a wall-clock grid.

Terms:
- bucket: one interval step (an hour, a day, a 7-day week, a calendar month); bucket k of a
  grid starts at ``bucket_start(k)``; bucket 0 starts at the grid's anchor.
- window: consecutive buckets fetched by one call, at most ``BUCKETS_PER_WINDOW[interval]``.
- resume point (bookmark): the start of the first bucket a segment still needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

#: Klaviyo has no segment report data before this local day.
FIRST_DATA_DAY = datetime(2023, 6, 1)

#: Klaviyo's cap on segment ids in one ``any(segment_id, [...])`` filter.
MAX_IDS_PER_CALL = 100

INTERVALS = ("hourly", "daily", "weekly", "monthly")

#: The longest window Klaviyo accepts, in buckets. Hourly: 7 days; daily: 60 days; weekly and
#: monthly: whole buckets within 52 weeks (12 calendar months can exceed 364 days, 11 cannot).
BUCKETS_PER_WINDOW: Mapping[str, int] = {
    "hourly": 7 * 24,
    "daily": 60,
    "weekly": 52,
    "monthly": 11,
}

_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class BucketGrid:
    """The wall-clock grid of buckets for one interval, anchored at the first day we report.

    Weekly buckets are 7-day steps from the anchor (Klaviyo starts a weekly series at the
    timeframe start, so windows that start on the grid get buckets on the grid). Monthly
    buckets are calendar months; only bucket 0 may start mid-month, at the anchor.
    """

    interval: str
    anchor: datetime

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            msg = f"unknown interval {self.interval!r}; expected one of {', '.join(INTERVALS)}"
            raise ValueError(msg)

    def index(self, moment: datetime) -> int:
        """Index of the bucket that contains ``moment`` (negative before the anchor)."""
        if self.interval == "hourly":
            return (moment - self.anchor) // timedelta(hours=1)
        if self.interval == "daily":
            return (moment.date() - self.anchor.date()).days
        if self.interval == "weekly":
            return (moment.date() - self.anchor.date()).days // 7
        return _month_number(moment) - _month_number(self.anchor)

    def start(self, index: int) -> datetime:
        """Start of bucket ``index``."""
        if self.interval == "hourly":
            return self.anchor + timedelta(hours=index)
        if self.interval == "daily":
            return self.anchor + timedelta(days=index)
        if self.interval == "weekly":
            return self.anchor + timedelta(days=7 * index)
        if index == 0:
            return self.anchor
        return _month_start(_month_number(self.anchor) + index)

    def end(self, index: int) -> datetime:
        """End (exclusive) of bucket ``index``."""
        return self.start(index + 1)


def _month_number(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def _month_start(month_number: int) -> datetime:
    return datetime(month_number // 12, month_number % 12 + 1, 1)


def local_midnight(day: date) -> datetime:
    """The naive local datetime at the start of ``day``."""
    return datetime.combine(day, time())


def reporting_anchor(start_date: datetime) -> datetime:
    """First local midnight to report: ``start_date``'s day, never before Klaviyo's first day."""
    return max(local_midnight(start_date.date()), FIRST_DATA_DAY)


@dataclass(frozen=True)
class ReportCall:
    """One report request: a half-open wall-clock window and the segments it asks about.

    ``first_bucket``/``last_bucket`` are grid indexes; ``end`` is exclusive, and is either the
    start of the next window or the end of the data (now, or the configured end).
    """

    interval: str
    start: datetime
    end: datetime
    first_bucket: int
    last_bucket: int
    segment_ids: tuple[str, ...]

    @property
    def timeframe_end(self) -> datetime:
        """The ``end`` Klaviyo is sent: one second before ours, since Klaviyo's ends are inclusive.

        Sending the next window's start would make an inclusive end count that day twice.
        """
        return self.end - _ONE_SECOND


def batch_ids(segment_ids: Sequence[str], size: int = MAX_IDS_PER_CALL) -> list[tuple[str, ...]]:
    """Split ids into the fewest batches of at most ``size``, keeping their order."""
    if size < 1:
        msg = "batch size must be at least 1"
        raise ValueError(msg)
    return [tuple(segment_ids[i : i + size]) for i in range(0, len(segment_ids), size)]


def last_bucket_index(grid: BucketGrid, data_end: datetime) -> int:
    """Index of the last bucket with any data before ``data_end`` (exclusive)."""
    return grid.index(data_end - timedelta(microseconds=1))


def plan_series_calls(
    grid: BucketGrid,
    resume_points: Mapping[str, datetime | None],
    data_end: datetime,
    *,
    batch_size: int = MAX_IDS_PER_CALL,
) -> list[ReportCall]:
    """Plan the fewest series calls that bring every segment from its resume point to the end.

    Windows are cut backwards from the bucket holding ``data_end``, so the newest window is
    always full length: a daily run, whose segments all resume within the last few days,
    then needs one call per 100 segments, and segments resuming at different points share
    the windows they have in common. Calls come oldest window first, so a run stopped by the
    daily budget leaves every segment with a contiguous history.
    """
    if data_end <= grid.anchor:
        return []
    last = last_bucket_index(grid, data_end)
    resume_index = {
        segment_id: _resume_index(grid, point, last) for segment_id, point in resume_points.items()
    }
    needed = {sid: idx for sid, idx in resume_index.items() if idx <= last}
    if not needed:
        return []
    span = BUCKETS_PER_WINDOW[grid.interval]
    calls: list[ReportCall] = []
    for window_first, window_last in reversed(list(_windows(min(needed.values()), last, span))):
        members = sorted(
            (idx, sid) for sid, idx in needed.items() if idx <= window_last
        )  # grouping similar resume points lets each batch start as late as it can
        for batch in batch_ids([sid for _, sid in members], batch_size):
            first = max(window_first, min(needed[sid] for sid in batch))
            calls.append(_call(grid, first, window_last, last, data_end, batch))
    return calls


@dataclass(frozen=True)
class IntervalPlan:
    """One interval's grid, each segment's resume point, and the calls that catch them up."""

    grid: BucketGrid
    resume_points: Mapping[str, datetime | None]
    calls: list[ReportCall]


def plan_intervals(
    intervals: Sequence[str],
    start: datetime,
    segment_ids: Sequence[str],
    resume_point: Callable[[str, str], datetime | None],
    data_end: datetime,
) -> list[IntervalPlan]:
    """Plan every interval of a sync; the stream and the call-plan command both use this."""
    plans = []
    for interval in intervals:
        grid = BucketGrid(interval, reporting_anchor(start))
        resume = {sid: resume_point(interval, sid) for sid in segment_ids}
        plans.append(IntervalPlan(grid, resume, plan_series_calls(grid, resume, data_end)))
    return plans


def _resume_index(grid: BucketGrid, point: datetime | None, last: int) -> int:
    if point is None:
        return 0
    return min(max(grid.index(point), 0), last + 1)


def _windows(first: int, last: int, span: int) -> Iterator[tuple[int, int]]:
    """Yield (first, last) bucket indexes of windows, newest first, covering first..last."""
    window_last = last
    while window_last >= first:
        yield max(window_last - span + 1, first), window_last
        window_last -= span


def _call(
    grid: BucketGrid,
    first: int,
    last: int,
    data_last: int,
    data_end: datetime,
    segment_ids: tuple[str, ...],
) -> ReportCall:
    end = data_end if last == data_last else grid.start(last + 1)
    return ReportCall(
        interval=grid.interval,
        start=grid.start(first),
        end=end,
        first_bucket=first,
        last_bucket=last,
        segment_ids=segment_ids,
    )


def bucket_is_complete(grid: BucketGrid, bucket_start: datetime, data_end: datetime) -> bool:
    """Whether the bucket starting at ``bucket_start`` had ended by ``data_end``."""
    return grid.end(grid.index(bucket_start)) <= data_end


def next_resume_point(
    grid: BucketGrid,
    call: ReportCall,
    returned_bucket_starts: Iterable[datetime],
    *,
    read_at: datetime,
    lookback: timedelta,
) -> datetime | None:
    """Where a segment resumes after this call's records were all emitted.

    The resume point is the start of the oldest bucket read here that may still change:
    a bucket still in progress, or one that had closed less than ``lookback`` before it
    was read (Klaviyo revises recent buckets). A backfill window read long after it closed
    is final, so the next run does not read it again. The point never passes the buckets
    Klaviyo actually returned, so data that was not emitted is never skipped.
    Returns None when Klaviyo returned no bucket at all (nothing moves).
    """
    returned = [grid.index(start) for start in returned_bucket_starts]
    returned = [idx for idx in returned if call.first_bucket <= idx <= call.last_bucket]
    if not returned:
        return None
    newest_returned = max(returned)
    for idx in range(call.first_bucket, newest_returned + 1):
        closed_at = grid.end(idx)
        if closed_at > call.end or closed_at + lookback > read_at:
            return grid.start(idx)
    return grid.start(newest_returned + 1)


def data_end_for(now: datetime, end_date: datetime | None) -> datetime:
    """The exclusive end of the data to report: now, or the configured end if earlier."""
    if end_date is None:
        return now
    return min(now, end_date)


def minimum_series_calls(segment_count: int, bucket_count: int, interval: str) -> int:
    """The fewest calls for ``segment_count`` segments sharing ``bucket_count`` buckets."""
    if segment_count <= 0 or bucket_count <= 0:
        return 0
    windows = math.ceil(bucket_count / BUCKETS_PER_WINDOW[interval])
    return math.ceil(segment_count / MAX_IDS_PER_CALL) * windows
