"""Run a warmed stand-in in its own process (so its CPU is not counted as the tap's).

``python benchmarks/standin_proc.py --segments 1000 --ready-file F [--now 2026-11-28T10:30]``
builds and warms the whole history *before* listening, then writes ``{"url", "ids"}`` to F.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from datetime import datetime
from pathlib import Path

from klaviyo_standin import StandinServer, StandinSettings


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--segments", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--now", type=datetime.fromisoformat, default=None)
    p.add_argument("--ready-file", type=Path, required=True)
    args = p.parse_args()
    settings = StandinSettings(
        segment_count=args.segments, seed=args.seed, now=args.now, rate_limits_enabled=False
    )
    server = StandinServer(settings, port=0)
    server.account.warm()
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    counts_file = args.ready_file.with_name(args.ready_file.name + ".counts")

    def dump_counts(*_: object) -> None:
        """SIGUSR1: write the report calls seen since the last dump, per path, then forget them."""
        by_path: dict[str, int] = {}
        for entry in server.report_calls():
            by_path[entry.path] = by_path.get(entry.path, 0) + 1
        server.clear_log()
        tmp = counts_file.with_name(counts_file.name + ".tmp")
        tmp.write_text(json.dumps(by_path))
        os.replace(tmp, counts_file)

    signal.signal(signal.SIGUSR1, dump_counts)
    tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
    tmp.write_text(json.dumps({"url": server.url, "ids": server.account.segment_ids()}))
    os.replace(tmp, args.ready_file)
    while not stop.wait(0.2):
        pass
    server.stop()


if __name__ == "__main__":
    main()
