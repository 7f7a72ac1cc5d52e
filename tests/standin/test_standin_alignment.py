"""The stand-in's bucket alignments and answer faults, as the tap's answer checks meet them."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

import pytest

from klaviyo_standin import StandinServer

from .conftest import SERIES, post, report_body, settings

WEDNESDAY = {"start": "2026-09-02T00:00:00+00:00", "end": "2026-10-20T23:59:59+00:00"}


def labels(server, interval="weekly", timeframe=WEDNESDAY, **extra):
    response = post(server, SERIES, report_body(timeframe=timeframe, interval=interval, **extra))
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]


@pytest.mark.parametrize(
    ("alignment", "first"),
    [("start", date(2026, 9, 2)), ("monday", date(2026, 8, 31)), ("sunday", date(2026, 8, 30))],
)
def test_week_alignments_cut_weeks_their_way(alignment, first):
    with StandinServer(settings(week_alignment=alignment)) as server:
        stamps = [datetime.fromisoformat(d).date() for d in labels(server)["date_times"]]
    # Calendar weeks label the first bucket with the week's own start, before the timeframe's.
    assert stamps[0] == first
    assert all((b - a).days == 7 for a, b in itertools.pairwise(stamps))
    assert stamps[-1] <= date(2026, 10, 20) < stamps[-1] + timedelta(days=7)


def test_weekly_labels_are_mondays_by_default_as_klaviyo_answered():
    """Klaviyo's recorded weekly ``last_30_days`` answer of 2026-09-04 (API notes, the end)."""
    with StandinServer(settings(now=datetime(2026, 9, 4, 15, 0))) as server:
        assert server.settings.week_alignment == "monday"
        weekly = labels(server, timeframe={"key": "last_30_days"})
        daily = labels(server, "daily", timeframe={"key": "last_30_days"})
        body = report_body(timeframe={"key": "last_30_days"}, interval="weekly")
        first_bucket = server.account.series_report(
            server.account.segment_ids()[:1],
            "weekly",
            server.account.window_for("last_30_days"),
        )
    assert [d[:10] for d in weekly["date_times"]] == [
        "2026-08-03",
        "2026-08-10",
        "2026-08-17",
        "2026-08-24",
        "2026-08-31",
    ]
    assert all(datetime.fromisoformat(d).weekday() == 0 for d in weekly["date_times"])
    assert first_bucket[0] == weekly["date_times"], "the ground truth cuts the same weeks"
    # Daily answers stay as Klaviyo's were: 31 buckets, today's unfinished day included.
    assert len(daily["date_times"]) == 31
    assert (daily["date_times"][0][:10], daily["date_times"][-1][:10]) == (
        "2026-08-05",
        "2026-09-04",
    )
    assert body["data"]["attributes"]["interval"] == "weekly"


def test_a_first_week_cut_by_the_timeframe_counts_only_its_part_inside_it():
    """The Monday-labelled first bucket holds the changes from the timeframe start on only."""
    with StandinServer(settings()) as server:
        sid = server.account.segment_ids()[0]
        answer = labels(server, filter=f'equals(segment_id,"{sid}")')
        added = answer["results"][0]["statistics"]["members_added"][0]
        week = {"end_inclusive": False}
        inside = server.account.values(sid, (datetime(2026, 9, 2), datetime(2026, 9, 7)), **week)
        whole = server.account.values(sid, (datetime(2026, 8, 31), datetime(2026, 9, 7)), **week)
    assert answer["date_times"][0].startswith("2026-08-31")
    assert added == inside["members_added"]
    assert whole["members_added"] > added, "the days before the timeframe are not counted"


@pytest.mark.parametrize(
    ("alignment", "expected"),
    [
        ("calendar", ["2025-01-31", "2025-02-01", "2025-03-01", "2025-04-01"]),
        ("start", ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"]),
    ],
)
def test_month_alignments_cut_months_their_way(alignment, expected):
    timeframe = {"start": "2025-01-31T00:00:00+00:00", "end": "2025-05-15T00:00:00+00:00"}
    with StandinServer(settings(month_alignment=alignment)) as server:
        stamps = [d[:10] for d in labels(server, "monthly", timeframe)["date_times"]]
    assert stamps[:4] == expected


def test_weekly_series_over_52_weeks_are_refused():
    timeframe = {"start": "2025-01-01T00:00:00+00:00", "end": "2025-12-31T00:00:01+00:00"}
    with StandinServer(settings()) as server:
        response = post(server, SERIES, report_body(timeframe=timeframe, interval="weekly"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/data/attributes/interval"


@pytest.mark.parametrize(
    ("kind", "value", "check"),
    [
        (
            "statistic-missing",
            None,
            lambda a: "total_members" not in a["results"][0]["statistics"],
        ),
        ("statistic-null", None, lambda a: a["results"][0]["statistics"]["total_members"] is None),
        ("leading-missing", 2, lambda a: a["date_times"][0].startswith("2026-09-14")),
        ("empty-date-times", None, lambda a: a["date_times"] == []),
        ("offset", 2, lambda a: a["date_times"][0] == "2026-08-31T00:00:00+02:00"),
    ],
)
def test_answer_faults_corrupt_one_answer_then_answers_are_whole_again(kind, value, check):
    with StandinServer(settings()) as server:
        server.push_script([(kind, value)])
        assert check(labels(server))
        clean = labels(server)
        assert clean["date_times"][0] == "2026-08-31T00:00:00+00:00"
        assert len(clean["results"][0]["statistics"]["total_members"]) == 8
        assert server.log[0].fault == f"script:{kind}"


def test_the_stand_in_and_the_tap_know_the_same_klaviyo_enums():
    """Two packages, one contract (Klaviyo's OpenAPI enums): they must not drift apart."""
    from klaviyo_standin import INTERVALS, STATISTICS, TIMEFRAME_KEYS
    from tap_klaviyo_segments import planning, settings

    assert TIMEFRAME_KEYS == settings.TIMEFRAME_KEYS
    assert STATISTICS == settings.STATISTICS
    assert INTERVALS == planning.INTERVALS
