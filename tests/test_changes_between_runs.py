"""Issue 17: nothing lost when things change between runs (clocks, config, segments, floor).

Each test runs the tap against the stand-in as a user's daily runs would, and checks that every
row written as complete is the whole bucket's truth, that the union of the runs is complete,
that no bookmark passes a bucket not written in full, and that the user is told where telling
is needed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from klaviyo_standin import LeaveOut, StandinServer, StandinSettings
from tap_klaviyo_segments.errors import StateMismatchError
from tap_klaviyo_segments.settings import STATISTICS
from tests.tap_runner import base_config, run_tap

SERIES = "/api/segment-series-reports"
VALUES = "/api/segment-values-reports"
LATE_EVENING = datetime(2026, 11, 27, 23, 55)  # account time (UTC)


def utc(local: datetime) -> datetime:
    return local.replace(tzinfo=timezone.utc)


def calls(server: StandinServer, path: str) -> int:
    return sum(1 for e in server.report_calls() if e.path.endswith(path))


def truth(server: StandinServer, sid: str, interval: str, start: datetime, end: datetime):
    return dict(server.account.series(sid, interval, start, end))


def rows_by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["segment_id"], r["interval"], r["date_time"]): r for r in rows}


def assert_complete_rows_true(server: StandinServer, rows: list[dict[str, Any]]) -> None:
    """Every row written as complete holds the whole bucket's numbers (the stand-in's truth)."""
    for row in rows:
        if not row["is_complete"]:
            continue
        day = datetime.fromisoformat(row["date_time"]).replace(tzinfo=None)
        step = timedelta(hours=1) if row["interval"] == "hourly" else timedelta(days=1)
        expected = truth(server, row["segment_id"], row["interval"], day, day + step)
        stats = expected[row["date_time"]]
        assert {k: row[k] for k in STATISTICS} == stats, row


def account_of(segment_count: int):
    settings = StandinSettings(
        segment_count=segment_count, seed=17, now=LATE_EVENING, rate_limits_enabled=False
    )
    return StandinServer(settings)


@pytest.fixture
def server():
    with account_of(3) as srv:
        yield srv


def config(server: StandinServer, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "segment_ids": server.account.segment_ids()[:2],
        "start_date": "2026-11-20",
        "series_intervals": ["hourly", "daily"],
        "values_timeframes": ["today"],
        "lookback_days": 0,
    }
    return base_config(server.url, **{**settings, **overrides})


def test_a_tap_clock_ahead_of_klaviyos_never_writes_a_partial_bucket_as_complete(server):
    """The tap's clock says 00:05 on the 28th; Klaviyo's (its Date header) 23:55 on the 27th."""
    cfg = config(server)
    first = run_tap(cfg, now=utc(LATE_EVENING + timedelta(minutes=10)))
    rows = first.records["segment_series"]
    late = [r for r in rows if r["date_time"].startswith(("2026-11-27T00", "2026-11-27T23"))]
    day_27 = [r for r in rows if r["interval"] == "daily" and r["bucket_date"] == "2026-11-27"]
    hour_23 = [r for r in late if r["interval"] == "hourly" and "T23:" in r["date_time"]]
    assert day_27
    assert hour_23
    assert not any(r["is_complete"] for r in day_27 + hour_23), "not ended on Klaviyo's clock"
    assert_complete_rows_true(server, rows)
    assert {r["as_of_date"] for r in first.records["segment_values"]} == {"2026-11-27"}
    skew = [line for line in first.logs.splitlines() if "Klaviyo's clock" in line]
    assert len(skew) == 1, skew
    assert "-600 s" in skew[0]
    # The next run, when both clocks have passed midnight: the day is read again, complete.
    server.settings.now = LATE_EVENING + timedelta(minutes=20)
    second = run_tap(cfg, state=first.final_state, now=utc(LATE_EVENING + timedelta(minutes=20)))
    again = rows_by_key(second.records["segment_series"])
    for row in day_27 + hour_23:
        key = (row["segment_id"], row["interval"], row["date_time"])
        assert again[key]["is_complete"], key
    assert_complete_rows_true(server, second.records["segment_series"])


def test_a_tap_clock_behind_klaviyos_dates_values_by_klaviyos_day(server):
    """Just after midnight on Klaviyo's clock, a tap 10 minutes behind still says yesterday."""
    server.settings.now = LATE_EVENING + timedelta(minutes=10)  # 00:05 on the 28th
    result = run_tap(config(server), now=utc(LATE_EVENING), select=("segment_values",))
    assert {r["as_of_date"] for r in result.records["segment_values"]} == {"2026-11-28"}


