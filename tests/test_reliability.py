"""Issue 4's proofs against the stand-in: faults, multi-day backfills, SIGKILL, pacing.

Every test runs a real backfill (tens of segments, hundreds of days) through the tap and
compares what it emitted with the stand-in's ground truth or a clean run. Time is scaled
(``time_scale``, small Retry-After, fast pacing), so the whole file takes seconds.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from klaviyo_standin import FaultSettings, StandinServer, StandinSettings
from klaviyo_standin import server as standin_server
from klaviyo_standin.ratelimit import REPORT_LIMITS, Limit
from tap_klaviyo_segments.pacing import ReportGate
from tests.tap_runner import SyncResult, base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)
START = "2025-10-25"  # 400 days up to NOW_LOCAL: 7 daily windows (the oldest has 40 days)
SEGMENTS = 40
SEED = 3
SERIES_PATH = "/api/segment-series-reports"
VALUES_PATH = "/api/segment-values-reports"
DAILY_WINDOWS = 7
WEEKLY_WINDOWS = 2  # 58 weeks, at most 52 a call

Key = tuple[str, str, str]


def standin_settings(**overrides: Any) -> StandinSettings:
    settings: dict[str, Any] = {
        "segment_count": SEGMENTS,
        "seed": SEED,
        "now": NOW_LOCAL,
        "rate_limits_enabled": False,
        "time_scale": 100,  # only makes Retry-After decimal (scripted 429s wait 0.05 s, not 1 s)
    }
    settings.update(overrides)
    return StandinSettings(**settings)


def series_key(row: dict[str, Any]) -> Key:
    return (row["segment_id"], row["interval"], row["date_time"])


def values_key(row: dict[str, Any]) -> Key:
    return (row["segment_id"], row["timeframe"], row["as_of_date"])


def keyed(rows: list[dict[str, Any]], key=series_key) -> dict[Key, dict[str, Any]]:
    """Rows as a target that upserts on the primary key would keep them (last one wins)."""
    return {key(row): row for row in rows}


def assert_no_duplicate_keys(result: SyncResult) -> None:
    for stream, key in (("segment_series", series_key), ("segment_values", values_key)):
        counts = Counter(key(row) for row in result.records.get(stream, []))
        repeated = [k for k, n in counts.items() if n > 1]
        assert not repeated, f"{stream} emitted {len(repeated)} keys twice, e.g. {repeated[:3]}"


def calls_to(server: StandinServer, path: str, since: int = 0) -> list:
    return [e for e in server.log[since:] if e.path == path]


def timeframe_of(entry) -> tuple[str, str]:
    timeframe = entry.body["data"]["attributes"]["timeframe"]
    return timeframe["start"], timeframe["end"]


def series_partitions(state: dict[str, Any]) -> list[dict[str, Any]]:
    return state.get("bookmarks", {}).get("segment_series", {}).get("partitions", [])


def check_states_cover_emitted(
    messages: list[dict[str, Any]], seen: set[tuple[str, date]], first_day: date
) -> int:
    """Every daily bookmark in every STATE is backed by rows emitted before it.

    ``seen`` holds (segment, day) of daily rows emitted so far (earlier runs included) and is
    updated in place. Returns how many bookmarks were checked.
    """
    checked = 0
    for message in messages:
        if message["type"] == "RECORD" and message["stream"] == "segment_series":
            record = message["record"]
            if record["interval"] == "daily":
                seen.add((record["segment_id"], date.fromisoformat(record["date_time"][:10])))
        elif message["type"] == "STATE":
            for partition in series_partitions(message["value"]):
                if partition["context"]["interval"] != "daily":
                    continue
                sid = partition["context"]["segment_id"]
                resume = date.fromisoformat(partition["replication_key_value"][:10])
                missing = [
                    first_day + timedelta(days=i)
                    for i in range((resume - first_day).days)
                    if (sid, first_day + timedelta(days=i)) not in seen
                ]
                assert not missing, f"STATE claims {sid} up to {resume}, {missing[:3]} not emitted"
                checked += 1
    return checked


@pytest.fixture(scope="module")
def clean() -> SyncResult:
    """The reference: a fault-free run of the same account and config."""
    with StandinServer(standin_settings()) as server:
        result = run_tap(fault_config(server.url), now=NOW_UTC)
        assert_no_duplicate_keys(result)
        ids = [r["segment_id"] for r in result.records["segment_values"]]
        sid = ids[0]
        truth = server.account.series(sid, "daily", datetime(2025, 10, 25), NOW_LOCAL)
        got = [
            r
            for r in result.records["segment_series"]
            if r["segment_id"] == sid and r["interval"] == "daily"
        ]
        assert [(r["date_time"], r["total_members"]) for r in got] == [
            (stamp, stats["total_members"]) for stamp, stats in truth
        ]
        return result


def fault_config(url: str, **overrides: Any) -> dict[str, Any]:
    config = base_config(
        url,
        start_date=START,
        series_intervals=["daily", "weekly"],
        values_timeframes=["last_30_days", "this_month"],
        request_timeout=0.3,
        max_retries=8,
        max_retry_wait_seconds=5,
    )
    config.update(overrides)
    return config


# ----- 1. faults ---------------------------------------------------------------------------------


def test_faults_lose_and_duplicate_nothing(clean):
    """20% 5xx, drops, slow answers past request_timeout, 429 bursts and broken 200s."""
    script = [
        ("429", 0.05),
        ("429", 0.05),
        ("429", 0.02),  # a burst of three on the first values call
        ("ok", None),
        ("drop", None),
        ("slow", 0.45),  # past request_timeout=0.3: the tap gives up on it and asks again
        ("503", None),
        ("malformed", None),
        ("ok", None),
        ("429", 0.03),
        ("429", 0.03),
    ]
    faults = FaultSettings(
        fault_seed=11,
        error_rate=0.2,
        drop_rate=0.1,
        slow_rate=0.1,
        slow_seconds=0.45,
        malformed_rate=0.05,
        script=script,
    )
    with StandinServer(standin_settings(faults=faults)) as server:
        started = time.monotonic()
        result = run_tap(fault_config(server.url), now=NOW_UTC)
        elapsed = time.monotonic() - started
        log = server.log
    reports = [e for e in log if e.path in (SERIES_PATH, VALUES_PATH)]
    kinds = Counter(e.fault or "none" for e in reports)
    assert kinds["script:429"] == 5
    assert kinds["script:drop"] + kinds["drop"] >= 1
    assert kinds["script:slow"] + kinds["slow"] >= 1
    assert kinds["script:malformed"] + kinds["malformed"] >= 1
    assert sum(kinds[k] for k in ("script:503", "500", "502", "503", "504")) >= 2
    failed = sum(n for kind, n in kinds.items() if kind not in ("none", "script:ok"))
    assert failed >= 0.3 * len(reports), kinds  # the run really went through faults
    # Each bucket once per run, and the same rows as a clean run, field by field.
    assert_no_duplicate_keys(result)
    for stream, key in (("segment_series", series_key), ("segment_values", values_key)):
        assert keyed(result.records[stream], key) == keyed(clean.records[stream], key)
        assert len(result.records[stream]) == len(clean.records[stream])
    # the record of report calls differs on purpose: it counts every retry
    assert result.final_state["bookmarks"] == clean.final_state["bookmarks"]
    assert "Stopping" not in result.logs
    assert elapsed < 20


def test_429_burst_longer_than_max_retries_stops_cleanly_and_resumes(clean):
    """Klaviyo throttling past every retry is a clean stop (exit 0, state saved), not a crash."""
    faults = FaultSettings(script=[("ok", None)] * 3 + [("429", 0.01)] * 3)
    with StandinServer(standin_settings(faults=faults)) as server:
        config = fault_config(server.url, series_intervals=["daily"], max_retries=2)
        select = ("segment_series",)
        first = run_tap(config, now=NOW_UTC, select=select)  # raises if the run fails
        assert len([e for e in server.log if e.status == 429]) == 3
        assert re.search(
            r"Stopping segment_series cleanly: Klaviyo still throttled "
            r"/api/segment-series-reports after 2 retries \(last Retry-After: 0\.01 s\)\. "
            r"Made 6 report calls this run; 4 more are needed for this stream\.",
            first.logs,
        ), first.logs[-2000:]
        # The 3 oldest windows, full: older windows are cut forward from the resume point.
        assert len(first.records["segment_series"]) == (60 + 60 + 60) * 34
        second = run_tap(config, state=first.final_state, now=NOW_UTC, select=select)
    assert "Stopping" not in second.logs
    union = keyed(first.records["segment_series"] + second.records["segment_series"])
    assert union == keyed([r for r in clean.records["segment_series"] if r["interval"] == "daily"])


# ----- 2. multi-day backfill ---------------------------------------------------------------------


@pytest.fixture
def daily_quota_of_three(monkeypatch):
    """The stand-in's daily report quota cut from 225 to 3 (windows scaled by time_scale)."""
    limits = tuple(Limit(x.name, 3, x.seconds) if x.name == "daily" else x for x in REPORT_LIMITS)
    monkeypatch.setattr(standin_server, "REPORT_LIMITS", limits)


