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

import argparse
import copy
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.metrics import METRICS_LOGGER_NAME

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.bookmarks import SeriesBookmarks
from tap_klaviyo_segments.planning import MAX_IDS_PER_CALL, ReportCall
from tap_klaviyo_segments.streams import SegmentSeriesStream, SegmentValuesStream
from tap_klaviyo_segments.tap import TapKlaviyoSegments

#: How many windows the text output lists per interval before eliding the middle.
_WINDOWS_SHOWN = 6


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


def plan_sync(tap: TapKlaviyoSegments) -> CallPlan:
    """The report calls of ``tap.sync_all()`` with the tap's config, state and clock."""
    settings = tap.settings
    now = settings.local_now(tap.now_utc())
    values_stream = tap.streams["segment_values"]
    series_stream = tap.streams["segment_series"]
    assert isinstance(values_stream, SegmentValuesStream)
    assert isinstance(series_stream, SegmentSeriesStream)
    ids: list[str] = []
    if values_stream.selected or series_stream.selected:
        ids = tap.report_segment_ids()
    source = "segment_ids" if settings.segment_ids is not None else "GET /api/segments"
    values = None
    if values_stream.selected:
        first_timeframe = [
            call
            for call in values_stream.plan(ids)
            if call.timeframe == settings.values_timeframes[0]
        ]
        values = ValuesPlan(
            timeframes=settings.values_timeframes,
            batches=tuple(len(call.segment_ids) for call in first_timeframe),
            whole_account=any(call.whole_account for call in first_timeframe),
        )
    series = None
    data_end = now
    if series_stream.selected:
        # A copy: planning must not touch the state the tap would write.
        state = copy.deepcopy(series_stream.stream_state)
        bookmarks = SeriesBookmarks(state, settings.timezone, tap.logger)
        summaries = []
        for planned in series_stream.plan(ids, now=now, bookmarks=bookmarks):
            behind = {sid for call in planned.calls for sid in call.segment_ids}
            data_end = min(data_end, planned.data_end)
            summaries.append(
                IntervalSummary(
                    interval=planned.grid.interval,
                    alignment=planned.grid.alignment,
                    calls=tuple(planned.calls),
                    segments_behind=len(behind),
                    segments_up_to_date=len(ids) - len(behind),
                    never_synced=sum(
                        1 for point in planned.resume_points.values() if point is None
                    ),
                )
            )
        series = tuple(summaries)
    notes = []
    if not ids and (values is not None or series is not None):
        notes.append("no segments to report on")
    now_utc = tap.now_utc()
    per_day = settings.report_calls_per_day
    tap_state: dict[str, Any] = dict(tap.state)
    record, record_notes = ledger.resolve(tap_state.get(ledger.STATE_KEY), now_utc, per_day)
    notes.extend(record_notes)
    total = (values.calls if values else 0) + sum(len(p.calls) for p in series or ())
    left = record.calls_left(now_utc, per_day)
    return CallPlan(
        now=now,
        data_end=data_end,
        timezone=settings.timezone.key,
        segment_count=len(ids),
        segment_source=source,
        calls_per_minute=settings.report_calls_per_minute,
        calls_per_second=settings.report_calls_per_second,
        seconds_per_call=tap.report_gate.spacing,
        calls_per_day=settings.report_calls_per_day,
        values=values,
        series=series,
        calls_left_today=left,
        next_call_at=None if left else record.next_call_at(now_utc, per_day),
        finish_at=_finish_at(record, total, now_utc, per_day, tap.report_gate.spacing),
        notes=notes,
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
            "intervals": [
                {
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
                for p in plan.series
            ],
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


def render_text(plan: CallPlan) -> str:
    """The plan for people: totals first, then each stream, interval and window."""
    pace = f"{_format_number(plan.calls_per_minute)}/min, {_format_number(plan.calls_per_second)}/s"
    lines = [
        "Call plan (no report calls were made)",
        f"  now {plan.now.isoformat()} ({plan.timezone}); data up to {plan.data_end.isoformat()}",
        f"  {plan.segment_count} segments (from {plan.segment_source}); "
        f"at most {MAX_IDS_PER_CALL} per call",
        f"  pace {pace} = {plan.seconds_per_call:g} s per report call; "
        f"report_calls_per_day {plan.calls_per_day}",
        "",
    ]
    if plan.values is not None:
        batches = len(plan.values.batches)
        lines.append(f"segment_values: {plan.values.calls} report calls")
        lines.extend(
            f"  {timeframe}: {batches} calls "
            f"({_batches(plan.values.batches, plan.values.whole_account)})"
            for timeframe in plan.values.timeframes
        )
    if plan.series is not None:
        lines.append(f"segment_series: {plan.series_calls} report calls")
        for p in plan.series:
            windows = p.windows
            lines.append(
                f"  {p.interval}: {len(p.calls)} calls in {len(windows)} windows "
                f"({p.alignment} buckets); "
                f"{p.segments_behind} segments to read ({p.never_synced} never synced), "
                f"{p.segments_up_to_date} up to date"
            )
            shown = windows
            if len(windows) > _WINDOWS_SHOWN:
                half = _WINDOWS_SHOWN // 2
                shown = [*windows[:half], None, *windows[-half:]]  # type: ignore[list-item]
            for w in shown:
                if w is None:
                    lines.append(f"    ... {len(windows) - 2 * half} more windows ...")
                    continue
                lines.append(
                    f"    {w.start.isoformat()} to {w.end.isoformat()}: {w.buckets} buckets, "
                    f"{w.calls} calls ({_batches(w.batches, w.whole_account)})"
                )
    lines.append("")
    lines.append(
        f"Total: {plan.total_calls} report calls"
        + (f", {plan.values_calls} values + {plan.series_calls} series" if plan.values else "")
    )
    today = (
        f"Today: {plan.calls_left_today} of report_calls_per_day={plan.calls_per_day} calls left "
        "(earlier runs' calls in the last 24 hours counted, from --state)"
    )
    if plan.next_call_at is not None:
        today += f"; the next is allowed at {plan.next_call_at.isoformat()}"
    lines.append(today)
    lines.append(
        f"This run: {plan.calls_this_run} calls, about {_duration(plan.estimated_seconds)} "
        f"at {pace} (plus response time)"
    )
    if plan.total_calls:
        lines.append(
            "Finish: "
            + (
                f"about {plan.finish_at.isoformat(timespec='minutes')}, with a run "
                "whenever the budget has calls left"
                if plan.finish_at is not None
                else "never: report_calls_per_day is 0"
            )
        )
    left = plan.total_calls - plan.calls_this_run
    if left:
        runs = plan.runs_needed
        lines.append(
            f"Budget: report_calls_per_day={plan.calls_per_day} stops this run cleanly with "
            f"{left} calls left; "
            + (
                f"about {runs} daily runs to finish"
                if runs is not None
                else "the values calls use the whole budget, so the series never progresses"
            )
        )
    else:
        lines.append(f"Budget: fits in one run of report_calls_per_day={plan.calls_per_day}")
    lines.extend(f"Note: {note}" for note in plan.notes)
    return "\n".join(lines)


def _batches(sizes: Sequence[int], whole_account: bool = False) -> str:
    if whole_account:
        return f"the whole account, {sum(sizes)} segments wanted"
    if not sizes:
        return "no segments"
    if len(set(sizes)) == 1:
        return f"{len(sizes)} x {sizes[0]} segments"
    return " + ".join(str(size) for size in sizes) + " segments"


def _format_number(value: float) -> str:
    return f"{value:g}"


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 1:
        return f"{seconds:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def build_parser() -> argparse.ArgumentParser:
    """``--config`` (repeatable, or ENV), ``--state``, ``--catalog``, ``--format``."""
    p = argparse.ArgumentParser(
        prog="tap-klaviyo-segments-plan",
        description="Print the report calls a tap-klaviyo-segments sync would make, "
        "without making them.",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        help="config file (repeatable; 'ENV' reads TAP_KLAVIYO_SEGMENTS_* variables)",
    )
    p.add_argument("--state", type=Path, default=None, help="state (bookmarks) file")
    p.add_argument("--catalog", type=Path, default=None, help="catalog file (stream selection)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Print the plan to stdout; logs go to stderr."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    # Later files win, as with the tap's own repeated --config.
    config: dict[str, Any] = {}
    for path in args.config:
        if path != "ENV":
            config.update(_read_json(Path(path)) or {})
    try:
        tap = TapKlaviyoSegments(
            config=config,
            state=_read_json(args.state),
            catalog=_read_json(args.catalog),
            parse_env_config="ENV" in args.config,
            validate_config=True,
            setup_mapper=False,
        )
    except ConfigValidationError as exc:
        problems = "; ".join(exc.errors) or str(exc)
        raise SystemExit(f"tap-klaviyo-segments-plan: config is not valid: {problems}") from None
    # Listing segments is the only request a plan makes; its per-page metrics are noise here.
    logging.getLogger(METRICS_LOGGER_NAME).setLevel(logging.WARNING)
    plan = plan_sync(tap)
    if args.format == "json":
        print(json.dumps(plan_to_dict(plan), indent=2))
    else:
        print(render_text(plan))
    return 0


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"tap-klaviyo-segments-plan: cannot read {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise SystemExit(f"tap-klaviyo-segments-plan: {path} does not hold a JSON object")
    return loaded


if __name__ == "__main__":
    sys.exit(main())
