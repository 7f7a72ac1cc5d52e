"""The stand-in's switches for issue 17, at the HTTP level: status, body and headers.

Each switch is a field of ``StandinSettings`` that a test may change on a running server,
between two tap runs: segments left out of a window's answer, Klaviyo's clock skewed (the
``Date`` header), a later data floor, a timezone change, a deleted segment.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest

from klaviyo_standin import Account, LeaveOut, StandinServer
from klaviyo_standin.__main__ import build_parser, settings_from_args
from klaviyo_standin.timeframes import floor_detail

from .conftest import HEADERS, NOW, SERIES, VALUES, get, post, report_body, settings

W1 = {"start": "2026-09-01T00:00:00+00:00", "end": "2026-09-30T23:59:59+00:00"}
W2 = {"start": "2026-10-01T00:00:00+00:00", "end": "2026-10-30T23:59:59+00:00"}


def answered(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["groupings"]["segment_id"] for r in response.json()["data"]["attributes"]["results"]]


def series(server, timeframe, **extra):
    return post(server, SERIES, report_body(timeframe=timeframe, **extra))


def date_header(response) -> datetime:
    return parsedate_to_datetime(response.headers["Date"])


# ----- a segment left out of a window's answer ---------------------------------------------------
def test_a_segment_left_out_of_one_window_always():
    with StandinServer(settings(segment_count=3)) as server:
        ids = server.account.segment_ids()
        server.settings.leave_out.append(
            LeaveOut(segment_ids=[ids[1]], window_start=datetime(2026, 9, 1))
        )
        first = series(server, W1)
        other = series(server, W2)
        again = series(server, W1)
        log = server.log
    assert answered(first) == [ids[0], ids[2]]
    assert len(first.json()["data"]["attributes"]["date_times"]) == 30, "labels stay whole"
    assert answered(other) == ids, "other windows are whole"
    assert answered(again) == [ids[0], ids[2]], "always: a retry of the window misses it too"
    assert [e.left_out for e in log] == [[ids[1]], None, [ids[1]]]
    assert [e.status for e in log] == [200, 200, 200]


def test_a_segment_left_out_of_the_first_answer_for_a_window_only():
    with StandinServer(settings(segment_count=3)) as server:
        ids = server.account.segment_ids()
        rule = LeaveOut(segment_ids=[ids[0]], window_start=date(2026, 9, 1), times=1)
        server.settings.leave_out.append(rule)
        filtered = f'any(segment_id,["{ids[0]}","{ids[2]}"])'
        first = series(server, W1, filter=filtered)
        retry = series(server, W1, filter=filtered)
    assert answered(first) == [ids[2]]
    assert answered(retry) == [ids[0], ids[2]], "the same window asked again is whole"
    assert rule.used == 1


def test_every_segment_left_out_of_the_nth_series_call():
    with StandinServer(settings(segment_count=3)) as server:
        server.settings.leave_out.append(LeaveOut(segment_ids=None, call=2))
        calls = [series(server, W1), series(server, W2), series(server, W1)]
        values = post(server, VALUES, report_body("values", timeframe=W1))
        log = server.log
    assert [len(answered(r)) for r in calls] == [3, 0, 3]
    empty = calls[1].json()["data"]["attributes"]
    assert empty["results"] == []
    assert len(empty["date_times"]) == 30, "results: [] with the window's labels"
    assert len(answered(values)) == 3, "values answers are counted apart and untouched"
    assert log[1].left_out == server.account.segment_ids()


def test_calls_are_counted_from_the_last_log_clearing():
    """The shared ``standin`` fixture clears its log per test: "the Nth call" is this test's."""
    with StandinServer(settings(segment_count=2)) as server:
        server.settings.leave_out.append(LeaveOut(segment_ids=None, call=1))
        assert answered(series(server, W1)) == []
        assert len(answered(series(server, W1))) == 2
        server.clear_log()
        assert answered(series(server, W2)) == []
        post(server, SERIES, report_body(timeframe={"key": "nope"}))  # a 400 is no answer
        assert len(answered(series(server, W2))) == 2


def test_a_segment_left_out_of_values_answers():
    with StandinServer(settings(segment_count=3)) as server:
        sid = server.account.segment_ids()[2]
        server.settings.leave_out.append(LeaveOut(segment_ids=[sid], report="values"))
        values = post(server, VALUES, report_body("values", timeframe={"key": "last_7_days"}))
        whole = series(server, W1)
    assert sid not in answered(values)
    assert sid in answered(whole)


