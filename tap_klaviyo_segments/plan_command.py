"""``tap-klaviyo-segments-plan``: print the call plan for people (or as JSON), without calls.

Reads the tap's config files (or ``ENV``) and a state file in any of the forms users have: the
tap's own STATE, Meltano's ``{"singer_state": ...}``, and ``meltano state get`` output. Every
problem is one line on stderr and exit code 1; the plan itself is computed in callplan.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.metrics import METRICS_LOGGER_NAME

from tap_klaviyo_segments.callplan import (
    CallPlan,
    IntervalSummary,
    PlannedTap,
    plan_sync,
    plan_to_dict,
)
from tap_klaviyo_segments.errors import KlaviyoAPIError
from tap_klaviyo_segments.planning import MAX_IDS_PER_CALL
from tap_klaviyo_segments.redaction import redact
from tap_klaviyo_segments.state_checks import StateError, singer_state

#: How many windows the text output lists per interval before eliding the middle.
_WINDOWS_SHOWN = 6

#: What Meltano shows instead of a secret (``meltano config print`` and friends).
_MASKED = ("*****", "(redacted)")

TapFactory = Callable[..., PlannedTap]


def render_text(plan: CallPlan) -> str:
    """The plan for people: totals first, then each stream, interval and window."""
    lines = _header_lines(plan)
    if plan.values is not None:
        lines += _values_lines(plan)
    if plan.series is not None:
        lines.append(f"segment_series: {plan.series_calls} report calls")
        for summary in plan.series:
            lines += _interval_lines(summary)
    return "\n".join([*lines, "", *_budget_lines(plan)])


def _pace(plan: CallPlan) -> str:
    return f"{plan.calls_per_minute:g}/min, {plan.calls_per_second:g}/s"


def _header_lines(plan: CallPlan) -> list[str]:
    return [
        "Call plan (no report calls were made)",
        f"  now {plan.now.isoformat()} ({plan.timezone}); data up to {plan.data_end.isoformat()}",
        f"  {plan.segment_count} segments (from {plan.segment_source}); "
        f"at most {MAX_IDS_PER_CALL} per call",
        f"  pace {_pace(plan)} = {plan.seconds_per_call:g} s per report call; "
        f"report_calls_per_day {plan.calls_per_day}",
        "",
    ]


def _values_lines(plan: CallPlan) -> list[str]:
    assert plan.values is not None
    values = plan.values
    return [
        f"segment_values: {values.calls} report calls",
        *(
            f"  {timeframe}: {len(values.batches)} calls "
            f"({_batches(values.batches, values.whole_account)})"
            for timeframe in values.timeframes
        ),
    ]


def _interval_lines(p: IntervalSummary) -> list[str]:
    windows = p.windows
    lines = [
        f"  {p.interval}: {len(p.calls)} calls in {len(windows)} windows "
        f"({p.alignment} buckets); {p.segments_behind} segments to read "
        f"({p.never_synced} never synced), {p.segments_up_to_date} up to date"
    ]
    half = _WINDOWS_SHOWN // 2
    elide = len(windows) > _WINDOWS_SHOWN
    for position, w in enumerate(windows):
        if elide and half <= position < len(windows) - half:
            if position == half:
                lines.append(f"    ... {len(windows) - 2 * half} more windows ...")
            continue
        lines.append(
            f"    {w.start.isoformat()} to {w.end.isoformat()}: {w.buckets} buckets, "
            f"{w.calls} calls ({_batches(w.batches, w.whole_account)})"
        )
    return lines


def _budget_lines(plan: CallPlan) -> list[str]:
    split = f", {plan.values_calls} values + {plan.series_calls} series" if plan.values else ""
    today = (
        f"Today: {plan.calls_left_today} of report_calls_per_day={plan.calls_per_day} calls left "
        "(earlier runs' calls in the last 24 hours counted, from --state)"
    )
    if plan.next_call_at is not None:
        today += f"; the next is allowed at {plan.next_call_at.isoformat()}"
    lines = [
        f"Total: {plan.total_calls} report calls{split}",
        today,
        f"This run: {plan.calls_this_run} calls, about {_duration(plan.estimated_seconds)} "
        f"at {_pace(plan)} (plus response time)",
    ]
    if plan.total_calls:
        lines.append(
            f"Finish: about {plan.finish_at.isoformat(timespec='minutes')}, with a run whenever "
            "the budget has calls left"
            if plan.finish_at is not None
            else "Finish: never: report_calls_per_day is 0"
        )
    lines.append(_budget_line(plan))
    return [*lines, *(f"Note: {note}" for note in plan.notes)]


def _budget_line(plan: CallPlan) -> str:
    left = plan.total_calls - plan.calls_this_run
    if not left:
        return f"Budget: fits in one run of report_calls_per_day={plan.calls_per_day}"
    runs = plan.runs_needed
    return (
        f"Budget: report_calls_per_day={plan.calls_per_day} stops this run cleanly with {left} "
        "calls left; "
        + (
            f"about {runs} daily runs to finish"
            if runs is not None
            else "the values calls use the whole budget, so the series never progresses"
        )
    )


def _batches(sizes: Sequence[int], whole_account: bool = False) -> str:
    if whole_account:
        return f"the whole account, {sum(sizes)} segments wanted"
    if not sizes:
        return "no segments"
    if len(set(sizes)) == 1:
        return f"{len(sizes)} x {sizes[0]} segments"
    return " + ".join(str(size) for size in sizes) + " segments"


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
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        help="state file: the tap's STATE, or Meltano's (meltano state get <id> > state.json)",
    )
    p.add_argument("--catalog", type=Path, default=None, help="catalog file (stream selection)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    return p


class PlanInputError(Exception):
    """An input the plan cannot use: said in one line."""


def main(argv: Sequence[str] | None, make_tap: TapFactory) -> int:
    """Print the plan to stdout; logs and the one line of any problem go to stderr."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    try:
        plan = plan_sync(_tap(args, make_tap))
    except (PlanInputError, KlaviyoAPIError) as exc:
        raise SystemExit(f"tap-klaviyo-segments-plan: {redact(str(exc))}") from None
    print(json.dumps(plan_to_dict(plan), indent=2) if args.format == "json" else render_text(plan))
    return 0


