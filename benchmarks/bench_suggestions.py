"""Measure changes proposed for streams.py without making them (that file is not ours to edit).

    .venv/bin/python benchmarks/bench_suggestions.py --segments 200 --days 255 --rounds 5

1. ``TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE`` on ``SegmentSeriesStream``: the
   stream builds every record with the schema's exact types, so singer-sdk's per-record type
   conforming changes nothing but costs CPU. Measured as interleaved rounds (tap as is, tap with
   the attribute set on the class in this process, floor), after checking that both taps write
   the same messages (``time_extracted`` aside).
2. The STATE written after every report call: the cost of one ``StateWriter.write_state`` of a
   state with S segment partitions (singer-sdk deep-copies it to compare with the next one,
   then the writer serialises it), median of many.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from floor_tap import FloorTap
from harness import Standin, series_catalog, tap_config, write_json
from singer_sdk.helpers._state import StateWriter
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_klaviyo_segments.series import SegmentSeriesStream
from tap_klaviyo_segments.singer_output import SingerWriter
from tap_klaviyo_segments.tap import TapKlaviyoSegments

END_DAY = date(2026, 11, 27)
STANDIN_NOW = "2026-11-28T10:30:00"
DEFAULT_LEVEL = SegmentSeriesStream.TYPE_CONFORMANCE_LEVEL


def sync(tap: object, out: io.TextIOBase | None = None) -> float:
    with contextlib.ExitStack() as stack:
        target = out or stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stdout(target))
        started = time.process_time()
        tap.sync_all()  # type: ignore[attr-defined]
        return time.process_time() - started


def messages(text: str) -> list[dict[str, object]]:
    parsed = [json.loads(line) for line in text.splitlines()]
    for message in parsed:
        message.pop("time_extracted", None)
    return parsed


def state_write_ms(partitions: int, repeat: int = 50) -> tuple[float, float]:
    """Median ms of one STATE write with ``partitions`` series bookmarks (SDK copy + ours)."""
    state = {
        "bookmarks": {
            "segment_series": {
                "partitions": [
                    {
                        "context": {"interval": "daily", "segment_id": f"Seg{k:05d}"},
                        "replication_key": "date_time",
                        "replication_key_value": "2026-11-26T00:00:00+00:00",
                    }
                    for k in range(partitions)
                ]
            }
        },
        "report_calls": {"calls": [["2026-11-28T10:31:00+00:00", 2]] * 100},
    }
    times = []
    serialise = []
    writer = StateWriter(SingerWriter())
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for k in range(repeat):
            state["bookmarks"]["segment_series"]["partitions"][0]["replication_key_value"] = str(k)
            started = time.perf_counter()
            writer.write_state(state)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            SingerWriter().format_message(_state_message(state))
            serialise.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3, statistics.median(serialise) * 1e3


def _state_message(state: dict[str, object]) -> object:
    from singer_sdk.singerlib.messages import StateMessage

    return StateMessage(value=state)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--segments", type=int, default=200)
    p.add_argument("--days", type=int, default=255)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="bench-suggestions-"))
    records = args.segments * args.days
    start = (END_DAY - timedelta(days=args.days - 1)).isoformat()
    with Standin(args.segments, now=STANDIN_NOW, workdir=workdir) as standin:
        probe = write_json(workdir / "probe.json", tap_config(standin.url))
        catalog = json.loads(series_catalog(workdir, probe).read_text())
        config = tap_config(
            standin.url, segment_ids=standin.ids, start_date=start, end_date=END_DAY.isoformat()
        )

        def tap(level: TypeConformanceLevel) -> TapKlaviyoSegments:
            SegmentSeriesStream.TYPE_CONFORMANCE_LEVEL = level
            return TapKlaviyoSegments(config=config, catalog=catalog)

        outputs = []
        for level in (DEFAULT_LEVEL, TypeConformanceLevel.NONE):
            out = io.StringIO()
            sync(tap(level), out)
            outputs.append(messages(out.getvalue()))
        same = outputs[0] == outputs[1]
        print(f"same messages with TYPE_CONFORMANCE_LEVEL NONE: {same} ({len(outputs[0])} lines)")
        if not same:
            return 1
        floor_config = {"segments": args.segments, "days": args.days, "start": start}
        runs: dict[str, list[float]] = {"tap": [], "tap, conformance NONE": [], "floor": []}
        for _ in range(args.rounds):
            runs["tap"].append(sync(tap(DEFAULT_LEVEL)))
            runs["tap, conformance NONE"].append(sync(tap(TypeConformanceLevel.NONE)))
            runs["floor"].append(sync(FloorTap(config=floor_config)))
        SegmentSeriesStream.TYPE_CONFORMANCE_LEVEL = DEFAULT_LEVEL
    print(
        f"\n{args.segments} x {args.days} = {records:,} records, {args.rounds} interleaved rounds"
    )
    print("| run | CPU s, each round | median | µs per record | median ratio to floor |")
    print("|---|---|---:|---:|---:|")
    for name, times in runs.items():
        ratios = [t / f for t, f in zip(times, runs["floor"], strict=True)]
        print(
            f"| {name} | {', '.join(f'{t:.2f}' for t in times)} | {statistics.median(times):.2f}"
            f" | {statistics.median(times) / records * 1e6:.1f} | {statistics.median(ratios):.2f} |"
        )
    print(
        "\n| segment partitions | one STATE write (SDK copy + compare + msgspec), ms "
        "| of it serialising, ms |"
    )
    print("|---:|---:|---:|")
    for partitions in (100, 1000, 3000):
        total, serialise = state_write_ms(partitions)
        print(f"| {partitions:,} | {total:.2f} | {serialise:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
