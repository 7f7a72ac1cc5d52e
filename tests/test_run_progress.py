"""The run object: a call's progress line comes after the wait that precedes it (issue 19)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from tap_klaviyo_segments import run as run_module
from tap_klaviyo_segments.run import ReportRun
from tap_klaviyo_segments.settings import parse_settings
from tap_klaviyo_segments.state import RunState

NOW = datetime(2026, 11, 28, 10, 30, tzinfo=timezone.utc)


class Events(logging.Handler):
    def __init__(self, events: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(f"log: {record.getMessage()}")


def test_the_progress_line_follows_the_wait(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(run_module.time, "sleep", lambda s: events.append(f"sleep {s:.0f}"))
    logger = logging.getLogger("test-run-progress")
    logger.setLevel(logging.INFO)
    logger.addHandler(Events(events))
    settings = parse_settings({"api_key": "pk_test_0123456789", "report_calls_per_minute": 6})
    state = RunState({}, write=lambda s: None, timezone=settings.timezone, logger=logger)
    run = ReportRun(
        settings=settings, state=state, clock=lambda: NOW, list_segments=dict, logger=logger
    )
    run.gate.clock = lambda: 0.0  # no time passes: the second call waits the 10 s spacing
    for done in range(2):
        run.announce("segment_series", done, 2, "daily 2026-11-01 to 2026-11-28, 3 segments")
        run.before_call()
    progress = [i for i, e in enumerate(events) if "call 2/2" in e]
    waits = [i for i, e in enumerate(events) if e.startswith("sleep")]
    assert len(progress) == 1
    assert waits, events
    assert waits[-1] < progress[0], events


def test_the_series_says_where_it_reads_from_not_the_sdks_start_date(standin, logs):
    from tests.tap_runner import base_config, run_tap

    sid = standin.account.segment_ids()[0]
    config = base_config(standin.url, segment_ids=[sid], start_date="2026-11-01")
    first = run_tap(config, now=NOW, select=("segment_series",))
    logs.records.clear()
    run_tap(config, state=first.final_state, now=NOW, select=("segment_series",))
    info = logs.at(logging.INFO)
    assert not [m for m in info if m.startswith("Starting incremental sync of 'segment_series'")]
    reads = [m for m in info if m.startswith("segment_series reads")]
    assert len(reads) == 1, info
    assert "daily from 2026-11-26" in reads[0], "the resume point (lookback 2 days), not start_date"