WARNING = re.compile(
    r"Stopping segment_series cleanly: (?P<why>.*)\. Made (?P<made>\d+) report calls this run; "
    r"(?P<left>\d+) more are needed for this stream\. State is saved; the next run resumes "
    r"daily from (?P<resume>[0-9T:-]+)\.$",
    re.MULTILINE,
)


@pytest.mark.parametrize("quota", ["tap_budget", "standin_daily_quota"])
def test_multi_day_backfill_resumes_exactly_where_each_day_stopped(clean, request, caplog, quota):
    """Three report calls a day: values plus two windows per run, until the backfill is done."""
    if quota == "standin_daily_quota":
        request.getfixturevalue("daily_quota_of_three")
        settings = standin_settings(rate_limits_enabled=True, time_scale=600)
        settings.shared_daily_budget = True
        config_extra: dict[str, Any] = {
            "report_calls_per_minute": 2 * 600,
            "report_calls_per_second": 600,
        }
    else:
        settings = standin_settings()
        config_extra = {"report_calls_per_day": 3}
    config = fault_config(
        "",
        series_intervals=["daily"],
        values_timeframes=["last_30_days"],
        end_date=NOW_LOCAL.isoformat(),  # the same data on every day's run
    )
    config.update(config_extra)
    runs: list[SyncResult] = []
    series_windows: list[list[tuple[str, str]]] = []
    made: list[int] = []
    stop_levels: list[list[str]] = []
    seen: set[tuple[str, date]] = set()
    state = None
    with StandinServer(settings) as server:
        config["api_url"] = server.url
        while len(runs) < 10:
            server.reset_rate_limits()  # a new day
            mark = len(server.log)
            caplog.clear()
            # a new day for the tap's daily budget too (a few minutes more than 24 hours)
            now = NOW_UTC + len(runs) * timedelta(hours=24, minutes=5)
            server.settings.now = now.replace(tzinfo=None)  # Klaviyo's clock moves on too (UTC)
            result = run_tap(config, state=state, now=now)  # raises if the run fails
            stop_levels.append(
                [r.levelname for r in caplog.records if r.getMessage().startswith("Stopping")]
            )
            runs.append(result)
            reports = [e for e in server.log[mark:] if e.path in (SERIES_PATH, VALUES_PATH)]
            made.append(len(reports))
            series_windows.append(
                [timeframe_of(e) for e in calls_to(server, SERIES_PATH, mark) if e.status == 200]
            )
            assert_no_duplicate_keys(result)
            assert check_states_cover_emitted(result.messages, seen, date(2025, 10, 25)) > 0
            state = result.final_state
            if "Stopping segment_series cleanly" not in result.logs:
                break
        # end_date's day as the stand-in's clock shows it now (the day has ended): its truth
        last_day = NOW_LOCAL.date().isoformat()
        day_start = datetime.combine(NOW_LOCAL.date(), datetime.min.time())
        whole_last_day = {
            row["segment_id"]: server.account.series(
                row["segment_id"], "daily", day_start, day_start + timedelta(days=1)
            )[0][1]
            for row in clean.records["segment_series"]
            if row["bucket_date"] == last_day
        }
    assert len(runs) == 4, "7 windows, two a day after the day's values"
    assert [len(w) for w in series_windows] == [2, 2, 2, 1]
    every_window = [w for windows in series_windows for w in windows]
    assert len(set(every_window)) == len(every_window) == DAILY_WINDOWS, "no window read twice"
    for index, result in enumerate(runs[:-1]):
        warnings = [m for m in WARNING.finditer(result.logs)]
        assert len(warnings) == 1, result.logs[-2000:]
        warning = warnings[0]
        assert int(warning["made"]) == made[index]
        later = sum(len(w) for w in series_windows[index + 1 :])
        assert int(warning["left"]) == later
        assert series_windows[index + 1][0][0].startswith(warning["resume"])
        assert stop_levels[index] == ["WARNING"]
        # the final STATE resumes every segment exactly at the next run's first window
        resumes = {p["replication_key_value"] for p in series_partitions(result.final_state)}
        assert resumes == {series_windows[index + 1][0][0]}
    assert "Stopping" not in runs[-1].logs
    assert stop_levels[-1] == []
    union_series: dict[Key, dict[str, Any]] = {}
    union_values: dict[Key, dict[str, Any]] = {}
    for result in runs:
        union_series.update(keyed(result.records.get("segment_series", [])))
        union_values.update(keyed(result.records.get("segment_values", []), values_key))
    daily_clean = [r for r in clean.records["segment_series"] if r["interval"] == "daily"]
    last30 = [r for r in clean.records["segment_values"] if r["timeframe"] == "last_30_days"]
    # The runs' clock (and the stand-in's) is days past end_date, so end_date's day has ended
    # on both clocks: complete, with the whole day's numbers (the clean run read it at 10:30).
    expected = {
        key: {**row, **whole_last_day[row["segment_id"]], "is_complete": True}
        if row["bucket_date"] == last_day
        else row
        for key, row in keyed(daily_clean).items()
    }
    assert union_series == expected
    # each day's run reads that day's values (its own as_of_date); day one's are the clean run's
    assert keyed(runs[0].records["segment_values"], values_key) == keyed(last30, values_key)
    assert len(union_values) == len(runs) * len(last30)
    assert sum(len(r.records.get("segment_series", [])) for r in runs) == len(daily_clean)