def test_a_leave_out_rule_names_a_known_report_kind():
    with pytest.raises(ValueError, match="series, values or any"):
        LeaveOut(report="weekly")


# ----- Klaviyo's clock: the Date header and what has ended ---------------------------------------
def test_every_answer_carries_a_date_header_with_the_stand_ins_now():
    with StandinServer(settings(segment_count=3)) as server:
        responses = [
            get(server, "/api/segments"),
            series(server, W1),
            post(server, SERIES, report_body(timeframe={"key": "nope"})),
            get(server, "/api/segments", headers={**HEADERS, "Authorization": "Bearer x"}),
            get(server, "/api/nothing-here"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 400, 401, 404]
    expected = NOW.replace(tzinfo=timezone.utc)  # the account timezone is UTC
    assert {date_header(r) for r in responses} == {expected}


@pytest.mark.parametrize(
    ("skew", "klaviyo_now", "last_day"),
    [
        (0, datetime(2026, 11, 29, 0, 5), "2026-11-29"),
        (-600, datetime(2026, 11, 28, 23, 55), "2026-11-28"),
        (600, datetime(2026, 11, 29, 0, 15), "2026-11-29"),
    ],
)
def test_a_skewed_clock_moves_klaviyos_now_and_the_date_header(skew, klaviyo_now, last_day):
    with StandinServer(settings(segment_count=2, now=datetime(2026, 11, 29, 0, 5))) as server:
        server.settings.clock_skew_seconds = skew
        sid = server.account.segment_ids()[0]
        timeframe = {"start": "2026-11-27T00:00:00+00:00", "end": "2026-11-30T00:00:00+00:00"}
        daily = series(server, timeframe, filter=f'equals(segment_id,"{sid}")')
        today = post(
            server,
            VALUES,
            report_body("values", timeframe={"key": "today"}, filter=f'equals(segment_id,"{sid}")'),
        )
        truth_day = server.account.series(
            sid, "daily", datetime(2026, 11, 27), datetime(2026, 11, 30)
        )
        local_now = server.account.now_local()
    assert date_header(daily) == klaviyo_now.replace(tzinfo=timezone.utc)
    assert local_now == klaviyo_now
    attributes = daily.json()["data"]["attributes"]
    assert attributes["date_times"][-1][:10] == last_day, "no bucket after Klaviyo's now"
    assert [stamp for stamp, _ in truth_day] == attributes["date_times"], "truth follows the skew"
    # ``today`` is Klaviyo's today (before midnight with its clock 10 minutes behind), and it
    # holds what the last daily bucket holds as of Klaviyo's now.
    added_today = today.json()["data"]["attributes"]["results"][0]["statistics"]["members_added"]
    assert added_today == attributes["results"][0]["statistics"]["members_added"][-1]


def test_the_skew_follows_the_real_clock_when_now_is_not_fixed():
    with StandinServer(settings(now=None, segment_count=1)) as server:
        server.settings.clock_skew_seconds = 3600
        response = get(server, "/api/segments")
        real = datetime.now(timezone.utc)
    assert response.status_code == 200
    ahead = (date_header(response) - real).total_seconds()
    assert 3590 <= ahead <= 3601


def test_the_skew_changes_on_a_running_server():
    with StandinServer(settings(segment_count=1)) as server:
        first = get(server, "/api/segments")
        server.settings.clock_skew_seconds = -90
        second = get(server, "/api/segments")
    assert date_header(first) - date_header(second) == timedelta(seconds=90)


# ----- a later data floor ------------------------------------------------------------------------
def _floor_error(response, day: str):
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "invalid"
    assert error["detail"] == f"Cannot query for segment data before {day}"
    assert error["source"] == {"pointer": "/data/attributes/timeframe/start"}


@pytest.mark.parametrize("filtered", [True, False], ids=["filtered", "unfiltered"])
def test_a_later_data_floor_refuses_earlier_timeframes(filtered):
    floor = {"start": "2023-06-20T00:00:00+00:00", "end": "2023-07-20T00:00:00+00:00"}
    after = {"start": "2023-06-21T00:00:00+00:00", "end": "2023-07-20T00:00:00+00:00"}
    with StandinServer(settings(data_floor=date(2023, 6, 21), segment_count=3)) as server:
        extra = {"filter": f'equals(segment_id,"{server.account.segment_ids()[0]}")'}
        if not filtered:
            extra = {}
        _floor_error(series(server, floor, **extra), "June 21st, 2023")
        values = post(server, VALUES, report_body("values", timeframe=floor, **extra))
        _floor_error(values, "June 21st, 2023")
        weekly = series(server, after, interval="weekly", **extra)
        assert weekly.status_code == 200
        assert weekly.json()["data"]["attributes"]["date_times"][0][:10] == "2023-06-19"
        assert series(server, after, **extra).status_code == 200
        assert all(e.counted for e in server.log), "a 400 counts against the budget"


def test_the_floor_error_comes_before_a_refusal_of_unfiltered_reports():
    early = {"start": "2023-06-05T00:00:00+00:00", "end": "2023-07-05T00:00:00+00:00"}
    with StandinServer(settings(data_floor=date(2023, 6, 21), reject_unfiltered=True)) as server:
        _floor_error(series(server, early), "June 21st, 2023")
        refused = series(server, {**early, "start": "2023-06-21T00:00:00+00:00"})
    assert refused.json()["errors"][0]["source"] == {"pointer": "/data/attributes/filter"}


def test_the_default_floor_is_june_1st_2023():
    early = {"start": "2023-05-31T00:00:00+00:00", "end": "2023-06-30T00:00:00+00:00"}
    with StandinServer(settings()) as server:
        _floor_error(series(server, early), "June 1st, 2023")
        assert series(server, {**early, "start": "2023-06-01T00:00:00+00:00"}).status_code == 200


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (date(2023, 6, 1), "June 1st, 2023"),
        (date(2023, 6, 2), "June 2nd, 2023"),
        (date(2023, 6, 3), "June 3rd, 2023"),
        (date(2023, 6, 11), "June 11th, 2023"),
        (date(2023, 6, 12), "June 12th, 2023"),
        (date(2023, 6, 13), "June 13th, 2023"),
        (date(2023, 6, 21), "June 21st, 2023"),
        (date(2023, 6, 22), "June 22nd, 2023"),
        (date(2023, 7, 23), "July 23rd, 2023"),
        (date(2023, 8, 31), "August 31st, 2023"),
    ],
)
def test_floor_details_are_written_like_klaviyos(day, text):
    assert floor_detail(day) == f"Cannot query for segment data before {text}"


