"""Throughput and memory of the tap next to the SDK's floor, on daily series from the stand-in.

    .venv/bin/python benchmarks/bench_throughput.py                       # 1000 x 1275 days
    .venv/bin/python benchmarks/bench_throughput.py --cases 10x127 100x127 10x1275 1000x1275

For each case SxD (S segments, D days of daily series ending 2026-11-27): the real tap
(``tap-klaviyo-segments``, segment_series only, rate limits off, pacing out of the way) against
a warmed stand-in in its own process, and the floor tap (``benchmarks/floor_tap.py``), which
yields the same records from memory, full-table and incremental. Each tap writes to /dev/null;
CPU and peak RSS are of the tap process alone (``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from harness import Run, Standin, measure, run_tap, series_catalog, tap_config, write_json

END_DAY = date(2026, 11, 27)
STANDIN_NOW = "2026-11-28T10:30:00"


def case(text: str) -> tuple[int, int]:
    segments, days = text.lower().split("x")
    return int(segments), int(days)


def row(label: str, run: Run) -> dict[str, object]:
    records = run.total_records
    return {
        "run": label,
        "records": records,
        "wall_s": round(run.wall, 2),
        "cpu_s": round(run.cpu, 2),
        "user_s": round(run.user, 2),
        "sys_s": round(run.sys, 2),
        "records_per_s_wall": round(records / run.wall) if run.wall else 0,
        "records_per_cpu_s": round(records / run.cpu) if run.cpu else 0,
        "peak_rss_mb": round(run.max_rss_mb, 1),
        "rc": run.returncode,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", nargs="+", type=case, default=[(1000, 1275)])
    p.add_argument("--no-floor", action="store_true", help="only the real tap")
    p.add_argument("--repeat", type=int, default=1, help="runs of each (interleaved)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    rows = []
    with Standin(max(s for s, _ in args.cases), now=STANDIN_NOW, workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog = series_catalog(workdir, probe)
        for segments, days in [c for c in args.cases for _ in range(args.repeat)]:
            start = END_DAY - timedelta(days=days - 1)
            config = tap_config(
                standin.url,
                segment_ids=standin.ids[:segments],
                start_date=start.isoformat(),
                end_date=END_DAY.isoformat(),
            )
            name = f"{segments}x{days}"
            tap = run_tap(workdir, config, catalog, name=name)
            if tap.returncode:
                print(tap.stderr[-3000:], file=sys.stderr)
            rows.append({"case": name, **row("tap", tap)})
            print(json.dumps(rows[-1]), flush=True)
            if args.no_floor:
                continue
            for incremental in (False, True):
                floor_config = {
                    "segments": segments,
                    "days": days,
                    "start": start.isoformat(),
                    "incremental": incremental,
                }
                path = write_json(workdir / f"floor-{name}.json", floor_config)
                floor = measure(
                    [
                        sys.executable,
                        str(Path(__file__).parent / "floor_tap.py"),
                        "--config",
                        str(path),
                    ]
                )
                label = "floor (incremental)" if incremental else "floor"
                rows.append({"case": name, **row(label, floor)})
                print(json.dumps(rows[-1]), flush=True)
    print()
    print(
        "| case | run | records | wall s | CPU s | records/s (wall) | records/CPU s | peak RSS MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['run']} | {r['records']:,} | {r['wall_s']} | {r['cpu_s']} | "
            f"{r['records_per_s_wall']:,} | {r['records_per_cpu_s']:,} | {r['peak_rss_mb']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