# ----- 5. a budget spent during segment_values ---------------------------------------------------


def test_budget_spent_during_values_stops_series_without_a_call(clean):
    with StandinServer(standin_settings()) as server:
        config = fault_config(
            server.url,
            series_intervals=["daily", "weekly"],
            values_timeframes=["last_30_days", "this_month", "last_7_days"],
            report_calls_per_day=2,
        )
        result = run_tap(config, now=NOW_UTC)
        log = server.log
    assert len([e for e in log if e.path == VALUES_PATH]) == 2
    assert not [e for e in log if e.path == SERIES_PATH], "series made a call on a spent budget"
    logs = result.logs
    assert re.search(
        r"Stopping segment_values cleanly: the daily budget of 2 report calls "
        r"\(report_calls_per_day\) is spent: 2 made in the last 24 hours; the next is allowed at "
        r"2026-11-29T10:31:00\+00:00\. Made 2 report calls this run; 1 more are needed "
        r"for this stream\.",
        logs,
    ), logs[-3000:]
    series_warning = re.search(
        r"Stopping segment_series cleanly: the daily budget of 2 report calls "
        r"\(report_calls_per_day\) is spent: 2 made in the last 24 hours; the next is allowed at "
        r"2026-11-29T10:31:00\+00:00\. Made 2 report calls this run; (\d+) more are needed"
        r" for this stream \((\d+) for the whole sync\)\. State is saved; the next run resumes "
        r"daily from 2025-10-25T00:00:00, weekly from 2025-10-25T00:00:00\.$",
        logs,
        re.MULTILINE,
    )
    assert series_warning, logs[-3000:]
    assert int(series_warning[1]) == DAILY_WINDOWS + WEEKLY_WINDOWS
    assert int(series_warning[2]) == DAILY_WINDOWS + WEEKLY_WINDOWS + 1  # and one values call
    assert "segment_series call" not in logs, "no progress line for a call that was not made"
    assert len(result.records["segment_values"]) == 2 * len(
        {r["segment_id"] for r in clean.records["segment_values"]}
    )
    assert "segment_series" not in result.records
    assert series_partitions(result.final_state) == []


