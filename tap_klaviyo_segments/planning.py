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

from calendar import monthrange
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


#: The ways Klaviyo might align the buckets of each interval. Klaviyo documents none of them, so
#: the tap starts from the first and checks every answer against the grid it uses; labels that fit
#: another alignment teach the tap that one (see :mod:`tap_klaviyo_segments.answers`). Weekly
#: assumes ``monday`` first: a real weekly answer (recorded 2026-09-04) was labelled with calendar
#: weeks from Monday, so the common case costs no call to learn the grid.
#: - ``start``: steps from the timeframe start (7 days; a calendar month, the day clamped to the
#:   month's length);
#: - ``monday`` / ``sunday``: calendar weeks starting on that day;
#: - ``calendar``: whole hours, local days, calendar months.
ALIGNMENTS: Mapping[str, tuple[str, ...]] = {
    "hourly": ("calendar",),
    "daily": ("calendar",),
    "weekly": ("monday", "start", "sunday"),
    "monthly": ("calendar", "start"),
}

#: Days the first day of a calendar week lies after Monday (``date.weekday()`` numbering).
_WEEK_FIRST_DAY = {"monday": 0, "sunday": 6}


@dataclass(frozen=True)
class BucketGrid:
    """The wall-clock grid of buckets for one interval and one alignment.

    Bucket 0 is the bucket that holds ``anchor`` (the first day to report). On a calendar grid it
    may begin before ``anchor``: the tap reads it whole, so its numbers are the whole bucket's.
    Only where that would mean asking before Klaviyo's first data day is bucket 0 cut short
    (:meth:`truncated`), and then never reported as complete.
    """

    interval: str
    anchor: datetime
    alignment: str = ""
    #: Klaviyo's first day of data: buckets never start before it (see :meth:`truncated`).
    floor: datetime = FIRST_DATA_DAY

    def __post_init__(self) -> None:
        if self.interval not in INTERVALS:
            msg = f"unknown interval {self.interval!r}; expected one of {', '.join(INTERVALS)}"
            raise ValueError(msg)
        if not self.alignment:
            object.__setattr__(self, "alignment", ALIGNMENTS[self.interval][0])
        if self.alignment not in ALIGNMENTS[self.interval]:
            msg = (
                f"unknown {self.interval} alignment {self.alignment!r}; expected one of "
                f"{', '.join(ALIGNMENTS[self.interval])}"
            )
            raise ValueError(msg)

    @property
    def _origin(self) -> datetime:
        """Where bucket 0 would start with no data floor."""
        if self.interval == "weekly" and self.alignment in _WEEK_FIRST_DAY:
            back = (self.anchor.weekday() - _WEEK_FIRST_DAY[self.alignment]) % 7
            return local_midnight(self.anchor.date() - timedelta(days=back))
        if self.interval == "monthly" and self.alignment == "calendar":
            return local_midnight(self.anchor.date().replace(day=1))
        return self.anchor

    def natural_start(self, index: int) -> datetime:
        """Where bucket ``index`` starts on the grid, before any data floor."""
        origin = self._origin
        if self.interval == "hourly":
            return origin + timedelta(hours=index)
        if self.interval == "daily":
            return origin + timedelta(days=index)
        if self.interval == "weekly":
            return origin + timedelta(days=7 * index)
        if self.alignment == "calendar":
            return _month_start(_month_number(origin) + index)
        return add_months_clamped(origin, index)

    def start(self, index: int) -> datetime:
        """Start of bucket ``index`` as the tap reads it (never before Klaviyo's first day)."""
        return max(self.natural_start(index), self.floor)

    def truncated(self, index: int) -> bool:
        """Whether bucket ``index`` begins before Klaviyo's data, so it is never read whole."""
        return self.start(index) != self.natural_start(index)

    def index(self, moment: datetime) -> int:
        """Index of the bucket that contains ``moment`` (negative before bucket 0)."""
        origin = self._origin
        if self.interval == "hourly":
            return (moment - origin) // timedelta(hours=1)
        if self.interval == "daily":
            return (moment.date() - origin.date()).days
        if self.interval == "weekly":
            return (moment.date() - origin.date()).days // 7
        months = _month_number(moment) - _month_number(origin)
        if self.alignment == "start" and moment < self.natural_start(months):
            months -= 1
        return months

    def end(self, index: int) -> datetime:
        """End (exclusive) of bucket ``index``."""
        return self.natural_start(index + 1)

    @property
    def span(self) -> int:
        """The most buckets one call may hold (see :meth:`call_start`)."""
        if self._clamps_days:
            return BUCKETS_PER_WINDOW[self.interval] - 1
        return BUCKETS_PER_WINDOW[self.interval]

    def call_start(self, index: int) -> int:
        """The bucket a call that needs bucket ``index`` first must start at.

        Monthly steps from the timeframe start restart at every call: from the 28th of
        February they would go on to the 28th of March, not the 31st. So on a grid anchored on
        the 29th to 31st, calls start only at buckets on the anchor's own day (at most one bucket
        earlier, which :attr:`span` leaves room for).
        """
        if self._clamps_days:
            while index > 0 and self.natural_start(index).day != self.anchor.day:
                index -= 1
        return index

    @property
    def _clamps_days(self) -> bool:
        return self.interval == "monthly" and self.alignment == "start" and self.anchor.day > 28


