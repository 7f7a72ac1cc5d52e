"""How the tap answers Klaviyo's statuses: retries, waits, clean stops and clear messages.

Recorded-style responses (the ``responses`` library), so each status is exact.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses

from tap_klaviyo_segments.errors import KlaviyoAPIError
from tests.tap_runner import API_KEY, run_tap

URL = "http://127.0.0.1:9"
SERIES = f"{URL}/api/segment-series-reports"
NOW = datetime(2026, 11, 28, 10, 30, tzinfo=timezone.utc)


def series_body(request: requests.PreparedRequest) -> dict:
    """A well-formed daily series answer for whatever window and ids were asked."""
    attributes = json.loads(request.body)["data"]["attributes"]
    start = datetime.fromisoformat(attributes["timeframe"]["start"])
    end = datetime.fromisoformat(attributes["timeframe"]["end"])
    days = (end.date() - start.date()).days + 1
    date_times = [(start + timedelta(days=i)).isoformat() for i in range(days)]
    segment_ids = (
        json.loads(attributes["filter"].removeprefix("any(segment_id,").removesuffix(")"))
        if attributes["filter"].startswith("any")
        else [attributes["filter"].split('"')[1]]
    )
    results = [
        {
            "groupings": {"segment_id": sid},
            "statistics": {name: list(range(days)) for name in attributes["statistics"]},
        }
        for sid in segment_ids
    ]
    return {
        "data": {
            "type": "segment-series-report",
            "id": "r1",
            "attributes": {"results": results, "date_times": date_times},
        },
        "links": {"self": SERIES},
    }


def ok(request: requests.PreparedRequest):
    return 200, {}, json.dumps(series_body(request))


def config(**overrides):
    base = {
        "api_key": API_KEY,
        "api_url": URL,
        "segment_ids": ["AbC123"],
        "start_date": "2026-11-20",
        "report_calls_per_minute": 60_000,
        "report_calls_per_second": 1_000,
        "retry_initial_wait_seconds": 0.001,
        "max_retries": 3,
    }
    base.update(overrides)
    return base


@pytest.fixture
def sleeps(monkeypatch):
    """Record the waits instead of sleeping them."""
    waited: list[float] = []
    monkeypatch.setattr("time.sleep", waited.append)
    return waited


def run(**overrides):
    return run_tap(config(**overrides), now=NOW, select=("segment_series",))


def klaviyo_error(status: int, code: str, detail: str, pointer: str | None = None) -> str:
    error = {
        "id": "e1",
        "status": status,
        "code": code,
        "title": "Invalid input.",
        "detail": detail,
    }
    if pointer:
        error["source"] = {"pointer": pointer}
    return json.dumps({"errors": [error]})


@responses.activate
def test_4xx_shows_klaviyos_detail_and_pointer_and_never_the_key():
    responses.post(
        SERIES,
        status=400,
        body=klaviyo_error(
            400,
            "invalid",
            "Cannot query for segment data before June 1st, 2023",
            "/data/attributes/timeframe/start",
        ),
    )
    with pytest.raises(KlaviyoAPIError) as raised:
        run()
    message = str(raised.value)
    assert "Cannot query for segment data before June 1st, 2023" in message
    assert "/data/attributes/timeframe/start" in message
    assert "HTTP 400" in message
    assert API_KEY not in message
    assert len(responses.calls) == 1, "a 400 is not retried"


@pytest.mark.parametrize(
    ("status", "hint"),
    [(401, "set api_key to a Klaviyo private API key"), (403, "segments:read")],
)
@responses.activate
def test_auth_errors_say_what_to_fix(status, hint):
    responses.post(SERIES, status=status, body=klaviyo_error(status, "not_authenticated", "nope"))
    with pytest.raises(KlaviyoAPIError, match=hint) as raised:
        run()
    assert API_KEY not in str(raised.value)


@responses.activate
def test_429_waits_retry_after_then_succeeds(sleeps):
    responses.post(
        SERIES,
        status=429,
        headers={"Retry-After": "7"},
        body=klaviyo_error(429, "throttled", "Request was throttled."),
    )
    responses.add_callback(responses.POST, SERIES, callback=ok)
    result = run()
    assert len(responses.calls) == 2
    assert any(7 <= wait <= 7.7 for wait in sleeps), sleeps
    assert len(result.records["segment_series"]) == 9  # Nov 20..28


@responses.activate
def test_429_longer_than_max_retry_wait_stops_cleanly_with_state(sleeps):
    responses.post(
        SERIES,
        status=429,
        headers={"Retry-After": "80000"},
        body=klaviyo_error(429, "throttled", "Request was throttled."),
    )
    result = run(max_retry_wait_seconds=60)
    assert len(responses.calls) == 1
    assert not any(wait >= 60 for wait in sleeps)
    assert "Stopping segment_series cleanly" in result.logs
    assert "max_retry_wait_seconds=60" in result.logs
    assert result.states, "state is still written"
    assert "segment_series" not in result.records


@pytest.mark.parametrize(
    "failure", [500, 503, requests.ConnectionError("dropped"), requests.Timeout()]
)
@responses.activate
def test_server_errors_timeouts_and_drops_are_retried(sleeps, failure):
    if isinstance(failure, int):
        responses.post(SERIES, status=failure, body="{}")
    else:
        responses.post(SERIES, body=failure)
    responses.add_callback(responses.POST, SERIES, callback=ok)
    result = run()
    assert len(responses.calls) == 2
    assert len(result.records["segment_series"]) == 9


@responses.activate
def test_persistent_5xx_fails_after_max_retries(sleeps):
    responses.post(SERIES, status=502, body="<html>Bad gateway</html>")
    with pytest.raises(Exception, match="HTTP 502") as raised:
        run(max_retries=2)
    assert len(responses.calls) == 3
    assert "Bad gateway" in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        json.dumps({"data": {}}),
        json.dumps(
            {
                "data": {
                    "attributes": {
                        "results": [
                            {
                                "groupings": {"segment_id": "AbC123"},
                                "statistics": {"total_members": [1, 2]},
                            }
                        ],
                        "date_times": ["2026-11-20T00:00:00+00:00"],
                    }
                }
            }
        ),
    ],
    ids=["broken-json", "no-attributes", "short-statistics"],
)
@responses.activate
def test_malformed_200_is_retried_and_never_emitted(sleeps, body):
    responses.post(SERIES, status=200, body=body)
    responses.add_callback(responses.POST, SERIES, callback=ok)
    result = run()
    assert len(responses.calls) == 2
    assert len(result.records["segment_series"]) == 9


@responses.activate
def test_persistent_malformed_200_stops_with_a_clear_error(sleeps):
    responses.post(SERIES, status=200, body="<html>proxy error page</html>")
    with pytest.raises(Exception, match="malformed report") as raised:
        run(max_retries=1)
    assert API_KEY not in str(raised.value)


@responses.activate
def test_daily_budget_stops_cleanly_and_reports_what_is_left(sleeps):
    responses.add_callback(responses.POST, SERIES, callback=ok)
    result = run(start_date="2024-01-01", report_calls_per_day=3)
    assert len(responses.calls) == 3
    assert "budget of 3 report calls" in result.logs
    assert "more are needed" in result.logs
    partitions = result.final_state["bookmarks"]["segment_series"]["partitions"]
    # Older windows are cut forward from the resume point: three full 60-day windows were read.
    assert partitions[0]["replication_key_value"].startswith("2024-06-29")


@responses.activate
def test_pacing_spaces_report_calls(sleeps, monkeypatch):
    responses.add_callback(responses.POST, SERIES, callback=ok)
    run(start_date="2026-01-01", report_calls_per_minute=2, report_calls_per_second=1)
    paced = [wait for wait in sleeps if wait > 1]
    assert len(responses.calls) == 6  # 332 days in 60-day windows
    assert len(paced) == 5, "every call after the first waits its turn"
    assert all(29 < wait <= 30 for wait in paced), paced
