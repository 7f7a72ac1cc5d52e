"""Tap versus floor CPU in one process, alternating, best of N (less exposed to a noisy machine).

    .venv/bin/python benchmarks/bench_ratio.py --segments 1000 --days 127 --repeat 3

Both syncs run in this process with stdout to /dev/null and are timed with ``time.process_time``
(this process only; the stand-in is another process). No interpreter start-up is included.
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

from floor_tap import FloorTap
from harness import Standin, series_catalog, tap_config, write_json

from tap_klaviyo_segments.tap import TapKlaviyoSegments

END_DAY = date(2026, 11, 27)


def cpu_of(tap: object) -> float:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        started = time.process_time()
        tap.sync_all()  # type: ignore[attr-defined]
        return time.process_time() - started


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--segments", type=int, default=1000)
    p.add_argument("--days", type=int, default=127)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ratio-"))
    start = (END_DAY - timedelta(days=args.days - 1)).isoformat()
    runs: dict[str, list[float]] = {"tap": [], "floor": [], "floor (incremental)": []}
    with Standin(args.segments, workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog = json.loads(series_catalog(workdir, probe).read_text())
        config = tap_config(
            standin.url, segment_ids=standin.ids, start_date=start, end_date=END_DAY.isoformat()
        )
        for _ in range(args.repeat):
            runs["tap"].append(cpu_of(TapKlaviyoSegments(config=config, catalog=catalog)))
            for incremental, name in ((False, "floor"), (True, "floor (incremental)")):
                floor_config = {
                    "segments": args.segments,
                    "days": args.days,
                    "start": start,
                    "incremental": incremental,
                }
                runs[name].append(cpu_of(FloorTap(config=floor_config)))
    records = args.segments * args.days
    best = {name: min(times) for name, times in runs.items()}
    print(f"{args.segments} x {args.days} days = {records:,} records, best of {args.repeat}")
    print("| run | CPU s (best) | all runs | µs per record | ratio to floor |")
    print("|---|---:|---|---:|---:|")
    for name, times in runs.items():
        print(
            f"| {name} | {best[name]:.2f} | {', '.join(f'{t:.2f}' for t in times)} | "
            f"{best[name] / records * 1e6:.1f} | {best[name] / best['floor']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
