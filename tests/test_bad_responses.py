"""Odd API bodies are parsed correctly or stop the run with a clear error, never wrong rows."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from datetime import datetime, timezone

import pytest
import requests
import responses

from tap_klaviyo_segments.errors import MalformedResponseError
from tests.tap_runner import base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)


# ----- API responses: parsed correctly or a clear stop, never wrong rows -----------------------

URL = "http://127.0.0.1:9"
SERIES = f"{URL}/api/segment-series-reports"
VALUES = f"{URL}/api/segment-values-reports"
SID = "AbC123"
DAYS = [f"2026-11-{d:02d}T00:00:00+00:00" for d in range(20, 29)]


def api_config(**overrides):
    config = base_config(
        URL,
        segment_ids=[SID],
        start_date="2026-11-20",
        retry_initial_wait_seconds=0.001,
        max_retries=1,
        values_timeframes=["last_7_days"],
    )
    config.update(overrides)
    return config


def series_doc(results, date_times=DAYS, **extra):
    return {
        "data": {
            "type": "segment-series-report",
            "id": "r1",
            "attributes": {"results": results, "date_times": date_times},
        },
        **extra,
    }


def result(sid, **stats):
    return {"groupings": {"segment_id": sid}, "statistics": stats}


def full_stats(n=9):
    return {
        "total_members": list(range(100, 100 + n)),
        "members_added": [2] * n,
        "members_removed": [1] * n,
        "net_members_changed": [1] * n,
    }


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def run_series(**overrides):
    return run_tap(api_config(**overrides), now=NOW_UTC, select=("segment_series",))


@responses.activate
def test_unknown_fields_everywhere_are_accepted():
    doc = series_doc(
        [
            {
                **result(SID, **full_stats(), future_statistic=[9] * 9),
                "dimensions": {"x": 1},
            }
        ],
        links={"self": SERIES},
        meta={"cursor": None, "new": True},
    )
    doc["data"]["relationships"] = {"segments": {}}
    doc["data"]["attributes"]["granularity"] = "day"
    responses.post(SERIES, json=doc)
    rows = run_series().records["segment_series"]
    assert [r["date_time"] for r in rows] == DAYS
    assert [r["total_members"] for r in rows] == list(range(100, 109))
    assert all("future_statistic" not in r for r in rows)


@responses.activate
def test_segments_not_asked_for_are_skipped_with_a_warning():
    responses.post(
        SERIES,
        json=series_doc([result(SID, **full_stats()), result("Intruder9", **full_stats())]),
    )
    outcome = run_series()
    assert {r["segment_id"] for r in outcome.records["segment_series"]} == {SID}
    assert "not asked for (Intruder9)" in outcome.logs


def values_doc(*results):
    return {"data": {"type": "segment-values-report", "attributes": {"results": list(results)}}}


VALUES_STATS = {"members_added": 3, "members_removed": 1, "net_members_changed": 2}


@responses.activate
def test_values_report_with_extra_ids_and_float_counts():
    responses.post(
        VALUES,
        json=values_doc(
            result(SID, total_members=79.0, **VALUES_STATS, extra="x"),
            result("Other1", total_members=5),
        ),
    )
    outcome = run_tap(api_config(), now=NOW_UTC, select=("segment_values",))
    rows = outcome.records["segment_values"]
    assert len(rows) == 1
    assert rows[0]["total_members"] == 79
    assert rows[0]["members_added"] == 3
    assert "not asked for (Other1)" in outcome.logs


@pytest.mark.parametrize("how", ["null", "missing"])
@responses.activate
def test_a_values_statistic_null_or_missing_fails_the_run_with_no_row(no_sleep, how):
    stats = {"total_members": 79, **VALUES_STATS}
    if how == "null":
        stats["members_added"] = None
    else:
        del stats["members_added"]
    responses.post(VALUES, json=values_doc(result(SID, **stats)))
    stdout = io.StringIO()
    with redirect_stdout(stdout), pytest.raises(MalformedResponseError) as raised:
        run_tap(api_config(), now=NOW_UTC, select=("segment_values",))
    assert f"statistic members_added of segment {SID} is {how}" in str(raised.value)
    assert '"RECORD"' not in stdout.getvalue()


BROKEN_BODIES = {
    "missing-data": (json.dumps({"links": {}}), 200, "no data.attributes"),
    "data-null": (json.dumps({"data": None}), 200, "no data.attributes"),
    "results-missing": (
        json.dumps({"data": {"attributes": {"date_times": DAYS}}}),
        200,
        "results is missing",
    ),
    "short-statistics": (
        json.dumps(series_doc([result(SID, **full_stats(8))])),
        200,
        "has 8 values for 9 date_times",
    ),
    "long-statistics": (
        json.dumps(series_doc([result(SID, **full_stats(10))])),
        200,
        "has 10 values for 9 date_times",
    ),
    "statistic-not-a-list": (
        json.dumps(series_doc([result(SID, total_members=5)])),
        200,
        "has int values",
    ),
    "text-count": (
        json.dumps(series_doc([result(SID, total_members=["1"] * 9)])),
        200,
        "is not a number",
    ),
    "fractional-count": (
        json.dumps(series_doc([result(SID, total_members=[1.5] * 9)])),
        200,
        "is not whole",
    ),
    "unparseable-date-time": (
        json.dumps(series_doc([result(SID, **full_stats())], date_times=["soon"] * 9)),
        200,
        "not an ISO 8601 date-time",
    ),
    "repeated-date-time": (
        json.dumps(series_doc([result(SID, **full_stats())], date_times=[DAYS[0]] * 9)),
        200,
        "increasing order",
    ),
    # A row without a requested statistic would be written as final: never (issue 9).
    "statistic-null-in-a-bucket": (
        json.dumps(
            series_doc([result(SID, **{**full_stats(), "total_members": [1, 2, None, *[3] * 6]})])
        ),
        200,
        "is not a number: None",
    ),
    "statistic-null": (
        json.dumps(series_doc([result(SID, **{**full_stats(), "members_added": None})])),
        200,
        f"statistic members_added of segment {SID} is null",
    ),
    "statistic-missing": (
        json.dumps(
            series_doc(
                [result(SID, **{k: v for k, v in full_stats().items() if k != "members_removed"})]
            )
        ),
        200,
        f"statistic members_removed of segment {SID} is missing",
    ),
    "leading-buckets-missing": (
        json.dumps(
            series_doc(
                [result(SID, **{k: v[2:] for k, v in full_stats().items()})], date_times=DAYS[2:]
            )
        ),
        200,
        "2 leading daily buckets",
    ),
    "empty-date-times": (
        json.dumps(series_doc([result(SID, **full_stats(0))], date_times=[])),
        200,
        "date_times is empty",
    ),
    "duplicate-segment": (
        json.dumps(series_doc([result(SID, **full_stats()), result(SID, **full_stats())])),
        200,
        "appears twice",
    ),
    "not-json": ("{not json", 200, "body is not JSON"),
    "html-on-200": (
        "<!DOCTYPE html><html><body><h1>Access denied</h1></body></html>",
        200,
        "body is not JSON",
    ),
    "html-on-502": (
        "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        502,
        "HTTP 502",
    ),
    "empty-on-503": ("", 503, "HTTP 503"),
}


@pytest.mark.parametrize("case", list(BROKEN_BODIES))
@responses.activate
def test_broken_bodies_stop_the_run_with_a_clear_error_and_no_rows(no_sleep, case):
    body, status, words = BROKEN_BODIES[case]
    responses.post(SERIES, body=body, status=status, content_type="text/html")
    stdout = io.StringIO()
    with redirect_stdout(stdout), pytest.raises(Exception) as raised:
        run_series()
    assert words in str(raised.value)
    assert "HTTP" in str(raised.value) or "malformed" in str(raised.value)
    assert len(responses.calls) == 2, "retried once, then stopped"
    assert '"RECORD"' not in stdout.getvalue(), "no rows from a broken answer"
    if status == 200:
        assert isinstance(raised.value, MalformedResponseError)


@responses.activate
def test_a_broken_body_then_a_good_one_gives_exactly_the_good_rows(no_sleep):
    responses.post(SERIES, body="<html>proxy hiccup</html>", status=200)
    responses.post(SERIES, json=series_doc([result(SID, **full_stats())]))
    rows = run_series().records["segment_series"]
    assert [r["total_members"] for r in rows] == list(range(100, 109))


@responses.activate
def test_a_timeout_then_a_good_answer_gives_the_rows(no_sleep):
    responses.post(SERIES, body=requests.Timeout("read timed out"))
    responses.post(SERIES, json=series_doc([result(SID, **full_stats())]))
    assert len(run_series().records["segment_series"]) == 9


@responses.activate
def test_a_segment_missing_from_the_answer_keeps_its_bookmark_and_is_named():
    other = "Zzz999"
    responses.post(SERIES, json=series_doc([result(SID, **full_stats())]))
    listing = {
        "data": [
            {"type": "segment", "id": sid, "attributes": {"is_active": True}}
            for sid in (SID, other)
        ],
        "links": {},
    }
    responses.get(f"{URL}/api/segments", json=listing)
    outcome = run_series(segment_ids=[SID, other])
    assert {r["segment_id"] for r in outcome.records["segment_series"]} == {SID}
    partitions = outcome.final_state["bookmarks"]["segment_series"]["partitions"]
    moved = {p["context"]["segment_id"] for p in partitions if p.get("replication_key_value")}
    assert moved == {SID}, "the unanswered segment must be asked again next run"
    posts = [c for c in responses.calls if c.request.method == "POST"]
    assert len(posts) == 2, "the left-out segment is asked again once, in the same run"
    assert other in outcome.logs