def _tap(args: argparse.Namespace, make_tap: TapFactory) -> PlannedTap:
    config: dict[str, Any] = {}
    for path in args.config:  # later files win, as with the tap's own repeated --config
        if path != "ENV":
            config.update(_read_json(Path(path)) or {})
    if str(config.get("api_key", "")).strip() in _MASKED:
        msg = (
            "api_key is masked (*****), as `meltano config print` shows it: pass the real key, "
            "e.g. `meltano invoke tap-klaviyo-segments:plan`, or set TAP_KLAVIYO_SEGMENTS_API_KEY "
            "and --config ENV"
        )
        raise PlanInputError(msg)
    try:
        tap = make_tap(
            config=config,
            state=_state(args.state),
            catalog=_read_json(args.catalog),
            parse_env_config="ENV" in args.config,
            validate_config=True,
            setup_mapper=False,
        )
    except ConfigValidationError as exc:
        problems = "; ".join(exc.errors) or str(exc)
        raise PlanInputError(f"config is not valid: {problems}") from None
    # Listing segments is the only request a plan makes; its per-page metrics are noise here.
    logging.getLogger(METRICS_LOGGER_NAME).setLevel(logging.WARNING)
    return tap


def _state(path: Path | None) -> dict[str, Any] | None:
    try:
        return singer_state(_read_json(path), str(path))
    except StateError as exc:
        raise PlanInputError(str(exc)) from None


def _read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlanInputError(f"cannot read {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise PlanInputError(f"{path} does not hold a JSON object")
    return loaded