# ----- a timezone change between runs ------------------------------------------------------------
def test_a_timezone_change_moves_the_labels_and_keeps_the_history():
    hours_utc = {"start": "2026-11-20T00:00:00+00:00", "end": "2026-11-20T05:59:59+00:00"}
    hours_berlin = {"start": "2026-11-20T01:00:00+01:00", "end": "2026-11-20T06:59:59+01:00"}
    days = {"start": "2026-11-20T00:00:00+00:00", "end": "2026-11-24T23:59:59+00:00"}
    with StandinServer(settings(segment_count=3)) as server:
        listed = get(server, "/api/segments").json()["data"]
        before_hours = series(server, hours_utc, interval="hourly").json()["data"]["attributes"]
        before_days = series(server, days).json()["data"]["attributes"]
        server.settings.timezone = "Europe/Berlin"
        after_hours = series(server, hours_berlin, interval="hourly").json()["data"]["attributes"]
        after_days = series(server, days).json()["data"]["attributes"]
        relisted = get(server, "/api/segments").json()["data"]
        sid = server.account.segment_ids()[0]
        end = datetime(2026, 11, 24, 23, 59, 59)
        truth = server.account.series(sid, "daily", datetime(2026, 11, 20), end)
    assert before_days["date_times"][0] == "2026-11-20T00:00:00+00:00"
    assert after_days["date_times"][0] == "2026-11-20T00:00:00+01:00", "labels follow the zone"
    assert after_hours["date_times"][0] == "2026-11-20T01:00:00+01:00"
    # The same six UTC hours hold the same changes: the history did not move.
    assert after_hours["results"] == before_hours["results"]
    assert relisted == listed
    # Days are now cut at Berlin's midnights, and the ground truth agrees with the answer.
    assert after_days["results"] != before_days["results"]
    assert [s for s, _ in truth] == after_days["date_times"]
    answer = after_days["results"][0]["statistics"]["members_added"]
    assert [stats["members_added"] for _, stats in truth] == answer
    # A fresh account created in UTC and now in Berlin is the same ground truth.
    same = Account(3, 1, "Europe/Berlin", NOW, history_timezone="UTC")
    expected = same.series(sid, "daily", datetime(2026, 11, 20), end)
    assert expected == truth