def test_a_timezone_change_stops_before_any_row_with_the_steps(server):
    first = run_tap(config(server), now=utc(LATE_EVENING), select=("segment_series",))
    assert first.final_state["bookmarks"]["segment_series"]["read_with"]["account_timezone"] == (
        "UTC"
    )
    server.clear_log()
    result = run_tap(
        config(server, account_timezone="Europe/Berlin"),
        state=first.final_state,
        now=utc(LATE_EVENING),
        select=("segment_series",),
        allow_error=True,
    )
    assert isinstance(result.error, StateMismatchError)
    message = str(result.error)
    assert "account_timezone changed from UTC to Europe/Berlin" in message
    assert "meltano state clear" in message
    assert "segment_series table" in message
    assert "segment_series" not in result.records
    assert calls(server, SERIES) == 0, "the stop comes before any report call"
    assert (
        result.states[-1]["bookmarks"]["segment_series"]["partitions"]
        == (first.final_state["bookmarks"]["segment_series"]["partitions"])
    )


def test_an_earlier_start_date_fills_the_gap(server):
    later = config(server, series_intervals=["daily"], start_date="2026-11-24")
    first = run_tap(later, now=utc(LATE_EVENING), select=("segment_series",))
    earlier = config(server, series_intervals=["daily"], start_date="2026-11-01")
    second = run_tap(
        earlier, state=first.final_state, now=utc(LATE_EVENING), select=("segment_series",)
    )
    assert "start_date moved earlier" in second.logs
    union = rows_by_key(first.records["segment_series"])
    union.update(rows_by_key(second.records["segment_series"]))
    for sid in earlier["segment_ids"]:
        days = truth(server, sid, "daily", datetime(2026, 11, 1), LATE_EVENING)
        got = {k[2]: v for k, v in union.items() if k[0] == sid}
        assert set(got) == set(days), "every day from the new start_date is loaded"
        for stamp, stats in days.items():
            assert {k: got[stamp][k] for k in STATISTICS} == stats


def test_state_from_fewer_statistics_is_read_again_with_all_four(server):
    """STATE written before read_with existed, by a config that asked for one statistic."""
    cfg = config(server, series_intervals=["daily"], statistics=["total_members"])
    first = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    legacy = first.final_state
    del legacy["bookmarks"]["segment_series"]["read_with"]
    server.clear_log()
    second = run_tap(cfg, state=legacy, now=utc(LATE_EVENING), select=("segment_series",))
    assert "lack members_added, members_removed, net_members_changed" in second.logs
    rows = second.records["segment_series"]
    assert {r["bucket_date"] for r in rows} >= {"2026-11-20", "2026-11-27"}
    assert all(r["members_added"] is not None for r in rows)
    # Recorded now: the run after reads only what is new.
    server.clear_log()
    third = run_tap(
        cfg, state=second.final_state, now=utc(LATE_EVENING), select=("segment_series",)
    )
    assert "read again" not in third.logs
    assert calls(server, SERIES) == 1


def test_a_deleted_segment_loses_its_bookmarks_once(server):
    """A partition of a segment the account no longer lists is dropped, with one INFO line."""
    cfg = config(server, series_intervals=["daily"])
    del cfg["segment_ids"]  # report on the listed segments
    first = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    state = first.final_state
    partitions = state["bookmarks"]["segment_series"]["partitions"]
    ghost = {**partitions[0], "context": {**partitions[0]["context"], "segment_id": "Gone42"}}
    partitions.append(ghost)
    second = run_tap(cfg, state=state, now=utc(LATE_EVENING), select=("segment_series",))
    assert "no longer lists (deleted): Gone42" in second.logs
    kept = second.final_state["bookmarks"]["segment_series"]["partitions"]
    assert "Gone42" not in {p["context"]["segment_id"] for p in kept}
    third = run_tap(
        cfg, state=second.final_state, now=utc(LATE_EVENING), select=("segment_series",)
    )
    assert "no longer lists" not in third.logs