# ----- 3. SIGKILL --------------------------------------------------------------------------------


def test_sigkill_mid_run_then_restart_from_last_state_loses_nothing(tmp_path: Path):
    settings = standin_settings(segment_count=30, seed=5, now=datetime(2026, 11, 1))
    with StandinServer(settings) as server:
        config = base_config(
            server.url,
            start_date="2025-06-01",
            end_date="2026-06-30",  # 395 days: 7 windows, all in the past (the tap's clock is real)
            values_timeframes=["last_30_days"],
            report_calls_per_second=5,  # 0.2 s a call: about 2 s of run to land the kill in
        )
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
        first, killed = _run_cli(
            config_file, None, tmp_path / "run1.err", kill_after_series_states=3
        )
        assert killed, "the kill must land mid-run"
        last_state = [m["value"] for m in first if m["type"] == "STATE"][-1]
        state_file = tmp_path / "state.json"
        state_file.write_text(json.dumps(last_state))
        second, killed_again = _run_cli(config_file, state_file, tmp_path / "run2.err")
        assert not killed_again
        ids = server.account.segment_ids()
        active = [s["id"] for s in server.account.segments() if s["is_active"]]
        truth = {
            (sid, stamp): stats
            for sid in active
            for stamp, stats in server.account.series(
                sid, "daily", datetime(2025, 6, 1), datetime(2026, 6, 30, 23, 59, 59)
            )
        }
    assert len(ids) == 30
    rows_first = [m["record"] for m in first if _is_series(m)]
    rows_second = [m["record"] for m in second if _is_series(m)]
    assert 0 < len(rows_first) < len(truth), "killed before the end, after some rows"
    assert rows_second
    union = {(r["segment_id"], r["date_time"]): r for r in rows_first + rows_second}
    missing = truth.keys() - union.keys()
    assert not missing, f"{len(missing)} buckets lost, e.g. {sorted(missing)[:3]}"
    assert union.keys() == truth.keys()
    for key, stats in truth.items():
        assert {name: union[key][name] for name in stats} == stats
    # the restart re-read at most the window that was in flight, not the whole backfill
    assert len(rows_first) + len(rows_second) <= len(truth) + 60 * len(active)


