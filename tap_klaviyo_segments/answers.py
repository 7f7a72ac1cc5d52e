"""Check every series answer against the window that was asked for, and learn Klaviyo's grid.

Klaviyo documents neither how weekly and monthly buckets align nor whether an answer always
holds every bucket, and nobody can try a real account from here. So the tap assumes as little
as it can and checks the rest in every answer, before any row of it is written:

- every bucket label carries the UTC offset that ``account_timezone`` has at that instant
  (otherwise the timeframes the tap sends are read in another zone than it thinks);
- every label is the start of a bucket on the grid the window was cut on, the labels run
  without a gap from the window's first bucket, and only the bucket still in progress may be
  left out at the end;
- labels that fit another alignment of :data:`~tap_klaviyo_segments.planning.ALIGNMENTS`
  instead say which grid Klaviyo uses (:class:`GridMismatch`): the stream then re-cuts its
  windows on that grid, and no row of the mismatched answer is written.

Pure (no I/O, no clock): the stream passes in the answer, the call, the grid and "now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

from tap_klaviyo_segments.planning import (
    ALIGNMENTS,
    BucketGrid,
    ReportCall,
    bucket_is_complete,
)
from tap_klaviyo_segments.reports import MalformedReportError, SeriesReport


class GridMismatch(Exception):  # noqa: N818 - a finding, not an error
    """The labels fit another alignment of the interval's buckets: Klaviyo uses that one."""

    def __init__(self, interval: str, alignment: str, example: str) -> None:
        super().__init__(
            f"Klaviyo's {interval} buckets follow the {alignment!r} alignment (e.g. {example})"
        )
        self.interval = interval
        self.alignment = alignment
        self.example = example


class TimezoneMismatch(Exception):  # noqa: N818 - raised as the run's one error line
    """The labels' UTC offset is not the offset of ``account_timezone``: a config error."""


@dataclass(frozen=True)
class Bucket:
    """One bucket of a checked answer that the call owns."""

    #: Position of the bucket in the answer's ``date_times`` (and statistic lists).
    position: int
    #: The label exactly as Klaviyo wrote it: the row's ``date_time``.
    label: str
    #: The label's local calendar day: the row's ``bucket_date``.
    local_date: str
    index: int
    complete: bool


@dataclass(frozen=True)
class WindowAnswer:
    """A series answer that passed every check, placed on the grid its window was cut on."""

    call: ReportCall
    grid: BucketGrid
    report: SeriesReport
    #: The buckets the call owns, in label order.
    buckets: tuple[Bucket, ...]

    @property
    def returned(self) -> list[int]:
        """Bucket indexes the answer holds (for the resume point)."""
        return [bucket.index for bucket in self.buckets]


def check_series_answer(
    report: SeriesReport,
    call: ReportCall,
    grid: BucketGrid,
    tz: ZoneInfo,
    ended_by: datetime | None = None,
) -> WindowAnswer:
    """The answer placed on ``grid``, or an exception that says why it cannot be.

    ``ended_by`` is what has ended on both clocks, the tap's and Klaviyo's (the answer's
    ``Date``): a bucket is complete only once it ended by then, and only buckets not ended by
    then may be left out at the end. By default, the window's end.

    Raises :class:`TimezoneMismatch` (a config error: stop), :class:`GridMismatch` (learn the
    grid, re-cut the windows) or :class:`MalformedReportError` (retried like a 5xx).
    """
    wall = [wall_clock(label, tz) for label in report.date_times]
    indexes = _place(grid, call.start, wall)
    if indexes is None:
        _raise_mismatch(grid, call, report.date_times, wall)
        msg = (
            f"the {call.interval} bucket labels ({_sample(report.date_times)}) are not bucket "
            f"starts of any known alignment for a timeframe starting {call.start.isoformat()}"
        )
        raise MalformedReportError(msg)
    ended = call.end if ended_by is None else min(ended_by, call.end)
    _check_coverage(grid, call, tz, indexes, report.date_times, ended)
    buckets = tuple(
        Bucket(
            position=position,
            label=report.date_times[position],
            local_date=wall[position].date().isoformat(),
            index=index,
            complete=bucket_is_complete(grid, index, ended),
        )
        for position, index in enumerate(indexes)
        if call.first_bucket <= index <= call.last_bucket
    )
    return WindowAnswer(call=call, grid=grid, report=report, buckets=buckets)