def test_a_spent_budget_ends_with_state_after_every_schema(server):
    cfg = config(server, report_calls_per_day=0)
    result = run_tap(cfg, now=utc(LATE_EVENING))
    assert result.messages[-1]["type"] == "STATE"
    assert calls(server, SERIES) + calls(server, VALUES) == 0


# ----- with the stand-in's switches for issue 17 ----------------------------------------------

BACKFILL_START = "2026-06-01"  # 180 days before LATE_EVENING: 3 daily windows


def daily_backfill(server: StandinServer, **overrides: Any) -> dict[str, Any]:
    return config(
        server, series_intervals=["daily"], start_date=BACKFILL_START, lookback_days=2, **overrides
    )


def assert_union_exact(server: StandinServer, results: list[Any], ids: list[str]) -> None:
    union: dict[tuple[str, str, str], dict[str, Any]] = {}
    for result in results:
        union.update(rows_by_key(result.records.get("segment_series", [])))
    start = datetime.fromisoformat(BACKFILL_START)
    for sid in ids:
        days = truth(server, sid, "daily", start, server.account.now_local())
        got = {k[2]: v for k, v in union.items() if k[0] == sid}
        assert set(got) == set(days), f"{sid}: {len(set(days) - set(got))} days missing"
        for stamp, stats in days.items():
            assert {k: got[stamp][k] for k in STATISTICS} == stats, (sid, stamp)


def test_a_segment_left_out_of_one_window_is_asked_again_in_the_same_run(server):
    sid = server.account.segment_ids()[0]
    server.settings.leave_out.append(LeaveOut(segment_ids=[sid], call=1, times=1))
    cfg = daily_backfill(server)
    result = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    assert_union_exact(server, [result], cfg["segment_ids"])
    assert calls(server, SERIES) == 4, "3 windows, and the first again for the left-out segment"
    assert "asking for them again" in result.logs


def test_a_segment_left_out_for_good_keeps_its_bookmark_before_that_window(server):
    sid = server.account.segment_ids()[0]
    server.settings.leave_out.append(LeaveOut(segment_ids=[sid], window_start=date(2026, 6, 1)))
    cfg = daily_backfill(server)
    first = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    assert sid not in {r["segment_id"] for r in first.records["segment_series"]}
    assert "their bookmarks stay before it, so the next run asks again" in first.logs
    kept = {
        p["context"]["segment_id"]: p.get("replication_key_value")
        for p in first.final_state["bookmarks"]["segment_series"]["partitions"]
    }
    assert kept.get(sid) is None, "never moved past the window it was left out of"
    server.settings.leave_out.clear()
    second = run_tap(
        cfg, state=first.final_state, now=utc(LATE_EVENING), select=("segment_series",)
    )
    assert_union_exact(server, [first, second], cfg["segment_ids"])


def test_a_later_data_floor_is_learned_and_kept(server):
    server.settings.data_floor = date(2023, 6, 21)
    cfg = config(server, series_intervals=["daily", "weekly"], start_date="2023-06-01")
    cfg.update(end_date="2023-09-30", segment_ids=server.account.segment_ids()[:1])
    first = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    floor_lines = [x for x in first.logs.splitlines() if "no segment data before 2023-06-21" in x]
    assert len(floor_lines) == 1, floor_lines
    assert first.final_state["bookmarks"]["segment_series"]["data_floor"] == "2023-06-21"
    rows = first.records["segment_series"]
    daily = sorted(r["bucket_date"] for r in rows if r["interval"] == "daily")
    assert daily[0] == "2023-06-21"
    assert daily[-1] == "2023-09-30"
    first_week = min((r for r in rows if r["interval"] == "weekly"), key=lambda r: r["date_time"])
    assert first_week["is_complete"] is False, "the week holding the floor is read cut short"
    assert all(r["is_complete"] for r in rows if r["interval"] == "daily")
    refusals = [e for e in server.log if e.status == 400]
    assert len(refusals) == 1, "learned once, then kept: the daily plan never asks again"
    server.clear_log()
    again = run_tap(cfg, state=first.final_state, now=utc(LATE_EVENING), select=("segment_series",))
    assert [e for e in server.log if e.status == 400] == []
    assert again.error is None


