"""Never a wrong row: every answer is checked, and Klaviyo's bucket grid is learned from it.

Against the stand-in in each bucket alignment Klaviyo might use, and with each way an answer
can be incomplete or shifted, the tap writes only whole-bucket truths as complete, reads every
bucket from start_date on, and never moves a bookmark past a bucket it did not write.
"""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timedelta, timezone

import pytest
from singer_sdk.exceptions import FatalAPIError

from klaviyo_standin import StandinServer, StandinSettings
from tap_klaviyo_segments.errors import MalformedResponseError
from tests.tap_runner import SyncResult, base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)  # a Saturday
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)
SEGMENTS = 3
STATS = ("total_members", "members_added", "members_removed", "net_members_changed")


@pytest.fixture(scope="module")
def standin_settings():
    """This module's account, served by the shared ``standin`` fixture (tests/conftest.py)."""
    return StandinSettings(segment_count=6, seed=5, now=NOW_LOCAL, rate_limits_enabled=False)


@pytest.fixture(autouse=True)
def _fresh(standin):
    standin.clear_log()
    standin.settings.week_alignment = "monday"
    standin.settings.month_alignment = "calendar"
    standin.settings.faults.script.clear()


def series_calls(server) -> int:
    return sum(1 for e in server.report_calls() if e.path.endswith("segment-series-reports"))


def config(server, interval: str, start: date, **overrides) -> dict:
    return base_config(
        server.url,
        segment_ids=server.account.segment_ids()[:SEGMENTS],
        series_intervals=[interval],
        start_date=start.isoformat(),
        retry_initial_wait_seconds=0.001,
        max_retries=1,
        **overrides,
    )


def first_bucket_start(interval: str, alignment: str, start: date) -> datetime:
    """Where the bucket that holds ``start`` begins (independent of the tap's planner)."""
    if interval == "weekly" and alignment in ("monday", "start"):
        # Steps from the timeframe start too: the tap starts its windows on Mondays, so the
        # weeks Klaviyo then cuts are the calendar weeks from Monday.
        start -= timedelta(days=start.weekday())
    elif interval == "weekly" and alignment == "sunday":
        start -= timedelta(days=(start.weekday() + 1) % 7)
    elif interval == "monthly":
        # Calendar months; with steps from the timeframe start too, since the tap starts its
        # windows on the 1st: the buckets Klaviyo then cuts are the calendar months.
        start = start.replace(day=1)
    return datetime.combine(start, datetime.min.time())


def truth(server, sid: str, interval: str, first: datetime) -> list[tuple]:
    """The stand-in's own buckets from ``first`` to now, each with its completeness."""
    series = server.account.series(
        sid, interval, first, NOW_LOCAL, alignment=server.settings.alignment
    )
    last = len(series) - 1
    return [
        (stamp, *(stats[name] for name in STATS), position < last)
        for position, (stamp, stats) in enumerate(series)
    ]


def rows_of(result: SyncResult, sid: str) -> list[tuple]:
    rows = [r for r in result.records.get("segment_series", []) if r["segment_id"] == sid]
    return [(r["date_time"], *(r[name] for name in STATS), r["is_complete"]) for r in rows]


def assert_exact(server, result: SyncResult, interval: str, first: datetime) -> int:
    buckets = 0
    for sid in server.account.segment_ids()[:SEGMENTS]:
        expected = truth(server, sid, interval, first)
        assert rows_of(result, sid) == expected, sid
        buckets = len(expected)
    return buckets


WEEKDAYS = [date(2025, 9, 1) + timedelta(days=k) for k in range(7)]  # Monday .. Sunday


@pytest.mark.parametrize("alignment", ["start", "monday", "sunday"])
@pytest.mark.parametrize("start", WEEKDAYS, ids=lambda d: d.strftime("%a"))
def test_weekly_series_are_exact_on_every_alignment_from_any_weekday(standin, alignment, start):
    standin.settings.week_alignment = alignment
    result = run_tap(config(standin, "weekly", start), now=NOW_UTC, select=("segment_series",))
    first = first_bucket_start("weekly", alignment, start)
    buckets = assert_exact(standin, result, "weekly", first)
    minimum = math.ceil(buckets / 52)
    assert series_calls(standin) - minimum in (0, 1), "at most one call to learn the grid"
    learned = result.final_state["bookmarks"]["segment_series"].get("bucket_alignment", {})
    if series_calls(standin) > minimum:
        assert learned == {"weekly": alignment}
    # The next run knows the grid: it re-reads only the week in progress, in one call.
    standin.clear_log()
    again = run_tap(
        config(standin, "weekly", start),
        state=result.final_state,
        now=NOW_UTC,
        select=("segment_series",),
    )
    assert series_calls(standin) == 1
    assert "re-cuts" not in again.logs
    assert "now cuts" not in again.logs


MONTH_DAYS = [date(2025, 10, day) for day in (1, 2, 15, 28, 29, 30, 31)]