def add_months_clamped(moment: datetime, months: int) -> datetime:
    """``moment`` ``months`` calendar months later, its day clamped to that month's length."""
    number = _month_number(moment) + months
    year, month = number // 12, number % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def _month_number(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def _month_start(month_number: int) -> datetime:
    return datetime(month_number // 12, month_number % 12 + 1, 1)


def local_midnight(day: date) -> datetime:
    """The naive local datetime at the start of ``day``."""
    return datetime.combine(day, time())


def reporting_anchor(start_date: datetime, floor: datetime = FIRST_DATA_DAY) -> datetime:
    """First local midnight to report: ``start_date``'s day, never before Klaviyo's first day."""
    return max(local_midnight(start_date.date()), floor)


@dataclass(frozen=True)
class ReportCall:
    """One report request: a half-open wall-clock window and the segments it asks about.

    ``first_bucket``/``last_bucket`` are the grid indexes the call owns (its rows); ``end`` is
    exclusive, and is either the start of the next window or the end of the data. ``lead_in``
    buckets before ``first_bucket`` are read but owned by the previous call (see
    :meth:`BucketGrid.call_start`), so ``start`` is the start of bucket ``read_from``.
    """

    interval: str
    start: datetime
    end: datetime
    first_bucket: int
    last_bucket: int
    segment_ids: tuple[str, ...]
    lead_in: int = 0
    #: Sent without a segment filter: Klaviyo answers for every segment of the account, and
    #: ``segment_ids`` are the wanted ones among them.
    whole_account: bool = False

    @property
    def read_from(self) -> int:
        """The first bucket Klaviyo answers for."""
        return self.first_bucket - self.lead_in

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


def call_batches(
    segment_ids: Sequence[str], *, whole_account: bool, size: int = MAX_IDS_PER_CALL
) -> list[tuple[tuple[str, ...], bool]]:
    """The calls that ask about ``segment_ids``: (ids, sent without a filter) for each.

    With ``whole_account``, ids that would need more than one batch are asked in one call
    without a filter instead (Klaviyo then answers for the whole account).
    """
    if whole_account and len(segment_ids) > size:
        return [(tuple(segment_ids), True)]
    return [(batch, False) for batch in batch_ids(segment_ids, size)]


@dataclass(frozen=True)
class ValuesCall:
    """One segment_values call: a timeframe key and the segments it asks about."""

    timeframe: str
    segment_ids: tuple[str, ...]
    #: Sent without a segment filter (see :attr:`ReportCall.whole_account`).
    whole_account: bool = False


def plan_values_calls(
    timeframes: Sequence[str], segment_ids: Sequence[str], *, whole_account: bool
) -> list[ValuesCall]:
    """The segment_values calls of a sync: per timeframe key, its batches of segments."""
    return [
        ValuesCall(timeframe, batch, unfiltered)
        for timeframe in timeframes
        for batch, unfiltered in call_batches(segment_ids, whole_account=whole_account)
    ]


def as_batches(calls: Sequence[ValuesCall]) -> list[ValuesCall]:
    """The same calls with every whole-account one split into filtered batches."""
    return [
        split
        for call in calls
        for split in (
            [ValuesCall(call.timeframe, batch) for batch in batch_ids(call.segment_ids)]
            if call.whole_account
            else [call]
        )
    ]


def plan_series_calls(
    grid: BucketGrid,
    resume_points: Mapping[str, datetime | None],
    data_end: datetime,
    *,
    batch_size: int = MAX_IDS_PER_CALL,
    whole_account: bool = False,
) -> list[ReportCall]:
    """Plan the fewest series calls that bring every segment from its resume point to the end.

    Windows are cut forward from the oldest resume point (see :func:`_windows`): a daily run,
    whose segments all resume within the last few days, needs one call per 100 segments, and
    segments resuming at different points share the windows they have in common. Calls come
    oldest window first, so a run stopped by the daily budget leaves every segment with a
    contiguous history, and the next run goes on from it in full windows.
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
    calls: list[ReportCall] = []
    for window_first, window_last in _windows(min(needed.values()), last, grid.span):
        members = sorted(
            (idx, sid) for sid, idx in needed.items() if idx <= window_last
        )  # grouping similar resume points lets each batch start as late as it can
        ordered = [sid for _, sid in members]
        for batch, unfiltered in call_batches(
            ordered, whole_account=whole_account, size=batch_size
        ):
            first = max(window_first, min(needed[sid] for sid in batch))
            calls.append(_call(grid, first, window_last, last, data_end, batch, unfiltered))
    return calls


@dataclass(frozen=True)
class IntervalPlan:
    """One interval's grid, each segment's resume point, the data end, and the calls to make."""

    grid: BucketGrid
    resume_points: Mapping[str, datetime | None]
    data_end: datetime
    calls: list[ReportCall]


def plan_interval(
    grid: BucketGrid,
    resume_points: Mapping[str, datetime | None],
    data_end: datetime,
    *,
    whole_account: bool = False,
) -> IntervalPlan:
    """The plan of one interval: what the stream fetches and the call plan prints."""
    calls = plan_series_calls(grid, resume_points, data_end, whole_account=whole_account)
    return IntervalPlan(grid, resume_points, data_end, calls)


def _resume_index(grid: BucketGrid, point: datetime | None, last: int) -> int:
    if point is None:
        return 0
    return min(max(grid.index(point), 0), last + 1)


def _windows(first: int, last: int, span: int) -> Iterator[tuple[int, int]]:
    """Yield (first, last) bucket indexes of windows, oldest first, covering first..last.

    Windows are cut forward from ``first`` (the oldest resume point), so a backfill that a
    spent budget stopped goes on in full windows from where it stopped, whatever day it resumes
    on; only the newest window may be short. A daily run, whose segments all resume within the
    last few days, has a single window.
    """
    window_first = first
    while window_first <= last:
        window_last = min(window_first + span - 1, last)
        yield window_first, window_last
        window_first = window_last + 1


def _call(
    grid: BucketGrid,
    first: int,
    last: int,
    data_last: int,
    data_end: datetime,
    segment_ids: tuple[str, ...],
    whole_account: bool,
) -> ReportCall:
    end = data_end if last == data_last else grid.start(last + 1)
    read_from = grid.call_start(first)
    return ReportCall(
        interval=grid.interval,
        start=grid.start(read_from),
        end=end,
        first_bucket=first,
        last_bucket=last,
        segment_ids=segment_ids,
        lead_in=first - read_from,
        whole_account=whole_account,
    )


def bucket_is_complete(grid: BucketGrid, index: int, data_end: datetime) -> bool:
    """Whether bucket ``index`` was read whole and had ended by ``data_end``."""
    return grid.end(index) <= data_end and not grid.truncated(index)


def next_resume_point(
    grid: BucketGrid,
    call: ReportCall,
    returned_buckets: Iterable[int],
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
    returned = [idx for idx in returned_buckets if call.first_bucket <= idx <= call.last_bucket]
    if not returned:
        return None
    newest_returned = max(returned)
    for idx in range(call.first_bucket, newest_returned + 1):
        closed_at = grid.end(idx)
        if closed_at > call.end or closed_at + lookback > read_at:
            return grid.start(idx)
    return grid.start(newest_returned + 1)


def data_end_for(grid: BucketGrid, now: datetime, end_date: datetime | None) -> datetime:
    """The exclusive end of the data to report: now, or the configured end if earlier.

    An ``end_date`` inside a bucket is moved to that bucket's end (never past now), so the
    bucket that holds it is read whole rather than cut short for good.
    """
    if end_date is None or end_date >= now:
        return now
    if end_date <= grid.anchor:
        return end_date
    return min(now, grid.end(last_bucket_index(grid, end_date)))