def _is_series(message: dict[str, Any]) -> bool:
    return message["type"] == "RECORD" and message["stream"] == "segment_series"


def _run_cli(
    config: Path, state: Path | None, stderr_path: Path, kill_after_series_states: int = 0
) -> tuple[list[dict[str, Any]], bool]:
    """Run the tap's CLI; SIGKILL it after that many series STATE lines (0: let it finish)."""
    command = [sys.executable, "-m", "tap_klaviyo_segments.tap", "--config", str(config)]
    if state is not None:
        command += ["--state", str(state)]
    messages: list[dict[str, Any]] = []
    killed = False
    series_states = 0
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # a line cut by the kill: a target would not load it either
                messages.append(message)
                if message["type"] == "STATE" and series_partitions(message["value"]):
                    series_states += 1
                    if kill_after_series_states and series_states == kill_after_series_states:
                        process.send_signal(signal.SIGKILL)
                        killed = True
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    if killed:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == 0, stderr_path.read_text()[-3000:]
    return messages, killed


# ----- 4. pacing ---------------------------------------------------------------------------------

SCALE = 400


def test_paced_backfill_provokes_no_429():
    """Klaviyo's 1/s, 2/min, 225/day divided by SCALE, and the tap's pace multiplied by it."""
    settings = standin_settings(rate_limits_enabled=True, time_scale=SCALE)
    with StandinServer(settings) as server:
        config = fault_config(
            server.url,
            report_calls_per_minute=2 * SCALE,
            report_calls_per_second=SCALE,
            max_retries=0,  # a 429 would fail the run, not hide in a retry
        )
        started = time.monotonic()
        result = run_tap(config, now=NOW_UTC)
        elapsed = time.monotonic() - started
        log = server.log
    assert not [e for e in log if e.status == 429], Counter((e.path, e.status) for e in log)
    reports = [e for e in log if e.path in (SERIES_PATH, VALUES_PATH)]
    assert len(reports) == 2 + DAILY_WINDOWS + WEEKLY_WINDOWS
    assert all(e.status == 200 for e in reports)
    assert elapsed >= (len(reports) - 1) * 30 / SCALE
    assert_no_duplicate_keys(result)


