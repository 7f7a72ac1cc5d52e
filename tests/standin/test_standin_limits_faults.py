"""Rate limits (fixed windows, scaled by time_scale), fault injection and the request log."""

from __future__ import annotations

import json
import time

import pytest
import requests

from klaviyo_standin import FaultSettings, StandinServer
from klaviyo_standin.ratelimit import REPORT_LIMITS, RateLimiter

from .conftest import SERIES, VALUES, get, post, report_body, settings


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def _limited(clock, **overrides):
    return StandinServer(settings(rate_limits_enabled=True, **overrides), clock=clock)


def _values(server):
    return post(
        server,
        VALUES,
        report_body("values", statistics=["total_members"], filter='equals(segment_id,"x")'),
    )


def _assert_throttled(response):
    assert response.status_code == 429
    error = response.json()["errors"][0]
    assert error["code"] == "throttled"
    assert error["detail"].startswith("Request was throttled. Expected available in ")
    assert not any(h.lower().startswith("ratelimit-") for h in response.headers)
    return response.headers["Retry-After"]


def test_burst_and_steady_with_time_scale():
    clock = FakeClock()
    with _limited(clock, time_scale=100) as srv:
        first = _values(srv)
        assert first.status_code == 200
        assert first.headers["RateLimit-Limit"] == "2"
        assert first.headers["RateLimit-Remaining"] == "1"
        assert float(first.headers["RateLimit-Reset"]) == pytest.approx(0.6)
        assert float(_assert_throttled(_values(srv))) == pytest.approx(0.01)  # burst: 1 per 0.01 s
        clock.advance(0.011)
        second = _values(srv)
        assert second.headers["RateLimit-Remaining"] == "0"  # the throttled call did not count
        clock.advance(0.011)
        assert float(_assert_throttled(_values(srv))) == pytest.approx(0.6 - 0.022)  # steady
        clock.advance(0.6)
        assert _values(srv).status_code == 200
        # the series endpoint has its own windows
        assert post(srv, SERIES, report_body()).status_code == 200


def test_retry_after_is_integer_at_real_speed():
    clock = FakeClock()
    with _limited(clock) as srv:
        ok = _values(srv)
        assert ok.headers["RateLimit-Reset"] == "60"
        assert _assert_throttled(_values(srv)) == "1"
        clock.advance(1)
        assert _values(srv).status_code == 200
        clock.advance(1)
        assert _assert_throttled(_values(srv)) == "58"


def test_daily_budget_and_retry_after_to_day_end():
    clock = FakeClock()
    with _limited(clock, time_scale=100) as srv:
        for _ in range(225):
            assert _values(srv).status_code == 200
            clock.advance(0.61)
        retry = float(_assert_throttled(_values(srv)))
        assert retry == pytest.approx(864 - 225 * 0.61, abs=0.01)
        assert post(srv, SERIES, report_body()).status_code == 200  # separate budget by default
        assert sum(e.counted for e in srv.log) == 226


def test_shared_daily_budget():
    limiter, clock = RateLimiter(FakeClock()), None
    clock = limiter._clock
    for _ in range(225):
        assert limiter.acquire("values", REPORT_LIMITS, 1.0, "reports").allowed
        clock.advance(30)
    decision = limiter.acquire("series", REPORT_LIMITS, 1.0, "reports")
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(86400 - 225 * 30)
    assert limiter.acquire("series", REPORT_LIMITS, 1.0, "series").allowed


def test_segments_limits():
    clock = FakeClock()
    with _limited(clock) as srv:
        for _ in range(75):
            assert get(srv, "/api/segments", {"page[size]": "1"}).status_code == 200
        assert _assert_throttled(get(srv, "/api/segments")) == "1"


def test_real_clock_retry_after_is_honoured():
    with StandinServer(settings(rate_limits_enabled=True, time_scale=100)) as srv:
        statuses = []
        for _ in range(6):
            response = _values(srv)
            statuses.append(response.status_code)
            if response.status_code == 429:
                time.sleep(float(response.headers["Retry-After"]))
                assert _values(srv).status_code == 200
        assert 429 in statuses


# ----- faults ------------------------------------------------------------------------------------
def test_script():
    with StandinServer(settings()) as srv:
        srv.push_script(
            [
                ("429", 2.0),
                ("500", None),
                ("503", None),
                ("drop", None),
                ("malformed", None),
                ("slow", 0.2),
                ("ok", None),
            ]
        )
        throttled = _values(srv)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "2"
        assert _values(srv).status_code == 500
        unavailable = _values(srv)
        assert unavailable.status_code == 503
        assert unavailable.json()["errors"][0]["code"] == "MetricServiceRetryableError"
        with pytest.raises(requests.ConnectionError):
            _values(srv)
        with pytest.raises(json.JSONDecodeError):
            json.loads(_values(srv).text)
        started = time.monotonic()
        assert _values(srv).status_code == 200
        assert time.monotonic() - started >= 0.2
        assert _values(srv).status_code == 200
        assert get(srv, "/api/segments").status_code == 200
        statuses = [e.status for e in srv.log]
        assert statuses == [429, 500, 503, 0, 200, 200, 200, 200]
        assert not any(e.counted for e in srv.log[:5])
        assert len(srv.report_calls()) == 2


def test_error_rate():
    with StandinServer(settings(faults=FaultSettings(error_rate=1.0, fault_seed=5))) as srv:
        codes = {_values(srv).status_code for _ in range(16)}
        assert codes <= {500, 502, 503, 504}
        assert len(codes) >= 2
        assert get(srv, "/api/segments").status_code == 200  # segments unaffected by default
        srv.settings.faults.apply_to_segments = True
        assert get(srv, "/api/segments").status_code >= 500


def test_drop_rate():
    with StandinServer(settings(faults=FaultSettings(drop_rate=1.0))) as srv:
        with pytest.raises(requests.ConnectionError):
            _values(srv)
        assert srv.log[-1].fault == "drop"


def test_slow_rate():
    with StandinServer(settings(faults=FaultSettings(slow_rate=1.0, slow_seconds=0.15))) as srv:
        started = time.monotonic()
        assert _values(srv).status_code == 200
        assert time.monotonic() - started >= 0.15


def test_malformed_rate_produces_both_kinds():
    with StandinServer(settings(faults=FaultSettings(malformed_rate=1.0, fault_seed=1))) as srv:
        kinds = set()
        for _ in range(12):
            text = post(srv, SERIES, report_body()).text
            try:
                attributes = json.loads(text)["data"]["attributes"]
            except json.JSONDecodeError:
                kinds.add("json")
                continue
            lengths = {len(c) for r in attributes["results"] for c in r["statistics"].values()}
            assert min(lengths) == len(attributes["date_times"]) - 1
            kinds.add("short")
        assert kinds == {"json", "short"}
        assert srv.report_calls() == []


def test_faults_are_deterministic():
    def run():
        faults = FaultSettings(error_rate=0.4, malformed_rate=0.2, fault_seed=9)
        with StandinServer(settings(faults=faults)) as srv:
            for _ in range(15):
                _values(srv)
            return [(e.status, e.fault) for e in srv.log]

    first = run()
    assert first == run()
    assert {s for s, _ in first} >= {200}
    assert any(f for _, f in first)