@pytest.mark.parametrize("alignment", ["calendar", "start"])
@pytest.mark.parametrize("start", MONTH_DAYS, ids=lambda d: f"day{d.day}")
def test_monthly_series_are_exact_on_every_alignment_from_any_day(standin, alignment, start):
    standin.settings.month_alignment = alignment
    result = run_tap(config(standin, "monthly", start), now=NOW_UTC, select=("segment_series",))
    first = first_bucket_start("monthly", alignment, start)
    buckets = assert_exact(standin, result, "monthly", first)
    assert series_calls(standin) == math.ceil(buckets / 11), "no call spent on the grid"


def test_a_grid_learned_mid_backfill_costs_one_call_and_is_kept_in_state(standin):
    standin.settings.week_alignment = "sunday"
    start = date(2024, 9, 4)  # a Wednesday: the tap's first guess (Monday weeks) is wrong
    result = run_tap(config(standin, "weekly", start), now=NOW_UTC, select=("segment_series",))
    buckets = assert_exact(standin, result, "weekly", datetime(2024, 9, 1))
    assert series_calls(standin) == math.ceil(buckets / 52) + 1
    assert result.final_state["bookmarks"]["segment_series"]["bucket_alignment"] == {
        "weekly": "sunday"
    }
    assert "follow the 'sunday' alignment" in result.logs


def test_a_fresh_weekly_backfill_on_monday_weeks_makes_the_minimum_calls(standin, logs):
    """Issue 19: Klaviyo's weeks are Mondays, the tap's first guess, so no call learns them."""
    assert standin.settings.week_alignment == "monday"
    start = date(2024, 9, 4)  # a Wednesday: its week began on Monday 2024-09-02
    result = run_tap(config(standin, "weekly", start), now=NOW_UTC, select=("segment_series",))
    buckets = assert_exact(standin, result, "weekly", datetime(2024, 9, 2))
    assert buckets == 117
    assert series_calls(standin) == math.ceil(buckets / 52) == 3
    for sid in standin.account.segment_ids()[:SEGMENTS]:
        labels = [datetime.fromisoformat(row[0]) for row in rows_of(result, sid)]
        assert {label.weekday() for label in labels} == {0}, "every weekly label is a Monday"
    assert "bucket_alignment" not in result.final_state["bookmarks"]["segment_series"]
    assert "follow the" not in result.logs
    assert not [line for line in logs.at(logging.INFO) if "alignment" in line]
    assert any("segment_series" in line for line in logs.at(logging.INFO)), "INFO was captured"


@pytest.mark.parametrize(
    ("stand_in_zone", "configured"),
    [("Europe/Berlin", "UTC"), ("UTC", "America/New_York")],
)
def test_labels_in_another_offset_stop_the_run_before_any_row(stand_in_zone, configured):
    settings = StandinSettings(
        segment_count=3, seed=5, now=NOW_LOCAL, rate_limits_enabled=False, timezone=stand_in_zone
    )
    with StandinServer(settings) as server:
        cfg = config(server, "daily", date(2026, 11, 1), account_timezone=configured)
        with pytest.raises(FatalAPIError) as raised:
            run_tap(cfg, now=NOW_UTC, select=("segment_series",))
        message = str(raised.value)
        assert "account_timezone" in message
        assert repr(configured) in message
        assert "No row of this answer was written" in message
        # Not retried: a config problem does not go away.
        assert series_calls(server) == 1


def test_the_offset_fault_names_the_offset_seen_and_the_one_expected(standin):
    standin.push_script([("offset", 1.0)])
    cfg = config(standin, "daily", date(2026, 11, 1))
    with pytest.raises(FatalAPIError) as raised:
        run_tap(cfg, now=NOW_UTC, select=("segment_series",))
    assert "UTC offset +01:00 (e.g. 2026-11-01T00:00:00+01:00)" in str(raised.value)
    assert "'UTC' has offset +00:00" in str(raised.value)


FAULTS = [
    ("statistic-missing", None, "is missing"),
    ("statistic-null", None, "is null"),
    ("leading-missing", 3.0, "3 leading daily buckets"),
    ("empty-date-times", None, "date_times is empty"),
]