def test_waits_for_ratelimit_reset_when_none_remain():
    """Unpaced for the steady limit: only RateLimit-Remaining/Reset keep it under 2 a window.

    Two segments make each call take milliseconds, far faster than 2 a steady window.
    """
    scale = 200
    settings = standin_settings(rate_limits_enabled=True, time_scale=scale)
    with StandinServer(settings) as server:
        config = fault_config(
            server.url,
            segment_ids=server.account.segment_ids()[:2],
            series_intervals=["daily"],
            report_calls_per_minute=60_000_000,
            report_calls_per_second=scale / 2,  # the burst limit, with room for jitter
            max_retries=0,  # a 429 fails the run
        )
        started = time.monotonic()
        result = run_tap(config, now=NOW_UTC)
        elapsed = time.monotonic() - started
        log = server.log
    reports = [e for e in log if e.path in (SERIES_PATH, VALUES_PATH)]
    assert not [e for e in log if e.status == 429]
    assert len(reports) == 2 + DAILY_WINDOWS
    # 9 calls at 2 per steady window: at least 4 window ends waited for
    assert elapsed >= 4 * 60 / scale * 0.9
    assert len(result.records["segment_series"]) == 2 * 400


def test_gate_holds_the_next_call_until_ratelimit_reset():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    gate = ReportGate(60_000, 1_000, 10, clock=lambda: now[0], sleep=sleep)  # 1 ms spacing
    gate.before_call()
    gate.after_response(200, {"RateLimit-Remaining": "1", "RateLimit-Reset": "40"})
    gate.before_call()
    assert max(slept, default=0) < 0.0011, "one call left in the window: only the spacing"
    gate.after_response(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "40"})
    gate.before_call()
    # whole seconds may be rounded down: one more second, or the call lands early and gets a 429
    assert slept[-1] == pytest.approx(41)
    gate.after_response(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "0.150"})
    gate.before_call()
    assert slept[-1] == pytest.approx(0.151)
    waits = len(slept)
    gate.after_response(429, {"RateLimit-Remaining": "0", "RateLimit-Reset": "40"})
    gate.before_call()
    assert max(slept[waits:], default=0) < 0.0011, "a 429 is waited by the retry, not here"
    assert gate.calls_made == 5


def test_a_huge_ratelimit_reset_is_capped_by_max_retry_wait():
    from tap_klaviyo_segments.pacing import ReportGate

    clock = [1000.0]
    waits: list[float] = []
    gate = ReportGate(
        calls_per_minute=600,
        calls_per_second=100,
        calls_per_day=10,
        max_wait=5,
        clock=lambda: clock[0],
        sleep=waits.append,
    )
    gate.before_call()
    gate.after_response(200, {"RateLimit-Remaining": "0", "RateLimit-Reset": "86400"})
    gate.before_call()
    assert waits == [pytest.approx(5)]
