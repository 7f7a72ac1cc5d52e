"""Issue 11: every HTTP edge holds, against a small scripted server on 127.0.0.1.

Cycling cursors, redirect loops, trickling bodies, gzip bombs, HTML on a 200, odd Retry-After
and RateLimit-Reset values, a refused connection. Timeouts are scaled down (a 0.3 s deadline
against a server trickling a byte every 0.1 s), so no test waits for real longer than a second.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests

from klaviyo_standin import FaultSettings, StandinServer, StandinSettings
from tap_klaviyo_segments import http
from tap_klaviyo_segments.errors import (
    ApiUnreachableError,
    MalformedResponseError,
    PaginationError,
    RedirectRefusedError,
    ResponseTooLargeError,
)
from tap_klaviyo_segments.http import retry_after_seconds
from tap_klaviyo_segments.streams import SameHostPaginator
from tests.edge_server import EdgeServer, segments_page, send, trickle
from tests.tap_runner import base_config, run_tap

NOW = datetime(2026, 11, 28, 10, 30, tzinfo=timezone.utc)
SID = "AbC123"
SEGMENTS = "/api/segments"
SERIES = "/api/segment-series-reports"
VALUES = "/api/segment-values-reports"


@pytest.fixture
def edge():
    with EdgeServer() as server:
        yield server


@pytest.fixture
def sleeps(monkeypatch):
    """Record the waits instead of sleeping them."""
    waited: list[float] = []
    monkeypatch.setattr("time.sleep", waited.append)
    return waited


def config(url: str, **overrides):
    values = {
        "segment_ids": [SID],
        "start_date": "2026-11-20",
        "retry_initial_wait_seconds": 0.001,
        "max_retries": 1,
        "values_timeframes": ["last_7_days"],
    }
    values.update(overrides)
    if values["segment_ids"] is None:
        del values["segment_ids"]  # list every segment
    return base_config(url, **values)


def series_answer(handler, headers=None) -> None:
    """A well-formed daily series answer for the window and ids the request asked about."""
    attributes = json.loads(handler.body)["data"]["attributes"]
    start = datetime.fromisoformat(attributes["timeframe"]["start"])
    end = datetime.fromisoformat(attributes["timeframe"]["end"])
    days = (end.date() - start.date()).days + 1
    send(
        handler,
        200,
        {
            "data": {
                "type": "segment-series-report",
                "attributes": {
                    "results": [
                        {
                            "groupings": {"segment_id": SID},
                            "statistics": {s: [1] * days for s in attributes["statistics"]},
                        }
                    ],
                    "date_times": [(start + timedelta(days=i)).isoformat() for i in range(days)],
                },
            }
        },
        headers=headers,
    )


def values_answer(handler, headers=None) -> None:
    stats = json.loads(handler.body)["data"]["attributes"]["statistics"]
    send(
        handler,
        200,
        {
            "data": {
                "type": "segment-values-report",
                "attributes": {
                    "results": [
                        {"groupings": {"segment_id": SID}, "statistics": dict.fromkeys(stats, 5)}
                    ]
                },
            }
        },
        headers=headers,
    )


def segment_rows(result) -> list[str]:
    return [r["id"] for r in result.records.get("segments", [])]


# ----- GET /api/segments: a cursor that cycles, or never ends --------------------------------


def test_a_cursor_cycling_between_two_pages_ends_with_each_segment_once(edge):
    pages = {
        None: (["s1", "s2"], "A"),
        "A": (["s3", "s4"], "B"),
        "B": (["s5", "s3"], "A"),  # back to A, and s3 again
    }

    def listing(handler):
        query = dict(p.split("=", 1) for p in handler.path.partition("?")[2].split("&") if p)
        ids, cursor = pages[query.get("page%5Bcursor%5D")]
        send(handler, 200, segments_page(ids, f"{edge.url}{SEGMENTS}?page%5Bcursor%5D={cursor}"))

    edge.routes[("GET", SEGMENTS)] = listing
    result = run_tap(config(edge.url), now=NOW, select=("segments",))
    assert segment_rows(result) == ["s1", "s2", "s3", "s4", "s5"], "each segment once"
    assert len(edge.calls) == 3, "each page is read once"
    assert "points back to a page already read" in result.logs
    assert result.states, "the run ends and writes STATE"


def test_a_cursor_that_never_ends_stops_at_the_page_cap_with_a_clear_error(edge, monkeypatch):
    monkeypatch.setattr(SameHostPaginator, "max_pages", 5)
    served = []

    def listing(handler):
        served.append(handler.path)
        n = len(served)
        send(handler, 200, segments_page(["s1", f"s{n}"], f"{edge.url}{SEGMENTS}?c={n}"))

    edge.routes[("GET", SEGMENTS)] = listing
    with pytest.raises(PaginationError, match="after 5 pages") as raised:
        run_tap(config(edge.url), now=NOW, select=("segments",))
    assert "set segment_ids" in str(raised.value)
    assert len(served) == 5


def test_segments_pages_never_emit_a_segment_twice(edge):
    def listing(handler):
        if "c=2" in handler.path:
            send(handler, 200, segments_page(["s2", "s1", "s3"], None))
        else:
            send(handler, 200, segments_page(["s1", "s2"], f"{edge.url}{SEGMENTS}?c=2"))

    edge.routes[("GET", SEGMENTS)] = listing
    result = run_tap(config(edge.url), now=NOW, select=("segments",))
    assert segment_rows(result) == ["s1", "s2", "s3"]


# ----- redirects ---------------------------------------------------------------------------------


def test_a_redirect_loop_on_a_report_endpoint_is_one_call_and_an_error(edge):
    def loop(handler):
        send(handler, 302, {}, headers={"Location": f"{edge.url}{SERIES}"})

    edge.routes[("POST", SERIES)] = loop
    started = time.monotonic()
    outcome = None
    with pytest.raises(RedirectRefusedError) as raised:
        outcome = run_tap(config(edge.url), now=NOW, select=("segment_series",))
    assert outcome is None
    message = str(raised.value)
    assert "HTTP 302" in message
    assert edge.url.removeprefix("http://") in message, "names the Location host"
    assert "check api_url" in message
    assert len(edge.calls) == 1, "a report call follows no redirect"
    assert time.monotonic() - started < 5


def test_a_report_redirect_names_the_other_host(edge):
    edge.routes[("POST", SERIES)] = lambda h: send(
        h, 307, {}, headers={"Location": "https://elsewhere.example/api/x"}
    )
    with pytest.raises(RedirectRefusedError, match=r"HTTP 307 .* elsewhere\.example"):
        run_tap(config(edge.url), now=NOW, select=("segment_series",))
    assert len(edge.calls) == 1


def test_segments_follows_a_redirect_on_the_same_host(edge):
    def listing(handler):
        if "moved=1" in handler.path:
            send(handler, 200, segments_page(["s1"], None))
        else:
            send(handler, 301, {}, headers={"Location": f"{SEGMENTS}?moved=1"})

    edge.routes[("GET", SEGMENTS)] = listing
    result = run_tap(config(edge.url), now=NOW, select=("segments",))
    assert segment_rows(result) == ["s1"]
    assert len(edge.calls) == 2


def test_segments_refuses_a_redirect_to_another_host_instead_of_listing_nothing(edge):
    with EdgeServer() as other:
        other.routes[("GET", SEGMENTS)] = lambda h: send(h, 200, segments_page([], None))
        other_url = other.url.replace("127.0.0.1", "localhost")  # another host name
        edge.routes[("GET", SEGMENTS)] = lambda h: send(
            h, 302, {}, headers={"Location": f"{other_url}{SEGMENTS}"}
        )
        with pytest.raises(RedirectRefusedError, match="another host") as raised:
            run_tap(config(edge.url), now=NOW, select=("segments",))
        assert other.calls == [], "the key went nowhere else"
    assert other_url.removeprefix("http://") in str(raised.value)


def test_a_redirect_loop_on_segments_stops_with_an_error(edge):
    edge.routes[("GET", SEGMENTS)] = lambda h: send(h, 302, {}, headers={"Location": SEGMENTS})
    with pytest.raises(RedirectRefusedError, match="redirect loop"):
        run_tap(config(edge.url), now=NOW, select=("segments",))
    assert len(edge.calls) == http.MAX_REDIRECTS + 1


# ----- a body that trickles, a body that never ends ---------------------------------------------


def test_a_trickling_body_is_cut_off_at_request_timeout(edge):
    # 120 bytes at 0.1 s each: 12 s if only each read were bounded
    edge.routes[("POST", SERIES)] = lambda h: trickle(h, b'{"data": {}}' * 10, every=0.1)
    started = time.monotonic()
    with pytest.raises(requests.Timeout, match=r"request_timeout=0\.3"):
        run_tap(
            config(edge.url, request_timeout=0.3, max_retries=0),
            now=NOW,
            select=("segment_series",),
        )
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"the whole request is bounded, not each read ({elapsed:.2f} s)"


def test_a_body_stalling_just_before_the_deadline_is_cut_at_the_deadline(edge):
    def stall(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b'{"da')
        handler.wfile.flush()
        time.sleep(0.45)
        handler.wfile.write(b"ta")
        handler.wfile.flush()
        time.sleep(3)

    edge.routes[("POST", SERIES)] = stall
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        run_tap(
            config(edge.url, request_timeout=0.5, max_retries=0),
            now=NOW,
            select=("segment_series",),
        )
    elapsed = time.monotonic() - started
    # a per-read timeout would end 0.5 s after the last byte, at 0.95 s
    assert elapsed < 0.8, f"{elapsed:.2f} s"


def test_a_gzip_bomb_stops_at_the_body_cap(edge, monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 1024 * 1024)
    bomb = gzip.compress(b" " * (32 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    edge.routes[("POST", SERIES)] = lambda h: send(
        h, 200, body=bomb, headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(ResponseTooLargeError, match="larger than 1 MB") as raised:
        run_tap(config(edge.url), now=NOW, select=("segment_series",))
    assert "after decompression" in str(raised.value)
    assert len(edge.calls) == 1, "too large is not retried"


def test_a_redirect_with_a_gzip_bomb_body_stops_at_the_cap_too(edge, monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 1024 * 1024)
    bomb = gzip.compress(b" " * (32 * 1024 * 1024), compresslevel=9)
    edge.routes[("POST", SERIES)] = lambda h: send(
        h, 302, body=bomb, headers={"Content-Encoding": "gzip", "Location": SERIES}
    )
    with pytest.raises(ResponseTooLargeError, match="larger than 1 MB"):
        run_tap(config(edge.url), now=NOW, select=("segment_series",))


def test_redirect_hops_share_one_deadline(edge):
    def hop(handler):
        time.sleep(0.12)
        send(handler, 302, {}, headers={"Location": f"{SEGMENTS}?hop={len(edge.calls)}"})

    edge.routes[("GET", SEGMENTS)] = hop
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        run_tap(config(edge.url, request_timeout=0.3, max_retries=0), now=NOW, select=("segments",))
    assert time.monotonic() - started < 0.7
    assert len(edge.calls) <= 3


def test_a_normal_gzip_answer_still_reads(edge):
    def gzipped(handler):
        attributes = json.loads(handler.body)["data"]["attributes"]
        start = datetime.fromisoformat(attributes["timeframe"]["start"])
        end = datetime.fromisoformat(attributes["timeframe"]["end"])
        days = (end.date() - start.date()).days + 1
        doc = {
            "data": {
                "attributes": {
                    "results": [
                        {
                            "groupings": {"segment_id": SID},
                            "statistics": {s: [2] * days for s in attributes["statistics"]},
                        }
                    ],
                    "date_times": [(start + timedelta(days=i)).isoformat() for i in range(days)],
                }
            }
        }
        send(
            handler,
            200,
            body=gzip.compress(json.dumps(doc).encode()),
            headers={"Content-Encoding": "gzip"},
        )

    edge.routes[("POST", SERIES)] = gzipped
    rows = run_tap(config(edge.url), now=NOW, select=("segment_series",)).records
    assert [r["total_members"] for r in rows["segment_series"]] == [2] * 9


# ----- GET /api/segments: 429s, HTML on a 200 -------------------------------------------------


def _standin(**faults):
    settings = StandinSettings(
        segment_count=3,
        seed=11,
        now=NOW.replace(tzinfo=None),
        rate_limits_enabled=False,
        faults=FaultSettings(apply_to_segments=True, **faults),
    )
    return StandinServer(settings)


def test_a_long_429_on_segments_with_segment_ids_stops_the_listing_cleanly(sleeps):
    with _standin() as server:
        sid = server.account.segment_ids()[0]
        server.push_script([("429", 80_000)])
        result = run_tap(
            config(server.url, segment_ids=[sid], max_retry_wait_seconds=60, max_retries=3),
            now=NOW,
        )
    assert "Stopping segments cleanly: Klaviyo throttled GET /api/segments" in result.logs
    assert "report quota" not in result.logs.split("Stopping segments cleanly")[1].split("\n")[0]
    assert not any(wait >= 60 for wait in sleeps)
    assert len(result.records["segment_series"]) == 9, "the reports still ran"
    assert result.messages[-1]["type"] == "STATE"


def test_a_long_429_on_segments_without_segment_ids_reports_nothing_cleanly(sleeps):
    with _standin() as server:
        server.push_script([("429", 80_000)])
        result = run_tap(config(server.url, segment_ids=None, max_retry_wait_seconds=60), now=NOW)
        report_calls = server.report_calls()
    assert "Stopping segments cleanly" in result.logs
    assert "Reporting on no segments this run" in result.logs
    assert report_calls == []
    assert result.messages[-1]["type"] == "STATE"


def test_a_short_429_on_segments_is_waited_out(sleeps):
    with _standin() as server:
        server.push_script([("429", 7)])
        result = run_tap(config(server.url, segment_ids=None), now=NOW)
        ids = server.account.segment_ids()
    assert any(7 <= wait <= 7.7 for wait in sleeps), sleeps
    assert sorted(segment_rows(result)) == sorted(ids)


def test_html_on_a_200_from_segments_is_retried_then_read(edge):
    answers = [
        lambda h: send(h, 200, body=b"<html>login</html>", headers={"Content-Type": "text/html"}),
        lambda h: send(h, 200, segments_page(["s1"], None)),
    ]
    edge.routes[("GET", SEGMENTS)] = lambda h: answers.pop(0)(h)
    result = run_tap(config(edge.url), now=NOW, select=("segments",))
    assert segment_rows(result) == ["s1"]


def test_html_on_a_200_from_segments_ends_in_a_clear_error(edge):
    edge.routes[("GET", SEGMENTS)] = lambda h: send(
        h, 200, body=b"<html>login</html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(MalformedResponseError, match="not JSON") as raised:
        run_tap(config(edge.url, max_retries=2), now=NOW, select=("segments",))
    assert "text/html" in str(raised.value)
    assert "check api_url" in str(raised.value)
    assert len(edge.calls) == 3, "retried like a 5xx"


# ----- Retry-After and RateLimit-Reset ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


def _throttle_then_answer(retry_after: str):
    answers = [
        lambda h: send(
            h, 429, {"errors": [{"detail": "slow down"}]}, headers={"Retry-After": retry_after}
        ),
        series_answer,
    ]
    return lambda h: answers.pop(0)(h) if len(answers) > 1 else answers[0](h)


def test_retry_after_nan_is_none_given_and_the_run_goes_on(edge, sleeps):
    edge.routes[("POST", SERIES)] = _throttle_then_answer("nan")
    result = run_tap(config(edge.url), now=NOW, select=("segment_series",))
    assert len(result.records["segment_series"]) == 9
    assert len(edge.calls) == 2


def test_retry_after_as_an_http_date_far_ahead_stops_cleanly(edge, sleeps):
    later = format_datetime(datetime.now(timezone.utc) + timedelta(hours=2), usegmt=True)
    edge.routes[("POST", SERIES)] = _throttle_then_answer(later)
    result = run_tap(
        config(edge.url, max_retry_wait_seconds=60), now=NOW, select=("segment_series",)
    )
    assert "Stopping segment_series cleanly" in result.logs
    assert "longer than max_retry_wait_seconds=60" in result.logs
    assert result.messages[-1]["type"] == "STATE"
    assert not any(wait >= 60 for wait in sleeps)


def test_retry_after_as_an_http_date_soon_is_waited(edge, sleeps):
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    edge.routes[("POST", SERIES)] = _throttle_then_answer(soon)
    result = run_tap(config(edge.url), now=NOW, select=("segment_series",))
    assert len(result.records["segment_series"]) == 9
    assert any(25 <= wait <= 33 for wait in sleeps), sleeps


def test_a_huge_ratelimit_reset_is_capped_and_logged_at_info(edge, sleeps):
    headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": "1000000000"}
    edge.routes[("POST", VALUES)] = lambda h: values_answer(h, headers=headers)
    result = run_tap(
        config(edge.url, max_retry_wait_seconds=45, values_timeframes=["last_7_days", "today"]),
        now=NOW,
        select=("segment_values",),
    )
    assert len(result.records["segment_values"]) == 2
    assert any(44 <= wait <= 47 for wait in sleeps), sleeps
    lines = [line for line in result.logs.splitlines() if "Waiting" in line]
    assert lines, result.logs[-2000:]
    assert "RateLimit-Reset" in lines[0]
    assert "max_retry_wait_seconds=45" in lines[0]


def test_the_normal_pace_is_logged_when_it_is_long(edge, sleeps):
    edge.routes[("POST", VALUES)] = values_answer
    result = run_tap(
        config(
            edge.url,
            report_calls_per_minute=2,
            report_calls_per_second=1,
            values_timeframes=["last_7_days", "today"],
        ),
        now=NOW,
        select=("segment_values",),
    )
    assert any(29 < wait <= 30 for wait in sleeps), sleeps
    assert "Waiting 30 s before the next report call: to keep report_calls_per_minute" in (
        result.logs
    )


# ----- a refused connection, a name that does not resolve ---------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_says_once_that_api_url_cannot_be_reached(sleeps):
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(ApiUnreachableError) as raised:
        run_tap(config(url, max_retries=5), now=NOW)
    message = str(raised.value)
    assert f"api_url {url} cannot be reached (the connection was refused)" in message
    assert "stand-in may not be running" in message
    assert sleeps == [], "not retried"
    assert time.monotonic() - started < 2


def test_a_name_that_does_not_resolve_is_named_as_such(monkeypatch, sleeps):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(ApiUnreachableError) as raised:
        run_tap(config("https://a.klaviyo.invalid", max_retries=5), now=NOW)
    message = str(raised.value)
    assert "api_url https://a.klaviyo.invalid cannot be reached" in message
    assert "does not resolve" in message
    assert "stand-in" not in message, "only loopback gets the stand-in hint"
    assert sleeps == []


def test_a_connection_dropped_after_the_first_answer_is_still_retried(sleeps):
    with _standin() as server:
        server.push_script([("ok", None), ("drop", None)])  # segments ok, first report drops
        result = run_tap(config(server.url, segment_ids=None, max_retries=2), now=NOW)
    assert len(result.records["segment_values"]) == 3
    assert "Retrying" in result.logs


def test_report_errors_with_a_timeout_are_still_retried(edge, sleeps):
    answers = [lambda h: trickle(h, b"{" * 20, every=0.1), series_answer]
    edge.routes[("POST", SERIES)] = lambda h: answers.pop(0)(h)
    result = run_tap(
        config(edge.url, request_timeout=0.3, max_retries=1), now=NOW, select=("segment_series",)
    )
    assert len(result.records["segment_series"]) == 9
