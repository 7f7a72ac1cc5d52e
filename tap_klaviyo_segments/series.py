"""The segment_series stream: statistics per bucket, bookmarks per segment and interval.

Where each thing happens: :meth:`SegmentSeriesStream.plan` cuts the windows (planning.py does
the cutting), :meth:`~SegmentSeriesStream.request_body` builds a request, ``read_answer`` checks
an answer (answers.py), :meth:`~SegmentSeriesStream.emit` writes its rows and moves the
bookmarks (``_advance``). The loop of calls is the report streams' one (client.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_klaviyo_segments.answers import (
    GridMismatch,
    TimezoneMismatch,
    WindowAnswer,
    check_series_answer,
)
from tap_klaviyo_segments.errors import AnswerMismatchError, DataFloorError
from tap_klaviyo_segments.planning import (
    FIRST_DATA_DAY,
    INTERVALS,
    BucketGrid,
    IntervalPlan,
    ReportCall,
    data_end_for,
    local_midnight,
    next_resume_point,
    plan_interval,
    reporting_anchor,
)
from tap_klaviyo_segments.report_stream import KlaviyoReportStream, Lesson
from tap_klaviyo_segments.reports import parse_series_report, report_body
from tap_klaviyo_segments.sdk_seams import BookmarksByAnswer
from tap_klaviyo_segments.settings import STATISTICS
from tap_klaviyo_segments.state import REPLICATION_KEY
from tap_klaviyo_segments.streams import segments_in, statistic_properties


class SegmentSeriesStream(BookmarksByAnswer, KlaviyoReportStream[ReportCall, WindowAnswer]):
    """Segment statistics per bucket, per interval; bookmarks per segment and interval."""

    name = "segment_series"
    path = "/api/segment-series-reports"
    primary_keys = ("segment_id", "interval", "date_time")
    replication_key = REPLICATION_KEY
    #: Rows are built with the schema's own JSON types (text, ints, booleans), so the SDK's
    #: per-record type conforming would change nothing: it was the biggest CPU cost per record
    #: (BENCHMARKS.md).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    schema = th.PropertiesList(
        th.Property("segment_id", th.StringType, required=True),
        th.Property("interval", th.StringType, required=True, allowed_values=list(INTERVALS)),
        th.Property(
            "date_time",
            th.DateTimeType,
            required=True,
            description="Bucket start, as Klaviyo labels it (with the account's UTC offset).",
        ),
        th.Property(
            "bucket_date",
            th.DateType,
            description="The bucket start's calendar day in the account timezone "
            "(group by this: targets store date_time converted to UTC).",
        ),
        *statistic_properties(),
        th.Property(
            "is_complete",
            th.BooleanType,
            description="True once the bucket has ended (on the tap's and Klaviyo's clocks) and "
            "was read whole.",
        ),
    ).to_dict()

    def __init__(self, tap: Tap, run: Any) -> None:
        super().__init__(tap, run)
        #: (interval, segment) -> where this run's reading of it ended (bookmarks may lag).
        self.read_through: dict[tuple[str, str], datetime] = {}
        #: The latest plan of each interval (its grid and resume points place the answers).
        self.plans: dict[str, IntervalPlan] = {}
        #: Intervals whose grid this run learned (a second mismatch is an error).
        self.learned: set[str] = set()

    @property
    @override
    def partitions(self) -> list[dict[str, Any]] | None:
        """One pass over all intervals: calls are planned across segments, not per partition."""
        return None

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost: bookmarks are set from what was read, never from the clock."""
        return

    @cached_property
    def now(self) -> datetime:
        """The run's "now" (local wall clock), read once so that every plan agrees."""
        return self.run.local_now()

    # Planning ---------------------------------------------------------------------------------

    def plan(self, segment_ids: Sequence[str]) -> list[IntervalPlan]:
        """The series calls still needed, per interval: what the sync makes, the plan prints."""
        return [
            self._plan_interval(interval, segment_ids)
            for interval in self.settings.series_intervals
        ]

    def grid(self, interval: str) -> BucketGrid:
        """The interval's bucket grid: start_date, the alignment and data floor Klaviyo showed."""
        state = self.run.state
        learned = state.data_floor()
        floor = local_midnight(learned) if learned else FIRST_DATA_DAY
        anchor = reporting_anchor(self.settings.start, floor)
        return BucketGrid(interval, anchor, state.alignment(interval) or "", floor)

    def _plan_interval(self, interval: str, segment_ids: Sequence[str]) -> IntervalPlan:
        """One interval's calls from the bookmarks and what this run already read."""
        grid = self.grid(interval)
        bookmarks = self.run.state.series
        held = self.held(interval)
        resume: dict[str, datetime | None] = {}
        for sid in segment_ids:
            if sid in held:
                continue
            point = bookmarks.resume_point(interval, sid, now=self.now)
            through = self.read_through.get((interval, sid))
            resume[sid] = through if through and (point is None or point < through) else point
        plan = plan_interval(
            grid,
            resume,
            data_end_for(grid, self.now, self.settings.end),
            whole_account=self.whole_account,
        )
        self.plans[interval] = plan
        return plan

    @override
    def plan_calls(self) -> list[ReportCall]:
        """Every interval's remaining calls, oldest window first within each interval."""
        ids = self.run.segment_ids()
        return [call for plan in self.plan(ids) for call in plan.calls]

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Check the config against STATE's, then the report loop (client.py)."""
        self.run.reconcile_series_config()
        self.logger.info(
            "segment_series reads %s: %d report calls planned for %d segments",
            self.resume_note(),
            len(self.plan_calls()),
            len(self.run.segment_ids()),
        )
        yield from super().get_records(context)

    # One call ---------------------------------------------------------------------------------

    @override
    def request_body(self, call: ReportCall) -> dict[str, Any]:
        """Every statistic, always: a row must never hold null for a loaded value."""
        settings = self.settings
        return report_body(
            "segment-series-report",
            statistics=STATISTICS,
            timeframe={
                "start": settings.to_klaviyo_time(call.start),
                "end": settings.to_klaviyo_time(call.timeframe_end),
            },
            segment_ids=None if call.whole_account else call.segment_ids,
            interval=call.interval,
        )

    @override
    def read_answer(self, call: ReportCall, payload: Any) -> WindowAnswer:
        """Parse, then check the answer against the window (answers.py), inside the retry."""
        report = parse_series_report(payload, requested_ids=call.segment_ids, statistics=STATISTICS)
        grid = self.plans[call.interval].grid
        try:
            return check_series_answer(
                report, call, grid, self.settings.timezone, ended_by=self.run.ended_by(call.end)
            )
        except GridMismatch as mismatch:
            raise Lesson(mismatch) from None
        except TimezoneMismatch as exc:
            raise AnswerMismatchError(str(exc)) from None

    @override
    def learn(self, lesson: Exception) -> None:
        """Klaviyo's grid or data floor differs from the one assumed: keep it, re-plan on it."""
        if isinstance(lesson, GridMismatch):
            self._learn_grid(lesson)
        elif isinstance(lesson, DataFloorError):
            self._learn_floor(lesson)
        else:
            raise lesson

    def _learn_grid(self, mismatch: GridMismatch) -> None:
        if mismatch.interval in self.learned:
            msg = (
                f"{mismatch} right after the tap re-cut its windows on the grid Klaviyo showed "
                "before: its bucket alignment is not stable, so no row of this answer was "
                "written. Report this with the log at DEBUG."
            )
            raise AnswerMismatchError(msg)
        self.learned.add(mismatch.interval)
        self.run.state.learn_alignment(mismatch.interval, mismatch.alignment)
        self.logger.info(
            "%s; the tap now cuts %s windows on that grid (kept in STATE) and reads them again",
            mismatch,
            mismatch.interval,
        )

    def _learn_floor(self, floor: DataFloorError) -> None:
        known = self.run.state.data_floor() or FIRST_DATA_DAY.date()
        if floor.floor <= known:
            msg = (
                f"{floor}. The tap already reads nothing before {known.isoformat()}: set "
                "start_date to a later day, and report this with the log at DEBUG."
            )
            raise AnswerMismatchError(msg, floor.status, floor.pointer)
        self.run.state.learn_data_floor(floor.floor)
        self.logger.warning(
            "Klaviyo has no segment data before %s (it answered: %s). The tap now reads from "
            "that day (kept in STATE); the bucket holding it is written is_complete=false for good",
            floor.floor.isoformat(),
            floor,
        )

    # Rows and bookmarks -----------------------------------------------------------------------

    @override
    def emit(self, call: ReportCall, answer: WindowAnswer) -> Iterator[dict[str, Any]]:
        """The answer's rows, then the bookmarks of the segments it answered."""
        if not call.whole_account:
            self.run.warn_unexpected(answer.report.unexpected_ids)
        yield from self._records(answer)
        self._advance(answer)
        through = answer.grid.start(call.last_bucket + 1)
        for sid in answer.report.results:
            self.read_through[(call.interval, sid)] = through

    def _records(self, answer: WindowAnswer) -> Iterator[dict[str, Any]]:
        """Rows for the buckets this call owns, from each segment's own resume point on.

        A bucket outside the window belongs to another call (so an inclusive end never emits a
        bucket twice); a segment riding along in a shared window gets only the buckets it needs.
        """
        grid, interval = answer.grid, answer.call.interval
        resume_points = self.plans[interval].resume_points
        buckets = answer.buckets
        for segment_id, series in answer.report.results.items():
            point = resume_points.get(segment_id)
            first = grid.index(point) if point is not None else 0
            # The hot loop (one pass per record): one dict literal, keys in STATISTICS order.
            total, added, removed, net = (series[name] for name in STATISTICS)
            for bucket in buckets:
                if bucket.index < first:
                    continue
                position = bucket.position
                yield {
                    "segment_id": segment_id,
                    "interval": interval,
                    "date_time": bucket.label,
                    "bucket_date": bucket.local_date,
                    "total_members": total[position],
                    "members_added": added[position],
                    "members_removed": removed[position],
                    "net_members_changed": net[position],
                    "is_complete": bucket.complete,
                }

    def _advance(self, answer: WindowAnswer) -> None:
        """Move the answered segments' bookmarks past what this answer settled; write STATE.

        A segment the answer left out keeps its bookmark: nothing was emitted for it, and
        later windows never move it past this one (it is left out of their plans).
        """
        call = answer.call
        read_at = self.run.ended_by(self.now)
        resume = next_resume_point(
            answer.grid, call, answer.returned, read_at=read_at, lookback=self.settings.lookback
        )
        if resume is not None:
            bookmarks = self.run.state.series
            for segment_id in answer.report.results:
                current = bookmarks.resume_point(call.interval, segment_id, now=self.now)
                if current is None or current < resume:
                    bookmarks.move_to(call.interval, segment_id, resume)
        self.run.state.write()

    @override
    def left_out_of(self, call: ReportCall, answer: WindowAnswer) -> tuple[str, str, list[str]]:
        return call.interval, self.describe(call), answer.report.missing_ids

    @override
    def describe(self, call: ReportCall) -> str:
        return (
            f"{call.interval} {call.start.isoformat()} to {call.end.isoformat()}, "
            f"{segments_in(call.segment_ids, call.whole_account)}"
        )

    @override
    def resume_note(self) -> str:
        """Each interval's oldest resume point, read back from the state being saved."""
        bookmarks = self.run.state.series
        points = []
        for interval in self.settings.series_intervals:
            first = self.grid(interval).anchor
            resumes = [
                max(bookmarks.resume_point(interval, sid, now=self.now) or first, first)
                for sid in self.run.segment_ids()
            ]
            if resumes:
                points.append(f"{interval} from {min(resumes).isoformat()}")
        return ", ".join(points) or "from start_date"