def wall_clock(label: str, tz: ZoneInfo) -> datetime:
    """A bucket label's local wall-clock time, once its offset is shown to be ``tz``'s.

    The offset must be one that ``tz`` gives that wall-clock time: where a clock change repeats
    an hour, or skips a midnight, either side's offset is right. The wall clock as written is
    what places the label on the grid, so a label is never pushed into the bucket before it.
    """
    moment = datetime.fromisoformat(label.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        msg = (
            f"bucket label {label!r} carries no UTC offset, so it cannot be checked against "
            "account_timezone"
        )
        raise MalformedReportError(msg)
    wall = moment.replace(tzinfo=None)
    seen = moment.utcoffset()
    allowed = {wall.replace(tzinfo=tz, fold=fold).utcoffset() for fold in (0, 1)}
    if seen not in allowed:
        expected = moment.astimezone(tz).utcoffset()
        msg = (
            f"Klaviyo labels its buckets with UTC offset {_offset(seen)} (e.g. {label}), "
            f"but account_timezone {tz.key!r} has offset {_offset(expected)} at that instant, "
            "so the timeframes the tap sends are read in another zone than it thinks. Set "
            "account_timezone to the Klaviyo account's timezone (an IANA name such as "
            "'Europe/Berlin'; Klaviyo shows it in the account settings, with the organization's "
            "details). No row of this answer was written and no bookmark moved."
        )
        raise TimezoneMismatch(msg)
    return wall


def _offset(value: timedelta | None) -> str:
    text = datetime(2000, 1, 1, tzinfo=timezone(value or timedelta())).strftime("%z")
    return f"{text[:3]}:{text[3:]}"


def _place(grid: BucketGrid, call_start: datetime, wall: list[datetime]) -> list[int] | None:
    """Each label's bucket index on ``grid``, or None if a label is no bucket start there.

    The first label may also be the timeframe start itself (a bucket that the window start
    cuts, labelled where the timeframe starts rather than where the bucket does).
    """
    indexes = []
    for position, moment in enumerate(wall):
        index = grid.index(moment)
        if moment not in (grid.natural_start(index), grid.start(index)) and not (
            position == 0 and moment == call_start
        ):
            return None
        indexes.append(index)
    for earlier, later in pairwise(indexes):
        # Repeats only where a wall-clock hour comes twice (the end of summer time).
        if later < earlier or (later == earlier and grid.interval != "hourly"):
            return None
    return indexes


def _raise_mismatch(
    grid: BucketGrid, call: ReportCall, labels: list[str], wall: list[datetime]
) -> None:
    """Raise :class:`GridMismatch` if the labels are another alignment's buckets."""
    for alignment in ALIGNMENTS[grid.interval]:
        if alignment == grid.alignment:
            continue
        other = BucketGrid(grid.interval, call.start, alignment, grid.floor)
        indexes = _place(other, call.start, wall)
        if indexes and indexes[0] == 0 and _without_gaps(indexes):
            example = labels[1] if len(labels) > 1 else labels[0]
            raise GridMismatch(grid.interval, alignment, example)


def _without_gaps(indexes: list[int]) -> bool:
    return all(later - earlier in (0, 1) for earlier, later in pairwise(indexes))


def _check_coverage(
    grid: BucketGrid,
    call: ReportCall,
    tz: ZoneInfo,
    indexes: list[int],
    labels: list[str],
    ended: datetime,
) -> None:
    """Every bucket of the window must be there, but for the one still in progress at the end."""
    expected = [
        index
        for index in range(call.read_from, call.last_bucket + 1)
        if _exists(grid.start(index), tz)
    ]
    got = list(dict.fromkeys(index for index in indexes if index <= call.last_bucket))
    if got == expected[: len(got)]:
        left_out = expected[len(got) :]
        if all(grid.end(index) > ended for index in left_out):
            return  # only buckets not yet over may be missing: Klaviyo may stop at its "now"
        if not got:
            msg = (
                f"date_times is empty, but the window {call.start.isoformat()} to "
                f"{call.end.isoformat()} holds {len(expected)} {call.interval} buckets"
            )
            raise MalformedReportError(msg)
        missing = [grid.start(index).isoformat() for index in left_out]
        msg = f"the answer ends early: {len(missing)} closed buckets from {missing[0]} are missing"
        raise MalformedReportError(msg)
    missing = [grid.start(index).isoformat() for index in expected if index not in got]
    where = "leading " if got and expected and got[0] > expected[0] else ""
    msg = (
        f"{len(missing)} {where}{call.interval} buckets of the window {call.start.isoformat()} "
        f"to {call.end.isoformat()} are missing (first: {missing[0] if missing else '?'}; the "
        f"answer holds {_sample(labels)})"
    )
    raise MalformedReportError(msg)


def _exists(wall: datetime, tz: ZoneInfo) -> bool:
    """Whether a wall-clock time happens in ``tz`` (not in the hour skipped when summer starts)."""
    aware = wall.replace(tzinfo=tz)
    return aware.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == wall


def _sample(labels: list[str]) -> str:
    if not labels:
        return "no labels"
    if len(labels) <= 3:
        return ", ".join(labels)
    return f"{labels[0]}, {labels[1]} ... {labels[-1]} ({len(labels)} labels)"
