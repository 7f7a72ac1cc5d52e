"""Report calls the tap makes versus the minimum, ceil(S/100) x windows.

    .venv/bin/python benchmarks/bench_calls.py [--max-records 1300000]

For S in {1, 100, 101, 1000} segments, daily, weekly and hourly series over 30, 365 and 1,275
days (ending 2026-11-27, fresh state): the calls in the call plan (``plan_sync``, the same
planner the sync uses) and, where the run emits at most ``--max-records`` records, the calls the
real tap made against a warmed stand-in process (counted by the stand-in). Larger hourly cases
(millions of records) are measured through the planner only.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from harness import Standin, run_tap, series_catalog, tap_config, write_json

from tap_klaviyo_segments.callplan import plan_sync
from tap_klaviyo_segments.planning import BUCKETS_PER_WINDOW, MAX_IDS_PER_CALL
from tap_klaviyo_segments.tap import TapKlaviyoSegments

END_DAY = date(2026, 11, 27)
SEGMENTS = (1, 100, 101, 1000)
INTERVALS = ("daily", "weekly", "hourly")
DAYS = (30, 365, 1275)
SERIES = "/api/segment-series-reports"


def buckets(interval: str, days: int) -> int:
    return {"daily": days, "weekly": math.ceil(days / 7), "hourly": 24 * days}[interval]


def minimum(segments: int, interval: str, days: int) -> int:
    windows = math.ceil(buckets(interval, days) / BUCKETS_PER_WINDOW[interval])
    return math.ceil(segments / MAX_IDS_PER_CALL) * windows


def planned(config: dict, catalog: dict) -> int:
    tap = TapKlaviyoSegments(config=config, catalog=catalog, setup_mapper=False)
    return plan_sync(tap).series_calls


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--max-records", type=int, default=1_300_000)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    rows = []
    with Standin(max(SEGMENTS), workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog_path = series_catalog(workdir, probe)
        catalog = json.loads(catalog_path.read_text())
        for segments in SEGMENTS:
            for interval in INTERVALS:
                for days in DAYS:
                    start = END_DAY - timedelta(days=days - 1)
                    config = tap_config(
                        standin.url,
                        segment_ids=standin.ids[:segments],
                        start_date=start.isoformat(),
                        end_date=END_DAY.isoformat(),
                        series_intervals=[interval],
                    )
                    records = segments * buckets(interval, days)
                    least = minimum(segments, interval, days)
                    plan = planned(config, catalog)
                    made = None
                    if records <= args.max_records:
                        name = f"{segments}-{interval}-{days}"
                        run = run_tap(workdir, config, catalog_path, name=name)
                        if run.returncode:
                            print(run.stderr[-3000:], file=sys.stderr)
                            return 1
                        made = standin.counts().get(SERIES, 0)
                        if run.total_records != records:
                            print(f"{name}: {run.total_records} records, expected {records}")
                    measured = made if made is not None else plan
                    rows.append(
                        {
                            "segments": segments,
                            "interval": interval,
                            "days": days,
                            "records": records,
                            "minimum": least,
                            "planned": plan,
                            "made": made,
                            "ratio": round(measured / least, 2),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    print()
    print("| S | interval | days | records | minimum | plan | made (stand-in) | ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        made = f"{r['made']:,}" if r["made"] is not None else "planner only"
        print(
            f"| {r['segments']} | {r['interval']} | {r['days']:,} | {r['records']:,} | "
            f"{r['minimum']:,} | {r['planned']:,} | {made} | {r['ratio']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ratio"] == 1.0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
