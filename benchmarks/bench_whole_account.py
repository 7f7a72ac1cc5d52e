"""Report calls with whole-account calls against the old floor of ceil(S/100) per window.

``python benchmarks/bench_whole_account.py [--days 365]`` runs the tap in-process against the
stand-in for S = 10, 100, 250 and 1,000 segments (a full daily backfill, then the next day's
run), and for 250 segments with an unfiltered answer capped at 120 segments and with unfiltered
calls refused. Every case checks every segment's rows against the stand-in's ground truth and
prints one Markdown table row.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from klaviyo_standin import StandinServer, StandinSettings
from tests.tap_runner import base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)
SERIES = "/api/segment-series-reports"
VALUES = "/api/segment-values-reports"
STATS = ("total_members", "members_added", "members_removed", "net_members_changed")


def counted(server: StandinServer, path: str) -> int:
    return sum(1 for e in server.log if e.path == path and e.counted)


def exact(server: StandinServer, rows: list[dict], ids: list[str], start: datetime) -> bool:
    by_segment: dict[str, list[tuple]] = {sid: [] for sid in ids}
    for row in rows:
        by_segment[row["segment_id"]].append((row["date_time"], *(row[k] for k in STATS)))
    for sid in ids:
        truth = server.account.series(sid, "daily", start, NOW_LOCAL)
        expected = [(stamp, *(stats[k] for k in STATS)) for stamp, stats in truth]
        if sorted(by_segment[sid]) != expected:
            return False
    return True


def case(label: str, segments: int, days: int, **standin: object) -> str:
    settings = StandinSettings(
        segment_count=segments, seed=21, now=NOW_LOCAL, rate_limits_enabled=False, **standin
    )
    start = datetime.combine(NOW_LOCAL.date() - timedelta(days=days - 1), datetime.min.time())
    with StandinServer(settings) as server:
        ids = server.account.segment_ids()
        config = base_config(
            server.url,
            segment_ids=ids,
            start_date=start.date().isoformat(),
            values_timeframes=["last_30_days"],
        )
        first = run_tap(config, now=NOW_UTC)
        series, values = counted(server, SERIES), counted(server, VALUES)
        ok = exact(server, first.records["segment_series"], ids, start)
        server.clear_log()
        run_tap(config, state=first.final_state, now=NOW_UTC)
        next_day = counted(server, SERIES) + counted(server, VALUES)
    floor = math.ceil(segments / 100) * math.ceil(days / 60)
    return (
        f"| {label} | {segments} | {days} | {floor} | {series} | {values} | {next_day} "
        f"| {'yes' if ok else 'NO'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    days = parser.parse_args().days
    print(
        "| case | segments | days | old floor: series calls | series calls | values calls "
        "| next day: calls | rows exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for segments in (10, 100, 250, 1000):
        print(case("whole account (auto)", segments, days), flush=True)
    print(case("unfiltered answer capped at 120", 250, days, unfiltered_cap=120), flush=True)
    print(case("unfiltered calls refused (400)", 250, days, reject_unfiltered=True), flush=True)


if __name__ == "__main__":
    main()
