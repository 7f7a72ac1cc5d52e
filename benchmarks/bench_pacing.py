"""Wall time under pacing versus its floor, calls x seconds-per-call, scaled down from Klaviyo's.

    .venv/bin/python benchmarks/bench_pacing.py [--per-minute 600] [--days 700]

Under Klaviyo's real limits (2 report calls a minute) a sync takes at least calls x 30 s. Here the
tap is paced at ``--per-minute`` (600 = 0.1 s a call, ``report_calls_per_second`` out of the way)
against a warmed stand-in process without rate limits, on hourly series of one segment (small
responses, so the work per call stays below the spacing, as it does at 30 s). The sync runs in
this process (``sync_all`` timed alone, stdout to /dev/null): wall / floor shows any idle time the
tap adds beyond the pacing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from harness import Standin, series_catalog, tap_config, write_json

from tap_klaviyo_segments.callplan import plan_sync
from tap_klaviyo_segments.tap import TapKlaviyoSegments

END_DAY = date(2026, 11, 27)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--per-minute", type=float, default=600)
    p.add_argument("--days", type=int, default=700)
    p.add_argument("--segments", type=int, default=1)
    p.add_argument("--interval", default="hourly")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench-pacing-"))
    with Standin(max(args.segments, 1), workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog = json.loads(series_catalog(workdir, probe).read_text())
        config = tap_config(
            standin.url,
            segment_ids=standin.ids[: args.segments],
            start_date=(END_DAY - timedelta(days=args.days - 1)).isoformat(),
            end_date=END_DAY.isoformat(),
            series_intervals=[args.interval],
            report_calls_per_minute=args.per_minute,
            report_calls_per_second=1000,
        )
        tap = TapKlaviyoSegments(config=config, catalog=catalog)
        plan = plan_sync(tap)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            started = time.perf_counter()
            tap.sync_all()
            wall = time.perf_counter() - started
        calls = tap.report_run.gate.calls_made
        made = standin.counts().get("/api/segment-series-reports", 0)
    floor = calls * plan.seconds_per_call
    result = {
        "segments": args.segments,
        "interval": args.interval,
        "days": args.days,
        "seconds_per_call": plan.seconds_per_call,
        "planned_calls": plan.total_calls,
        "calls_made": made,
        "floor_s": round(floor, 2),
        "wall_s": round(wall, 2),
        "wall_over_floor": round(wall / floor, 3),
        "idle_beyond_floor_per_call_ms": round((wall - floor) / calls * 1000, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
