"""One daily budget across runs: the gate counts earlier runs' calls kept in STATE.

Gate tests use a fake clock; the run tests drive the tap in-process against the stand-in with
the tap's clock frozen per run (an hour later, the next day...), as a scheduler would start it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from klaviyo_standin import StandinServer
from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.ledger import WINDOW, CallRecord
from tap_klaviyo_segments.pacing import ReportBudgetSpent, ReportGate
from tests.tap_runner import API_KEY, SyncResult, run_tap
from tests.test_reliability import (
    NOW_LOCAL,
    NOW_UTC,
    SERIES_PATH,
    VALUES_PATH,
    assert_no_duplicate_keys,
    fault_config,
    keyed,
    series_partitions,
    standin_settings,
)

REPORT_PATHS = (SERIES_PATH, VALUES_PATH)


class FakeTime:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.mono += seconds


def gate(fake: FakeTime, record: CallRecord, per_day: int, **kwargs: Any) -> ReportGate:
    return ReportGate(
        calls_per_minute=60,
        calls_per_second=1,
        calls_per_day=per_day,
        clock=fake.clock,
        sleep=fake.sleep,
        now=lambda: NOW_UTC,
        record=record,
        **kwargs,
    )


def test_earlier_calls_count_and_the_stop_says_when_calls_return():
    fake = FakeTime()
    earlier = CallRecord().add(NOW_UTC - timedelta(hours=1), 3)
    saved: list[CallRecord] = []
    g = gate(fake, earlier, 5, save=saved.append)
    assert g.calls_left == 2
    assert g.record.used(g.wall_now()) - g.calls_made == 3  # earlier runs' calls
    g.before_call()
    g.before_call()
    assert g.calls_made == 2
    assert saved[-1].used(g.wall_now()) == 5, "this run's calls are in the saved record"
    with pytest.raises(ReportBudgetSpent) as stop:
        g.before_call()
    expected_at = earlier.entries[0][0] + WINDOW
    assert g.available_at == expected_at
    assert str(stop.value) == (
        "the daily budget of 5 report calls (report_calls_per_day) is spent: 5 made in the last "
        f"24 hours, 3 of them by earlier runs; the next is allowed at {expected_at.isoformat()}"
    )
    assert g.calls_left == 0
    assert max(fake.slept) <= 1.0, "no wait for a call a day away"
    with pytest.raises(ReportBudgetSpent):
        g.before_call()
    assert g.calls_made == 2


def test_the_gate_waits_briefly_for_yesterdays_calls_to_stop_counting():
    """A run scheduled like yesterday's goes on as yesterday's calls expire, at their pace."""
    fake = FakeTime()
    yesterday = CallRecord()
    for k in range(4):  # yesterday's run: 2 calls a minute from 10:30:20
        yesterday = yesterday.add(NOW_UTC - WINDOW + timedelta(seconds=20 + 30 * k))
    g = gate(fake, yesterday, 4, max_wait=120)
    assert g.calls_left == 4, "all four stop counting within max_wait"
    for _ in range(4):
        g.before_call()
    # 10:31 and 10:32 today: two waits for expiry, the spacing in between
    assert g.calls_made == 4
    assert g.wall_now() - NOW_UTC == pytest.approx(
        timedelta(minutes=2, seconds=1), abs=timedelta(microseconds=1)
    )
    short = gate(FakeTime(), yesterday, 4, max_wait=30)
    with pytest.raises(ReportBudgetSpent, match="the next is allowed at 2026-11-28T10:31:00"):
        short.before_call()


def test_a_zero_budget_never_calls():
    g = gate(FakeTime(), CallRecord(), 0)
    with pytest.raises(ReportBudgetSpent, match="none is ever allowed"):
        g.before_call()
    assert g.available_at is None


def test_call_times_follow_the_gate_clock_not_a_jumping_wall_clock():
    fake = FakeTime()
    wall = [NOW_UTC]
    g = gate(fake, CallRecord(), 10)
    g.now = lambda: wall[0]
    g.before_call()
    wall[0] = NOW_UTC - timedelta(days=3)  # the wall clock jumps back mid-run
    fake.mono += 90
    g.before_call()
    stamps = [stamp for stamp, _ in g.record.entries]
    assert stamps == [  # 10:30:00 sharp, then 90 s later (10:31:30, in the minute to 10:32)
        datetime(2026, 11, 28, 10, 30, tzinfo=timezone.utc),
        datetime(2026, 11, 28, 10, 32, tzinfo=timezone.utc),
    ]


def test_the_daily_budget_is_the_third_argument():
    assert ReportGate(600, 100, 9).calls_per_day == 9


# ----- runs against the stand-in -----------------------------------------------------------------


def report_calls(server: StandinServer, since: int = 0) -> int:
    return len([e for e in server.log[since:] if e.path in REPORT_PATHS])


def budget_config(url: str, per_day: int) -> dict[str, Any]:
    # end_date pins the data to the stand-in's "now", so a run days later asks for the same days
    return fault_config(
        url,
        series_intervals=["daily"],
        values_timeframes=["last_30_days"],
        report_calls_per_day=per_day,
        end_date=NOW_LOCAL.isoformat(),
    )


def record_of(state: dict[str, Any]) -> CallRecord:
    return ledger.read(state[ledger.STATE_KEY])


@pytest.fixture(scope="module")
def reference() -> SyncResult:
    """The same sync with budget to spare, in one run."""
    with StandinServer(standin_settings()) as server:
        return run_tap(budget_config(server.url, 225), now=NOW_UTC)


def test_two_runs_on_one_day_share_the_budget_and_the_backfill_finishes_on_later_days(
    reference, caplog
):
    per_day = 3
    runs: list[SyncResult] = []
    calls: list[int] = []
    with StandinServer(standin_settings()) as server:
        config = budget_config(server.url, per_day)
        first = run_tap(config, now=NOW_UTC)
        calls.append(report_calls(server))
        assert calls == [per_day]
        assert record_of(first.final_state).used(NOW_UTC) == per_day
        # an hour later: nothing left, so it stops at once, saying when calls return
        mark = len(server.log)
        caplog.clear()
        later = run_tap(config, state=first.final_state, now=NOW_UTC + timedelta(hours=1))
        calls[0] += report_calls(server, mark)
        assert calls == [per_day], "the two runs of the day made at most report_calls_per_day"
        back_at = "2026-11-29T10:31:00+00:00"  # the end of the first run's minute, a day on
        stops = re.findall(r"^Stopping segment_(\w+) cleanly: (.*)$", later.logs, re.M)
        assert [stream for stream, _ in stops] == ["values", "series"], later.logs[-2000:]
        assert [r.levelname for r in caplog.records if r.getMessage().startswith("Stopping")] == [
            "WARNING",
            "WARNING",
        ]
        assert f"the next is allowed at {back_at}" in stops[0][1]
        assert "3 of them by earlier runs" in stops[0][1]
        assert "segment_series" not in later.records
        assert later.states, "STATE is saved"
        assert later.final_state["bookmarks"] == first.final_state["bookmarks"]
        assert later.final_state[ledger.STATE_KEY] == first.final_state[ledger.STATE_KEY]
        runs = [first, later]
        # one run a day until the backfill is done; a few minutes later each day, as a run
        # exactly a day on would wait (up to max_retry_wait_seconds, 5 s here) for the minute
        # of yesterday's calls to end (test_the_gate_waits_briefly_... shows that wait)
        state = later.final_state
        day = 1
        while "Stopping segment_series cleanly" in runs[-1].logs and day < 10:
            mark = len(server.log)
            now = NOW_UTC + day * timedelta(hours=24, minutes=5)
            result = run_tap(config, state=state, now=now)
            calls.append(report_calls(server, mark))
            assert record_of(result.final_state).used(now) == calls[-1], "yesterday's expired"
            assert_no_duplicate_keys(result)
            runs.append(result)
            state = result.final_state
            day += 1
    assert "Stopping" not in runs[-1].logs
    # day 0: the first run and the one an hour later (0 calls); then one run a day. Each day
    # pays the day's values call, so 7 windows take 2 + 2 + 2 + 1 series calls.
    assert calls == [per_day, per_day, per_day, 2]
    union: dict = {}
    for result in runs:
        union.update(keyed(result.records.get("segment_series", [])))
    daily = reference.records["segment_series"]
    assert union.keys() == keyed(daily).keys(), "nothing lost"
    assert all(
        union[key]["total_members"] == row["total_members"] for key, row in keyed(daily).items()
    )
    assert sum(len(r.records.get("segment_series", [])) for r in runs) == len(daily), "none twice"
    # every segment has its bookmark; read days later, the lookback days are final sooner
    done = {
        p["context"]["segment_id"]: p["replication_key_value"]
        for p in series_partitions(runs[-1].final_state)
    }
    ref = {
        p["context"]["segment_id"]: p["replication_key_value"]
        for p in series_partitions(reference.final_state)
    }
    assert done.keys() == ref.keys()
    assert all(done[sid] >= ref[sid] for sid in ref)


def test_the_record_is_in_every_state_message_and_never_holds_the_key():
    with StandinServer(standin_settings(segment_count=5)) as server:
        result = run_tap(budget_config(server.url, 50), now=NOW_UTC)
        made = report_calls(server)
    after_first_call = [s for s in result.states if ledger.STATE_KEY in s]
    series_states = [s for s in result.states if series_partitions(s)]
    assert series_states
    assert all(ledger.STATE_KEY in s for s in series_states)
    assert after_first_call[-1] == result.final_state
    assert record_of(result.final_state).used(NOW_UTC) == made
    assert API_KEY not in json.dumps(result.states)


def test_a_broken_record_warns_and_spends_nothing_for_a_day(caplog):
    state = {"bookmarks": {}, ledger.STATE_KEY: {"calls": [["soon", "lots"]]}}
    with StandinServer(standin_settings(segment_count=5)) as server:
        config = budget_config(server.url, 50)
        result = run_tap(config, state=state, now=NOW_UTC)
        assert report_calls(server) == 0
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(
            re.match(r"The record of recent report calls in STATE .* is unreadable", w)
            for w in warnings
        ), warnings
        assert "assumes the whole daily budget (50 calls) was spent just now" in result.logs
        record = record_of(result.final_state)  # an ordinary record from here on
        assert record.used(NOW_UTC) == 50
        tomorrow = run_tap(
            config, state=result.final_state, now=NOW_UTC + WINDOW + timedelta(minutes=1)
        )
        assert report_calls(server) > 0
        assert "unreadable" not in tomorrow.logs


def test_a_run_an_hour_later_spends_only_what_is_left():
    with StandinServer(standin_settings()) as server:
        first = run_tap(budget_config(server.url, 2), now=NOW_UTC)
        assert report_calls(server) == 2
        mark = len(server.log)
        # the budget raised to 5 for the second run: 2 of them were spent an hour ago
        later = run_tap(
            budget_config(server.url, 5),
            state=first.final_state,
            now=NOW_UTC + timedelta(hours=1),
        )
        assert report_calls(server, mark) == 3
    assert "5 made in the last 24 hours, 2 of them by earlier runs" in later.logs
    record = record_of(later.final_state)
    assert [calls for _, calls in record.entries] == [2, 3]
    assert record.when_available(5, NOW_UTC + timedelta(hours=1), 5) == (
        record.entries[-1][0] + WINDOW
    )
