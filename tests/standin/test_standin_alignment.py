"""The stand-in's bucket alignments and answer faults, as the tap's answer checks meet them."""

from __future__ import annotations

import itertools
from datetime import date, datetime

import pytest

from klaviyo_standin import StandinServer

from .conftest import SERIES, post, report_body, settings

WEDNESDAY = {"start": "2026-09-02T00:00:00+00:00", "end": "2026-10-20T23:59:59+00:00"}


def labels(server, interval="weekly", timeframe=WEDNESDAY, **extra):
    response = post(server, SERIES, report_body(timeframe=timeframe, interval=interval, **extra))
    assert response.status_code == 200, response.text
    return response.json()["data"]["attributes"]


@pytest.mark.parametrize(
    ("alignment", "second"),
    [("start", date(2026, 9, 9)), ("monday", date(2026, 9, 7)), ("sunday", date(2026, 9, 6))],
)
def test_week_alignments_cut_weeks_their_way(alignment, second):
    with StandinServer(settings(week_alignment=alignment)) as server:
        stamps = [datetime.fromisoformat(d).date() for d in labels(server)["date_times"]]
    assert stamps[0] == date(2026, 9, 2), "the first bucket is labelled at the timeframe start"
    assert stamps[1] == second
    assert all((b - a).days == 7 for a, b in itertools.pairwise(stamps[1:]))


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
        ("leading-missing", 2, lambda a: a["date_times"][0].startswith("2026-09-16")),
        ("empty-date-times", None, lambda a: a["date_times"] == []),
        ("offset", 2, lambda a: a["date_times"][0] == "2026-09-02T00:00:00+02:00"),
    ],
)
def test_answer_faults_corrupt_one_answer_then_answers_are_whole_again(kind, value, check):
    with StandinServer(settings()) as server:
        server.push_script([(kind, value)])
        assert check(labels(server))
        clean = labels(server)
        assert clean["date_times"][0] == "2026-09-02T00:00:00+00:00"
        assert len(clean["results"][0]["statistics"]["total_members"]) == 7
        assert server.log[0].fault == f"script:{kind}"


def test_the_stand_in_and_the_tap_know_the_same_klaviyo_enums():
    """Two packages, one contract (Klaviyo's OpenAPI enums): they must not drift apart."""
    from klaviyo_standin import INTERVALS, STATISTICS, TIMEFRAME_KEYS
    from tap_klaviyo_segments import planning, settings

    assert TIMEFRAME_KEYS == settings.TIMEFRAME_KEYS
    assert STATISTICS == settings.STATISTICS
    assert INTERVALS == planning.INTERVALS
