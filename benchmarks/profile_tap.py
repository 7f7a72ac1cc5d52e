"""Profile the tap's segment_series sync with pyinstrument (``pip install pyinstrument``).

    .venv/bin/python benchmarks/profile_tap.py [--segments 200] [--days 1275] [--html out.html]

Runs the sync in this process against a warmed stand-in process (stdout to /dev/null) and prints
the call tree, so the cost of the tap's own code can be told from singer-sdk's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

from floor_tap import FloorTap
from harness import Standin, series_catalog, tap_config, write_json
from pyinstrument import Profiler

from tap_klaviyo_segments.tap import TapKlaviyoSegments

END_DAY = date(2026, 11, 27)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--segments", type=int, default=200)
    p.add_argument("--days", type=int, default=1275)
    p.add_argument("--html", type=Path, default=None)
    p.add_argument("--floor", action="store_true", help="profile floor_tap.py's stream instead")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with Standin(args.segments, workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog = json.loads(series_catalog(workdir, probe).read_text())
        config = tap_config(
            standin.url,
            segment_ids=standin.ids,
            start_date=(END_DAY - timedelta(days=args.days - 1)).isoformat(),
            end_date=END_DAY.isoformat(),
        )
        tap = TapKlaviyoSegments(config=config, catalog=catalog)
        if args.floor:
            tap = FloorTap(
                config={
                    "segments": args.segments,
                    "days": args.days,
                    "start": config["start_date"],
                    "incremental": True,
                }
            )
        profiler = Profiler(interval=0.0005)
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            profiler.start()
            tap.sync_all()
            profiler.stop()
    show_all = os.environ.get("PROFILE_ALL") == "1"  # SDK frames too
    print(profiler.output_text(unicode=True, color=False, show_all=show_all))
    if args.html:
        args.html.write_text(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
