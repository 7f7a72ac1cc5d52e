"""Call plan: what a sync with this config and state would ask Klaviyo, without asking it.

Klaviyo allows 2 report calls a minute and 225 a day, so before a long backfill it is worth
knowing what it costs. ``tap-klaviyo-segments-plan --config c.json [--state s.json]`` prints
the report calls per stream and interval, the windows and segment batches, the time at
``report_calls_per_minute`` and how many runs of ``report_calls_per_day`` they need.

The plan is the streams' own: ``SegmentValuesStream.plan`` and ``SegmentSeriesStream.plan``,
which ``get_records`` follows, over a copy of the tap's state; this module only formats it. Only
``GET /api/segments`` may be called (to list the segments when ``segment_ids`` is not
configured); the report endpoints never are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from singer_sdk import Stream

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.planning import IntervalPlan, ReportCall
from tap_klaviyo_segments.run import ReportRun
from tap_klaviyo_segments.series import SegmentSeriesStream
from tap_klaviyo_segments.streams import SegmentValuesStream


class PlannedTap(Protocol):
    """What the plan needs of the tap: its run and its streams (selection included)."""

    @property
    def report_run(self) -> ReportRun:
        """What a sync would share."""

    @property
    def streams(self) -> Mapping[str, Stream]:
        """The streams, selected or not."""


@dataclass(frozen=True)
class Window:
    """The calls that share one window of buckets (one per batch of segments)."""

    start: datetime
    end: datetime
    first_bucket: int
    last_bucket: int
    batches: tuple[int, ...]  # segments per call
    #: The window is read in one call without a segment filter.
    whole_account: bool = False

    @property
    def calls(self) -> int:
        """One report call per batch."""
        return len(self.batches)

    @property
    def buckets(self) -> int:
        """Buckets in the window (the widest of its calls)."""
        return self.last_bucket - self.first_bucket + 1


@dataclass(frozen=True)
class IntervalSummary:
    """The series calls of one interval, as the stream planned them."""

    interval: str
    alignment: str
    calls: tuple[ReportCall, ...]
    segments_behind: int
    segments_up_to_date: int
    never_synced: int

    @property
    def windows(self) -> list[Window]:
        """Calls grouped by the window they read, oldest first (the order of the sync)."""
        grouped: dict[int, list[ReportCall]] = {}
        for call in self.calls:
            grouped.setdefault(call.last_bucket, []).append(call)
        return [
            Window(
                start=min(c.start for c in calls),
                end=calls[0].end,
                first_bucket=min(c.first_bucket for c in calls),
                last_bucket=last,
                batches=tuple(len(c.segment_ids) for c in calls),
                whole_account=any(c.whole_account for c in calls),
            )
            for last, calls in grouped.items()
        ]


@dataclass(frozen=True)
class ValuesPlan:
    """The segment_values calls: one per timeframe key and batch of at most 100 segments."""

    timeframes: tuple[str, ...]
    batches: tuple[int, ...]  # segments per batch
    #: One call per timeframe, without a segment filter.
    whole_account: bool = False

    @property
    def calls(self) -> int:
        """Timeframes x batches."""
        return len(self.timeframes) * len(self.batches)


@dataclass(frozen=True)
class CallPlan:
    """Everything a sync with this config and state would ask of the report endpoints."""

    now: datetime
    data_end: datetime
    timezone: str
    segment_count: int
    segment_source: str
    calls_per_minute: float
    calls_per_second: float
    #: The spacing the tap's ReportGate keeps between report calls.
    seconds_per_call: float
    calls_per_day: int
    values: ValuesPlan | None
    series: tuple[IntervalSummary, ...] | None
    #: Calls the shared daily budget has left now (earlier runs' calls from STATE counted).
    calls_left_today: int = 0
    #: When the budget allows the next call, if none is left now.
    next_call_at: datetime | None = None
    #: About when every planned call has been made, if a run starts whenever calls are left.
    finish_at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def values_calls(self) -> int:
        """Report calls of segment_values (0 when not selected)."""
        return self.values.calls if self.values else 0

    @property
    def series_calls(self) -> int:
        """Report calls of segment_series (0 when not selected)."""
        return sum(len(p.calls) for p in self.series or ())

    @property
    def total_calls(self) -> int:
        """Report calls of the whole sync, if the budget allowed them all."""
        return self.values_calls + self.series_calls

    @property
    def estimated_seconds(self) -> float:
        """Pacing time of the calls this run makes (response time comes on top)."""
        return self.calls_this_run * self.seconds_per_call

    @property
    def calls_this_run(self) -> int:
        """Calls this run can make before the daily budget stops it cleanly."""
        return min(self.total_calls, self.calls_left_today)

    @property
    def runs_needed(self) -> int | None:
        """Daily runs to finish: each run also spends its values calls first.

        None when the budget never leaves room for the series (values use all of it).
        An estimate: later runs re-plan from their saved state and the new day's data.
        """
        if self.total_calls == 0:
            return 0
        if self.total_calls <= self.calls_per_day:
            return 1
        room = self.calls_per_day - self.values_calls
        if room <= 0:
            return None
        return math.ceil(self.series_calls / room)


def plan_sync(tap: PlannedTap) -> CallPlan:
    """The report calls of ``tap.sync_all()`` with the tap's config, state and clock.

    The streams plan as they would sync (``plan_calls``, ``plan``), over the tap's own state:
    a plan's tap is never synced, and nothing it changes in memory is written.
    """
    run = tap.report_run
    run.state.read_only()
    settings = run.settings
    values_stream, series_stream = tap.streams["segment_values"], tap.streams["segment_series"]
    assert isinstance(values_stream, SegmentValuesStream)
    assert isinstance(series_stream, SegmentSeriesStream)
    ids = run.segment_ids() if values_stream.selected or series_stream.selected else []
    values = (
        _values_plan(values_stream, settings.values_timeframes) if values_stream.selected else None
    )
    series = None
    if series_stream.selected:
        run.reconcile_series_config()
        series = tuple(_summary(planned, ids) for planned in series_stream.plan(ids))
    notes = []
    if not ids and (values is not None or series is not None):
        notes.append("no segments to report on")
    now_utc = run.now_utc()
    per_day = settings.report_calls_per_day
    record, record_notes = run.state.call_record(now_utc, per_day)
    notes.extend(record_notes)
    total = (values.calls if values else 0) + sum(len(p.calls) for p in series or ())
    left = record.calls_left(now_utc, per_day)
    spacing = run.gate.spacing
    return CallPlan(
        now=series_stream.now,
        data_end=min((p.data_end for p in series_stream.plans.values()), default=series_stream.now),
        timezone=settings.timezone.key,
        segment_count=len(ids),
        segment_source="segment_ids" if settings.segment_ids is not None else "GET /api/segments",
        calls_per_minute=settings.report_calls_per_minute,
        calls_per_second=settings.report_calls_per_second,
        seconds_per_call=spacing,
        calls_per_day=per_day,
        values=values,
        series=series,
        calls_left_today=left,
        next_call_at=None if left else record.next_call_at(now_utc, per_day),
        finish_at=_finish_at(record, total, now_utc, per_day, spacing),
        notes=notes,
    )


def _values_plan(stream: SegmentValuesStream, timeframes: Sequence[str]) -> ValuesPlan:
    first = [call for call in stream.plan_calls() if call.timeframe == timeframes[0]]
    return ValuesPlan(
        timeframes=tuple(timeframes),
        batches=tuple(len(call.segment_ids) for call in first),
        whole_account=any(call.whole_account for call in first),
    )


def _summary(planned: IntervalPlan, ids: Sequence[str]) -> IntervalSummary:
    behind = {sid for call in planned.calls for sid in call.segment_ids}
    return IntervalSummary(
        interval=planned.grid.interval,
        alignment=planned.grid.alignment,
        calls=tuple(planned.calls),
        segments_behind=len(behind),
        segments_up_to_date=len(ids) - len(behind),
        never_synced=sum(1 for point in planned.resume_points.values() if point is None),
    )


def _finish_at(
    record: ledger.CallRecord, calls: int, now: datetime, per_day: int, spacing: float
) -> datetime | None:
    """About when ``calls`` calls are made, runs starting whenever the budget has calls left.

    An estimate: later runs re-plan (and spend their values calls again), and other private-key
    integrations of the account spend the same quota. None when the budget is 0.
    """
    moment = now
    while calls > 0:
        left = record.calls_left(moment, per_day)
        if left <= 0:
            upcoming = record.next_call_at(moment, per_day)
            if upcoming is None or upcoming <= moment:
                return None
            moment = upcoming
            continue
        batch = min(left, calls)
        for _ in range(batch):
            record = record.add(moment)
            moment += timedelta(seconds=spacing)
        calls -= batch
    return moment


def plan_to_dict(plan: CallPlan) -> dict[str, Any]:
    """The plan as JSON-ready data (every call listed)."""
    streams: dict[str, Any] = {}
    if plan.values is not None:
        streams["segment_values"] = {
            "report_calls": plan.values.calls,
            "timeframes": list(plan.values.timeframes),
            "batches": list(plan.values.batches),
            "whole_account": plan.values.whole_account,
        }
    if plan.series is not None:
        streams["segment_series"] = {
            "report_calls": plan.series_calls,
            "intervals": [_interval_dict(p) for p in plan.series],
        }
    return {
        "now": plan.now.isoformat(),
        "data_end": plan.data_end.isoformat(),
        "account_timezone": plan.timezone,
        "segments": plan.segment_count,
        "segment_source": plan.segment_source,
        "report_calls": plan.total_calls,
        "pace": {
            "report_calls_per_minute": plan.calls_per_minute,
            "report_calls_per_second": plan.calls_per_second,
            "seconds_per_call": plan.seconds_per_call,
        },
        "budget": {
            "report_calls_per_day": plan.calls_per_day,
            "calls_left_today": plan.calls_left_today,
            "next_call_at": plan.next_call_at.isoformat() if plan.next_call_at else None,
            "calls_this_run": plan.calls_this_run,
            "calls_left_after_this_run": plan.total_calls - plan.calls_this_run,
            "runs_needed": plan.runs_needed,
        },
        "estimated_seconds_this_run": plan.estimated_seconds,
        "finish_at": plan.finish_at.isoformat() if plan.finish_at else None,
        "streams": streams,
        "notes": plan.notes,
    }


def _interval_dict(p: IntervalSummary) -> dict[str, Any]:
    return {
        "interval": p.interval,
        "bucket_alignment": p.alignment,
        "report_calls": len(p.calls),
        "windows": len(p.windows),
        "segments_behind": p.segments_behind,
        "segments_up_to_date": p.segments_up_to_date,
        "segments_never_synced": p.never_synced,
        "calls": [
            {
                "start": c.start.isoformat(),
                "end": c.end.isoformat(),
                "buckets": c.last_bucket - c.first_bucket + 1,
                "segments": len(c.segment_ids),
                "whole_account": c.whole_account,
            }
            for c in p.calls
        ],
    }