@pytest.fixture
def big_server():
    """More than 100 active segments: reports for the whole account."""
    with account_of(130) as srv:
        yield srv


def test_a_data_floor_is_not_a_refusal_of_whole_account_calls(big_server):
    big_server.settings.data_floor = date(2023, 6, 21)
    ids = [s["id"] for s in big_server.account.segments() if s["is_active"]]
    cfg = config(big_server, series_intervals=["daily"], start_date="2023-06-01")
    cfg.update(end_date="2023-07-31", segment_ids=ids)
    result = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    assert "whole_account_calls" not in result.final_state["bookmarks"]["segment_series"]
    series = [e for e in big_server.log if e.path.endswith(SERIES)]
    assert [e.status for e in series] == [400, 200], "the floor's 400, then one call"
    assert all("filter" not in e.body["data"]["attributes"] for e in series), "whole account"


def test_an_unknown_id_costs_no_fallback_call_after_the_first_run(big_server):
    ids = [s["id"] for s in big_server.account.segments() if s["is_active"]]
    cfg = config(big_server, series_intervals=["daily"], segment_ids=[*ids, "Zzz999"])
    first = run_tap(cfg, now=utc(LATE_EVENING))
    assert first.final_state["unknown_segments"] == ["Zzz999"]
    big_server.clear_log()
    second = run_tap(cfg, state=first.final_state, now=utc(LATE_EVENING))
    assert calls(big_server, SERIES) == 1
    assert calls(big_server, VALUES) == 1
    assert "Zzz999" not in second.logs.replace("unknown_segments", "")


def test_a_segment_deleted_in_klaviyo_drops_its_bookmarks(server):
    cfg = daily_backfill(server)
    del cfg["segment_ids"]
    first = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    gone = server.account.segment_ids()[0]
    assert gone in {
        p["context"]["segment_id"]
        for p in first.final_state["bookmarks"]["segment_series"]["partitions"]
    }
    server.settings.deleted_segment_ids.append(gone)
    second = run_tap(
        cfg, state=first.final_state, now=utc(LATE_EVENING), select=("segment_series",)
    )
    assert f"no longer lists (deleted): {gone}" in second.logs
    kept = second.final_state["bookmarks"]["segment_series"]["partitions"]
    assert gone not in {p["context"]["segment_id"] for p in kept}


def test_a_timezone_change_in_klaviyo_is_refused_then_followed_after_the_steps(server):
    """The owner changes the account's zone: the tap refuses the answers, the user follows."""
    cfg = config(server, series_intervals=["daily"])
    first = run_tap(cfg, now=utc(LATE_EVENING), select=("segment_series",))
    server.settings.timezone = "Europe/Berlin"
    refused = run_tap(
        cfg,
        state=first.final_state,
        now=utc(LATE_EVENING),
        select=("segment_series",),
        allow_error=True,
    )
    assert "account_timezone" in str(refused.error)
    moved = config(server, series_intervals=["daily"], account_timezone="Europe/Berlin")
    stopped = run_tap(
        moved,
        state=first.final_state,
        now=utc(LATE_EVENING),
        select=("segment_series",),
        allow_error=True,
    )
    assert isinstance(stopped.error, StateMismatchError)
    assert "segment_series" not in stopped.records
    fresh = run_tap(moved, now=utc(LATE_EVENING), select=("segment_series",))  # state cleared
    pairs = [(r["segment_id"], r["bucket_date"]) for r in fresh.records["segment_series"]]
    assert len(pairs) == len(set(pairs)), "one row per segment and day"
    assert all(r["date_time"].endswith("+01:00") for r in fresh.records["segment_series"])