@pytest.mark.parametrize(("kind", "value", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_fault_once_is_retried_and_the_rows_are_exact(standin, kind, value, words):
    start = date(2026, 7, 1)
    standin.push_script([("ok", None), (kind, value)])  # the second window's first answer
    result = run_tap(config(standin, "daily", start), now=NOW_UTC, select=("segment_series",))
    assert_exact(standin, result, "daily", datetime(2026, 7, 1))
    assert words in result.logs


@pytest.mark.parametrize(("kind", "value", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_a_lasting_fault_fails_the_run_and_a_rerun_from_its_state_completes_it(
    standin, kind, value, words
):
    first = datetime(2026, 7, 1)
    # The first window answers well; every answer to the second is broken (1 try + 1 retry).
    standin.push_script([("ok", None), (kind, value), (kind, value)])
    cfg = config(standin, "daily", first.date())
    faulty = run_tap(cfg, now=NOW_UTC, select=("segment_series",), allow_error=True)
    assert isinstance(faulty.error, MalformedResponseError)
    assert words in str(faulty.error)
    # Every row the faulty run wrote is the truth, and its last STATE came after them.
    for sid in standin.account.segment_ids()[:SEGMENTS]:
        written = rows_of(faulty, sid)
        assert written, "the first window was written"
        assert set(written) <= set(truth(standin, sid, "daily", first))
    assert faulty.messages[-1]["type"] == "STATE"
    # The rerun from that STATE fills in the rest: the union is exact and complete.
    rerun = run_tap(cfg, state=faulty.final_state, now=NOW_UTC, select=("segment_series",))
    for sid in standin.account.segment_ids()[:SEGMENTS]:
        union = {row[0]: row for row in rows_of(faulty, sid)}
        union.update({row[0]: row for row in rows_of(rerun, sid)})
        assert sorted(union.values()) == truth(standin, sid, "daily", first)


def test_the_bucket_in_progress_may_be_left_out_and_is_read_next_time():
    # Klaviyo may stop at its own "now": an answer without today's bucket is whole, and the
    # bookmark stays at today.
    behind = datetime(2026, 11, 27, 23, 59)
    settings = StandinSettings(segment_count=3, seed=5, now=behind, rate_limits_enabled=False)
    with StandinServer(settings) as server:
        result = run_tap(
            config(server, "daily", date(2026, 11, 20)), now=NOW_UTC, select=("segment_series",)
        )
    for sid in server.account.segment_ids()[:SEGMENTS]:
        assert [row[0][:10] for row in rows_of(result, sid)][-1] == "2026-11-27"
    partitions = result.final_state["bookmarks"]["segment_series"]["partitions"]
    # The lookback (2 days) counts on the earlier clock, Klaviyo's (23:59 on the 27th): the
    # 25th closed less than 2 days before it, so it is read again next time.
    assert {p["replication_key_value"][:10] for p in partitions} <= {"2026-11-25", "2026-11-28"}


def test_monthly_steps_from_the_31st_start_only_on_the_31st(standin):
    # Learned earlier (kept in STATE): Klaviyo steps months from the timeframe start.
    standin.settings.month_alignment = "start"
    start = date(2025, 1, 31)
    state = {"bookmarks": {"segment_series": {"bucket_alignment": {"monthly": "start"}}}}
    result = run_tap(
        config(standin, "monthly", start), state=state, now=NOW_UTC, select=("segment_series",)
    )
    buckets = assert_exact(standin, result, "monthly", datetime(2025, 1, 31))
    stamps = [row[0][:10] for row in rows_of(result, standin.account.segment_ids()[0])]
    assert stamps[:3] == ["2025-01-31", "2025-02-28", "2025-03-31"]
    assert series_calls(standin) == math.ceil(buckets / 10)


def test_a_bucket_before_klaviyos_first_day_is_never_complete(standin):
    # 2023-06-01 is a Thursday: its Monday week began before Klaviyo has data.
    standin.settings.week_alignment = "monday"
    state = {"bookmarks": {"segment_series": {"bucket_alignment": {"weekly": "monday"}}}}
    cfg = config(standin, "weekly", date(2023, 6, 1), end_date="2023-07-30")
    result = run_tap(cfg, state=state, now=NOW_UTC, select=("segment_series",))
    rows = rows_of(result, standin.account.segment_ids()[0])
    assert rows[0][0][:10] == "2023-05-29", "labelled at its week's start, as Klaviyo labels it"
    assert rows[0][-1] is False
    assert rows[1][0][:10] == "2023-06-05"
    assert all(row[-1] for row in rows[1:])
    assert rows[-1][0][:10] == "2023-07-24", "end_date's week is read whole"


@pytest.mark.parametrize("day", [date(2026, 3, 8), date(2026, 11, 1)], ids=["spring", "autumn"])
def test_hourly_series_across_a_dst_change_are_exact(day):
    settings = StandinSettings(
        segment_count=3,
        seed=5,
        now=NOW_LOCAL,
        rate_limits_enabled=False,
        timezone="America/New_York",
    )
    with StandinServer(settings) as server:
        first = datetime.combine(day - timedelta(days=1), datetime.min.time())
        cfg = config(
            server,
            "hourly",
            first.date(),
            account_timezone="America/New_York",
            end_date=(day + timedelta(days=1)).isoformat(),
        )
        result = run_tap(cfg, now=NOW_UTC, select=("segment_series",))
        for sid in server.account.segment_ids()[:SEGMENTS]:
            series = server.account.series(sid, "hourly", first, first + timedelta(days=3))
            expected = [(stamp, *(stats[name] for name in STATS), True) for stamp, stats in series]
            got = rows_of(result, sid)
            assert got == expected[: len(got)]
            assert len(got) == 71 + (day.month == 11) * 2
