"""Command line: ``python -m klaviyo_standin`` from a checkout of this repository.

Binds 127.0.0.1 only, prints one line with the URL to stderr, writes the URL to ``--ready-file``
once listening (so scripts can wait for it), and serves until SIGINT or SIGTERM.

The switches of issue 17 that make sense for a whole server life: ``--clock-skew SECONDS``,
``--data-floor YYYY-MM-DD``, ``--deleted-segments ID,ID`` and one leave-out rule
(``--leave-out IDS|all`` with ``--leave-out-start``, ``--leave-out-call``, ``--leave-out-times``,
``--leave-out-report``). A timezone change between runs needs the in-process server.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from types import FrameType

from klaviyo_standin.server import StandinServer
from klaviyo_standin.settings import (
    DEFAULT_API_KEY,
    DEFAULT_SCOPELESS_API_KEY,
    FaultSettings,
    LeaveOut,
    StandinSettings,
)
from klaviyo_standin.timeframes import DATA_FLOOR, MONTH_ALIGNMENTS, WEEK_ALIGNMENTS


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """All flags; each maps to a StandinSettings or FaultSettings field."""
    p = argparse.ArgumentParser(
        prog="klaviyo-standin", description="Local Klaviyo stand-in server."
    )
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = ephemeral)")
    p.add_argument("--segments", type=int, default=12, help="number of segments")
    p.add_argument("--seed", type=int, default=1, help="data seed")
    p.add_argument("--timezone", default="UTC", help="account timezone (IANA name)")
    p.add_argument(
        "--now", type=datetime.fromisoformat, default=None, help="fixed now (local if naive)"
    )
    p.add_argument("--end-exclusive", action="store_true", help="timeframe ends are exclusive")
    p.add_argument(
        "--week-alignment", choices=WEEK_ALIGNMENTS, default="monday", help="weekly buckets"
    )
    p.add_argument(
        "--month-alignment", choices=MONTH_ALIGNMENTS, default="calendar", help="monthly buckets"
    )
    p.add_argument(
        "--unfiltered-cap", type=int, default=None, help="most segments an unfiltered report holds"
    )
    p.add_argument(
        "--reject-unfiltered", action="store_true", help="refuse reports without a filter (400)"
    )
    p.add_argument("--api-key", default=None, help="valid key (default: the stand-in default key)")
    p.add_argument(
        "--scopeless-api-key", default=DEFAULT_SCOPELESS_API_KEY, help="key without scope"
    )
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="divide rate-limit windows by this"
    )
    p.add_argument("--no-rate-limits", action="store_true", help="disable rate limiting")
    p.add_argument(
        "--shared-daily-budget", action="store_true", help="one daily budget for reports"
    )
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers")
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections")
    p.add_argument("--slow-rate", type=float, default=0.0, help="share of slow answers")
    p.add_argument("--slow-seconds", type=float, default=1.0)
    p.add_argument("--malformed-rate", type=float, default=0.0, help="share of malformed 200s")
    p.add_argument("--faults-on-segments", action="store_true", help="faults on GET /api/segments")
    p.add_argument(
        "--ready-file", type=Path, default=None, help="write the URL here when listening"
    )
    p.add_argument("--verbose", action="store_true", help="print access logs (never headers)")
    p.add_argument(
        "--clock-skew",
        type=float,
        default=0.0,
        help="seconds Klaviyo's clock (and the Date header) is ahead of now (negative: behind)",
    )
    p.add_argument(
        "--data-floor",
        type=date.fromisoformat,
        default=DATA_FLOOR.date(),
        help="first data day: earlier timeframes answer 400 (default 2023-06-01)",
    )
    p.add_argument(
        "--deleted-segments", type=_ids, default=[], help="comma-separated deleted segment ids"
    )
    p.add_argument(
        "--leave-out",
        default=None,
        metavar="IDS|all",
        help="leave these segment ids (comma-separated, or all) out of matching report answers",
    )
    p.add_argument(
        "--leave-out-start",
        type=datetime.fromisoformat,
        default=None,
        help="only answers whose timeframe starts at this local time",
    )
    p.add_argument("--leave-out-call", type=int, default=None, help="only the Nth answer")
    p.add_argument(
        "--leave-out-times", type=int, default=None, help="only the first N matching answers"
    )
    p.add_argument("--leave-out-report", choices=("series", "values", "any"), default="series")
    return p


def leave_out_from_args(args: argparse.Namespace) -> list[LeaveOut]:
    """The one leave-out rule the flags describe (none without ``--leave-out``)."""
    if args.leave_out is None:
        return []
    ids = None if args.leave_out.strip() == "all" else _ids(args.leave_out)
    return [
        LeaveOut(
            segment_ids=ids,
            window_start=args.leave_out_start,
            call=args.leave_out_call,
            report=args.leave_out_report,
            times=args.leave_out_times,
        )
    ]


def settings_from_args(args: argparse.Namespace) -> StandinSettings:
    """Translate parsed flags into settings."""
    faults = FaultSettings(
        fault_seed=args.fault_seed,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        malformed_rate=args.malformed_rate,
        apply_to_segments=args.faults_on_segments,
    )
    return StandinSettings(
        timezone=args.timezone,
        segment_count=args.segments,
        seed=args.seed,
        now=args.now,
        end_inclusive=not args.end_exclusive,
        week_alignment=args.week_alignment,
        month_alignment=args.month_alignment,
        unfiltered_cap=args.unfiltered_cap,
        reject_unfiltered=args.reject_unfiltered,
        api_key=args.api_key or DEFAULT_API_KEY,
        scopeless_api_key=args.scopeless_api_key or None,
        rate_limits_enabled=not args.no_rate_limits,
        time_scale=args.time_scale,
        shared_daily_budget=args.shared_daily_budget,
        faults=faults,
        verbose=args.verbose,
        clock_skew_seconds=args.clock_skew,
        data_floor=args.data_floor,
        deleted_segment_ids=args.deleted_segments,
        leave_out=leave_out_from_args(args),
    )


def _write_ready_file(path: Path, url: str) -> None:
    """Write atomically so a waiting script never reads a half-written URL."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until SIGINT/SIGTERM; return the exit code."""
    args = build_parser().parse_args(argv)
    server = StandinServer(settings_from_args(args), port=args.port).start()
    threading.Thread(target=server.account.warm, daemon=True).start()
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    key_note = "default API key " + DEFAULT_API_KEY if args.api_key is None else "custom API key"
    print(f"klaviyo-standin listening on {server.url} ({key_note})", file=sys.stderr, flush=True)
    if args.ready_file is not None:
        _write_ready_file(args.ready_file, server.url)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
