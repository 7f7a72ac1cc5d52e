"""Tap versus floor CPU per record, side by side: interleaved rounds, medians.

    .venv/bin/python benchmarks/bench_ratio.py --segments 200 --days 255 --rounds 5
    .venv/bin/python benchmarks/bench_ratio.py --process --cases 1000x318 1000x1275 --rounds 3

Each round runs the tap, then the full-table floor, then the incremental floor
(``floor_tap.py``), so a busy spell on this shared machine hits all three alike; the table gives
each run's CPU, the median, and the median of the per-round tap / floor ratios.

In-process (default): each sync runs in this process with stdout on /dev/null, timed with
``time.process_time``; no interpreter start-up, no peak memory. ``--process``: each run is its own
process (``harness.measure``: CPU user + sys and peak RSS from ``os.wait4``, records counted from
the SDK's metrics), which is what a real run pays, start-up included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from floor_tap import FloorTap
from harness import Standin, measure, run_tap, series_catalog, tap_config, write_json

from tap_klaviyo_segments.tap import TapKlaviyoSegments

END_DAY = date(2026, 11, 27)
STANDIN_NOW = "2026-11-28T10:30:00"
KINDS = ("tap", "floor", "floor (incremental)")


@dataclass
class Sample:
    cpu: float
    records: int
    rss_mb: float | None = None


def in_process(tap: object, records: int) -> Sample:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        started = time.process_time()
        tap.sync_all()  # type: ignore[attr-defined]
        return Sample(time.process_time() - started, records)


def case(text: str) -> tuple[int, int]:
    segments, days = text.lower().split("x")
    return int(segments), int(days)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", nargs="+", type=case, default=None)
    p.add_argument("--segments", type=int, default=200)
    p.add_argument("--days", type=int, default=255)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--process", action="store_true", help="each run in its own process")
    p.add_argument("--json", type=Path, default=None, help="also write every sample here")
    args = p.parse_args()
    cases = args.cases or [(args.segments, args.days)]
    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ratio-"))
    dump: list[dict[str, object]] = []
    with Standin(max(s for s, _ in cases), now=STANDIN_NOW, workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog_path = series_catalog(workdir, probe)
        catalog = json.loads(catalog_path.read_text())
        for segments, days in cases:
            start = (END_DAY - timedelta(days=days - 1)).isoformat()
            expected = segments * days
            config = tap_config(
                standin.url,
                segment_ids=standin.ids[:segments],
                start_date=start,
                end_date=END_DAY.isoformat(),
            )
            samples: dict[str, list[Sample]] = {kind: [] for kind in KINDS}
            for _ in range(args.rounds):
                for kind in KINDS:
                    floor_config = {
                        "segments": segments,
                        "days": days,
                        "start": start,
                        "incremental": kind == "floor (incremental)",
                    }
                    if args.process:
                        if kind == "tap":
                            run = run_tap(workdir, config, catalog_path)
                        else:
                            path = write_json(workdir / "floor.json", floor_config)
                            floor = Path(__file__).parent / "floor_tap.py"
                            run = measure([sys.executable, str(floor), "--config", str(path)])
                        if run.returncode:
                            print(run.stderr[-3000:], file=sys.stderr)
                            return 1
                        sample = Sample(run.cpu, run.total_records, run.max_rss_mb)
                    elif kind == "tap":
                        sample = in_process(
                            TapKlaviyoSegments(config=config, catalog=catalog), expected
                        )
                    else:
                        sample = in_process(FloorTap(config=floor_config), expected)
                    if sample.records != expected:
                        print(f"{kind}: {sample.records} records, not {expected}", file=sys.stderr)
                        return 1
                    samples[kind].append(sample)
                    dump.append({"case": f"{segments}x{days}", "run": kind, **sample.__dict__})
                    print(json.dumps(dump[-1]), file=sys.stderr, flush=True)
            report(segments, days, expected, samples, args.process)
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1))
    return 0


def report(
    segments: int, days: int, records: int, samples: dict[str, list[Sample]], process: bool
) -> None:
    rounds = len(samples["tap"])
    where = "own process each" if process else "in-process"
    print(f"\n{segments} x {days} days = {records:,} records, {rounds} interleaved rounds, {where}")
    print("| run | CPU s, each round | median CPU s | µs per record | peak RSS MB (max) |")
    print("|---|---|---:|---:|---:|")
    for kind, runs in samples.items():
        cpus = [s.cpu for s in runs]
        median = statistics.median(cpus)
        rss = [s.rss_mb for s in runs if s.rss_mb is not None]
        print(
            f"| {kind} | {', '.join(f'{c:.2f}' for c in cpus)} | {median:.2f} | "
            f"{median / records * 1e6:.1f} | {max(rss):.1f} |"
            if rss
            else f"| {kind} | {', '.join(f'{c:.2f}' for c in cpus)} | {median:.2f} | "
            f"{median / records * 1e6:.1f} | - |"
        )
    for floor in KINDS[1:]:
        ratios = [t.cpu / f.cpu for t, f in zip(samples["tap"], samples[floor], strict=True)]
        print(
            f"tap / {floor}: per round {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"median {statistics.median(ratios):.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