def test_a_naive_now_stays_the_same_instant_after_a_timezone_change():
    with StandinServer(settings(segment_count=1)) as server:
        before = date_header(get(server, "/api/segments"))
        server.settings.timezone = "America/New_York"
        after = date_header(get(server, "/api/segments"))
        local = server.account.now_local()
    assert before == after == NOW.replace(tzinfo=timezone.utc)
    assert local == NOW - timedelta(hours=5)


# ----- a deleted segment -------------------------------------------------------------------------
def test_a_deleted_segment_is_neither_listed_nor_answered():
    with StandinServer(settings(segment_count=3)) as server:
        ids = server.account.segment_ids()
        gone = ids[1]
        before = series(server, W1, filter=f'equals(segment_id,"{gone}")')
        server.settings.deleted_segment_ids.append(gone)
        listed = [row["id"] for row in get(server, "/api/segments").json()["data"]]
        by_id = get(server, f"/api/segments/{gone}")
        unfiltered = series(server, W1)
        mixed = series(server, W1, filter=f'any(segment_id,["{gone}","{ids[2]}"])')
        only = series(server, W1, filter=f'equals(segment_id,"{gone}")')
        values = post(server, VALUES, report_body("values", filter=f'equals(segment_id,"{gone}")'))
        end = datetime(2026, 9, 30, 23, 59, 59)
        truth = server.account.series(gone, "daily", datetime(2026, 9, 1), end)
        all_ids = server.account.segment_ids(include_deleted=True)
    assert listed == [ids[0], ids[2]]
    assert by_id.status_code == 404
    assert by_id.json()["errors"][0]["code"] == "not_found"
    assert answered(unfiltered) == [ids[0], ids[2]]
    assert answered(mixed) == [ids[2]]
    assert answered(only) == [], "a filter naming only deleted ids answers 200 without them"
    assert len(only.json()["data"]["attributes"]["date_times"]) == 30
    assert answered(values) == []
    # The ground truth keeps the deleted segment's history from before its deletion.
    stats = before.json()["data"]["attributes"]["results"][0]["statistics"]
    assert [s["total_members"] for _, s in truth] == stats["total_members"]
    assert all_ids == ids


def test_a_deleted_segment_comes_back_when_the_switch_is_cleared():
    with StandinServer(settings(segment_count=2)) as server:
        gone = server.account.segment_ids()[0]
        server.settings.deleted_segment_ids = [gone]
        assert gone not in answered(series(server, W1))
        server.settings.deleted_segment_ids = []
        assert gone in answered(series(server, W1))


# ----- the command line ---------------------------------------------------------------------------
def test_the_switches_on_the_command_line():
    args = build_parser().parse_args(
        [
            "--clock-skew",
            "-600",
            "--data-floor",
            "2023-06-21",
            "--deleted-segments",
            "abc123, def456",
            "--leave-out",
            "abc123",
            "--leave-out-start",
            "2026-09-01",
            "--leave-out-times",
            "1",
        ]
    )
    cli = settings_from_args(args)
    assert cli.clock_skew_seconds == -600
    assert cli.data_floor == date(2023, 6, 21)
    assert cli.deleted_segment_ids == ["abc123", "def456"]
    assert cli.leave_out == [
        LeaveOut(segment_ids=["abc123"], window_start=datetime(2026, 9, 1), times=1)
    ]
    everything = settings_from_args(build_parser().parse_args(["--leave-out", "all"]))
    assert everything.leave_out == [LeaveOut(segment_ids=None)]
    defaults = settings_from_args(build_parser().parse_args([]))
    assert (defaults.clock_skew_seconds, defaults.data_floor, defaults.leave_out) == (
        0.0,
        date(2023, 6, 1),
        [],
    )
    assert defaults.week_alignment == "monday"
