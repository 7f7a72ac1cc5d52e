"""The API key never shows up: not in records, STATE, logs at DEBUG, exceptions or tracebacks.

A unique canary key is run through every path (success, 401, 403, other 4xx, 5xx until retries
run out, timeouts, dropped connections, malformed bodies, a crash inside a stream, bad config),
in-process with root logging at DEBUG and as the real command with DEBUG logging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses

from klaviyo_standin import StandinSettings
from tap_klaviyo_segments import http
from tap_klaviyo_segments.cli import failure_line
from tap_klaviyo_segments.redaction import MASK, redact, register_secret
from tap_klaviyo_segments.streams import SameHostPaginator
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.edge_server import EdgeServer, segments_page, send, trickle
from tests.tap_runner import base_config, run_tap

CANARY = f"pk_canary_{uuid.uuid4().hex}"
SCOPELESS_CANARY = f"pk_canary_noscope_{uuid.uuid4().hex}"
WRONG_CANARY = f"pk_canary_wrong_{uuid.uuid4().hex}"
ALL_CANARIES = (CANARY, SCOPELESS_CANARY, WRONG_CANARY)

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)
TAP_BIN = Path(sys.executable).with_name("tap-klaviyo-segments")


@pytest.fixture(scope="module")
def standin_settings():
    return StandinSettings(
        segment_count=3,
        seed=4,
        now=NOW_LOCAL,
        rate_limits_enabled=False,
        api_key=CANARY,
        scopeless_api_key=SCOPELESS_CANARY,
    )


@pytest.fixture(autouse=True)
def _fresh(standin):
    standin.settings.faults.script.clear()
    yield
    standin.settings.faults.script.clear()


@dataclass
class Outcome:
    text: str  # everything a user or a log collector could see
    error: BaseException | None
    records: dict
    logs: str  # the log records alone (what a log collector keeps)


def assert_no_canary(outcome: Outcome) -> None:
    for canary in ALL_CANARIES:
        assert canary not in outcome.text, f"the key leaked:\n{outcome.text[-3000:]}"


def run_captured(capfd, config: dict, **kwargs) -> Outcome:
    """Run in-process at DEBUG; gather stdout, stderr, logs, STATE and the exception chain."""
    error: BaseException | None = None
    result = None
    logs = _DebugCapture()
    with logs:
        try:
            result = run_tap(config, now=NOW_UTC, **kwargs)
        except Exception as exc:
            error = exc
    out, err = capfd.readouterr()
    parts = [out, err, logs.text]
    if result is not None:
        parts += [result.stdout, result.logs, json.dumps(result.states)]
    if error is not None:
        parts += ["".join(traceback.format_exception(error)), repr(error), str(error.args)]
    return Outcome("\n".join(parts), error, result.records if result else {}, logs.text)


class _DebugCapture(contextlib.AbstractContextManager):
    """A second root handler, with a formatter that prints tracebacks (exc_info)."""

    def __init__(self) -> None:
        import io

        self._buffer = io.StringIO()
        self._handler = logging.StreamHandler(self._buffer)
        self._handler.setLevel(logging.DEBUG)
        self._handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def __enter__(self):
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, *exc):
        logging.getLogger().removeHandler(self._handler)

    @property
    def text(self) -> str:
        return self._buffer.getvalue()


def config_for(server, **overrides) -> dict:
    config = base_config(
        server.url,
        api_key=CANARY,
        segment_ids=server.account.segment_ids()[:2],
        start_date="2026-11-20",
        max_retries=2,
        values_timeframes=["last_7_days"],
    )
    config.update(overrides)
    return config


def test_success_at_debug_logs_requests_but_never_the_key(standin, capfd):
    outcome = run_captured(capfd, config_for(standin))
    assert outcome.error is None
    assert len(outcome.records["segment_series"]) == 2 * 9
    assert len(outcome.records["segment_values"]) == 2
    assert "DEBUG urllib3" in outcome.text, "DEBUG logging was really on"
    assert_no_canary(outcome)


@pytest.mark.parametrize(
    ("key", "expected"),
    [(WRONG_CANARY, "set api_key to a Klaviyo private API key"), (SCOPELESS_CANARY, "scope")],
    ids=["401-wrong-key", "403-scopeless-key"],
)
def test_auth_failures_never_show_the_key_that_was_refused(standin, capfd, key, expected):
    outcome = run_captured(capfd, config_for(standin, api_key=key))
    assert outcome.error is not None
    assert expected in str(outcome.error)
    assert_no_canary(outcome)


def test_other_4xx_never_shows_the_key(standin, capfd):
    outcome = run_captured(capfd, config_for(standin, api_url=f"{standin.url}/nowhere"))
    assert outcome.error is not None
    assert "HTTP 404" in str(outcome.error)
    assert_no_canary(outcome)


@pytest.mark.parametrize(
    ("script", "overrides", "expected"),
    [
        ([("502", None)] * 3, {}, "HTTP 502"),
        ([("503", None)] * 3, {}, "HTTP 503"),
        ([("drop", None)] * 3, {}, "Connection"),
        ([("malformed", None)] * 3, {}, "malformed"),
        ([("slow", 0.6)] * 3, {"request_timeout": 0.15}, "timed out"),
    ],
    ids=["502", "503", "drop", "malformed", "timeout"],
)
def test_retries_running_out_never_show_the_key(standin, capfd, script, overrides, expected):
    standin.push_script(script)
    outcome = run_captured(capfd, config_for(standin, **overrides), select=("segment_series",))
    assert outcome.error is not None
    assert expected.lower() in outcome.text.lower()
    assert "Retrying" in outcome.text, "the backoff logging ran"
    assert_no_canary(outcome)


def test_crash_inside_a_stream_never_shows_the_key(standin, capfd, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("parser exploded")

    monkeypatch.setattr("tap_klaviyo_segments.series.parse_series_report", boom)
    outcome = run_captured(capfd, config_for(standin), select=("segment_series",))
    assert isinstance(outcome.error, RuntimeError)
    assert "parser exploded" in outcome.text
    assert_no_canary(outcome)


@pytest.mark.parametrize(
    "api_key",
    [[CANARY], {"key": CANARY}, f"{CANARY}\n", f" {CANARY}"],
    ids=["list", "object", "trailing-newline", "leading-space"],
)
def test_a_mistyped_key_is_refused_without_quoting_it(capfd, api_key):
    config = {"api_key": api_key, "api_url": "http://127.0.0.1:9"}
    outcome = run_captured(capfd, config)
    assert outcome.error is not None
    errors = getattr(outcome.error, "errors", [])
    assert any("api_key" in e for e in errors), errors
    assert_no_canary(outcome)
    assert all(CANARY not in e for e in errors)


def _echo_body(request):
    header = request.headers["Authorization"]
    return f"<html><pre>Bad gateway. Request headers: Authorization: {header}</pre></html>"


@responses.activate
def test_a_proxy_echoing_the_key_is_masked_in_the_logs(capfd, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    url = "http://127.0.0.1:9/api/segment-series-reports"
    responses.add_callback(responses.POST, url, callback=lambda r: (502, {}, _echo_body(r)))
    config = {
        "api_key": CANARY,
        "api_url": "http://127.0.0.1:9",
        "segment_ids": ["AbC123"],
        "start_date": "2026-11-20",
        "max_retries": 1,
        "retry_initial_wait_seconds": 0.001,
    }
    outcome = run_captured(capfd, config, select=("segment_series",))
    assert outcome.error is not None
    assert "Retrying" in outcome.logs
    assert MASK in outcome.logs, "the echoed key was seen and masked"
    assert CANARY not in outcome.logs


@responses.activate
def test_a_proxy_echoing_the_key_never_reaches_the_exception_text(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    url = "http://127.0.0.1:9/api/segment-series-reports"
    responses.add_callback(responses.POST, url, callback=lambda r: (502, {}, _echo_body(r)))
    config = {
        "api_key": CANARY,
        "api_url": "http://127.0.0.1:9",
        "segment_ids": ["AbC123"],
        "start_date": "2026-11-20",
        "max_retries": 0,
    }
    with pytest.raises(Exception) as raised:
        run_tap(config, now=NOW_UTC, select=("segment_series",))
    assert "HTTP 502" in str(raised.value)
    assert CANARY not in "".join(traceback.format_exception(raised.value))


def test_redaction_masks_messages_arguments_and_tracebacks():
    secret = f"pk_canary_unit_{uuid.uuid4().hex}"
    register_secret(secret)
    assert redact(f"a {secret} b") == f"a {MASK} b"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("tests.redaction")
    logger.propagate = False
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("header %s", {"Authorization": f"Klaviyo-API-Key {secret}"})
        try:
            raise ValueError(f"bad header {secret!r}")
        except ValueError:
            logger.exception("failed")
        logger.info("nothing secret here: %d calls", 3)
    finally:
        logger.removeHandler(handler)
    formatter = logging.Formatter("%(message)s")
    texts = [formatter.format(r) for r in records]
    assert all(secret not in t for t in texts), texts
    assert MASK in texts[0]
    assert "ValueError" in texts[1]
    assert MASK in texts[1]
    assert texts[2] == "nothing secret here: 3 calls"
    assert records[2].args == (3,), "records without a secret keep their arguments"


# ----- the real command, DEBUG logging through singer-sdk's own switch --------------------------


#: CLI runs use the real clock, the stand-in's is fixed at NOW_LOCAL: end before it, or the
#: tap rightly calls the answer incomplete (it lacks the days after the stand-in's "now").
CLI_END_DATE = "2026-11-27"


def run_cli(tmp_path: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"end_date": CLI_END_DATE, **config}))
    env = {**os.environ, "TAP_KLAVIYO_SEGMENTS_LOGLEVEL": "DEBUG"}
    return subprocess.run(
        [str(TAP_BIN), "--config", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("key", "script", "ok"),
    [
        (CANARY, [], True),
        (WRONG_CANARY, [], False),
        (CANARY, [("502", None)] * 2, False),
    ],
    ids=["success", "401", "5xx-exhausted"],
)
def test_cli_at_debug_never_prints_the_key(standin, tmp_path, key, script, ok):
    standin.push_script(script)
    config = config_for(standin, api_key=key, max_retries=1)
    config.pop("values_timeframes")
    config["series_intervals"] = ["daily"]
    proc = run_cli(tmp_path, config)
    assert (proc.returncode == 0) is ok, proc.stderr[-2000:]
    assert "DEBUG" in proc.stderr, "singer-sdk's DEBUG switch took effect"
    if ok:
        assert '"type":"RECORD"' in proc.stdout.replace(" ", "")
        assert '"type":"STATE"' in proc.stdout.replace(" ", "")
    for canary in ALL_CANARIES:
        assert canary not in proc.stdout
        assert canary not in proc.stderr


def test_cli_with_the_key_from_the_environment_never_prints_it(standin, tmp_path):
    """Meltano passes the key as TAP_KLAVIYO_SEGMENTS_API_KEY with --config ENV."""
    config = config_for(standin, end_date=CLI_END_DATE)
    config.pop("api_key")
    config.pop("values_timeframes")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {
        **os.environ,
        "TAP_KLAVIYO_SEGMENTS_LOGLEVEL": "DEBUG",
        "TAP_KLAVIYO_SEGMENTS_API_KEY": CANARY,
    }
    proc = subprocess.run(
        [str(TAP_BIN), "--config", str(path), "--config", "ENV"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "from env variable 'TAP_KLAVIYO_SEGMENTS_API_KEY'" in proc.stderr
    assert '"type":"RECORD"' in proc.stdout.replace(" ", "")
    assert CANARY not in proc.stdout + proc.stderr


def test_cli_config_error_never_prints_the_key(tmp_path):
    proc = run_cli(tmp_path, {"api_key": [CANARY], "api_url": "http://127.0.0.1:9"})
    assert proc.returncode != 0
    assert "api_key" in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr


def test_about_and_discover_never_print_the_key(tmp_path):
    config = {"api_key": CANARY, "api_url": "http://127.0.0.1:9"}
    for args in (("--about", "--format", "json"), ("--discover",)):
        proc = run_cli(tmp_path, config, *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert CANARY not in proc.stdout + proc.stderr


def test_in_process_tap_masks_the_key_it_was_given():
    key = f"pk_canary_fresh_{uuid.uuid4().hex}"
    TapKlaviyoSegments(config={"api_key": key, "api_url": "http://127.0.0.1:9"})
    assert redact(f"x{key}x") == f"x{MASK}x"


# ----- issue 11's messages: cut texts, unreachable hosts, redirects, odd bodies -------------------


def _prefixes(canary: str) -> list[str]:
    """Every piece of the key long enough to tell it apart from the other canaries."""
    return [canary[:n] for n in range(len("pk_canary_") + 4, len(canary) + 1)]


@pytest.mark.parametrize("offset", [270, 280, 290, 299])
def test_a_key_straddling_the_cut_leaves_no_prefix_behind(capfd, offset):
    def echo_the_key(handler):
        key = handler.headers.get("Authorization", "").removeprefix("Klaviyo-API-Key ")
        body = "x" * offset + key + " and more text after it"  # the key crosses character 300
        send(handler, 400, body=body.encode(), headers={"Content-Type": "text/html"})

    with EdgeServer() as edge:
        edge.routes[("POST", "/api/segment-series-reports")] = echo_the_key
        config = base_config(
            edge.url, api_key=CANARY, segment_ids=["AbC123"], start_date="2026-11-20"
        )
        outcome = run_captured(capfd, config, select=("segment_series",))
    assert outcome.error is not None
    assert "HTTP 400" in str(outcome.error)
    # the key was there and was masked first: the cut at 300 falls inside the mask
    expected = ("x" * offset + MASK + " and more text after it")[:300]
    assert str(outcome.error).endswith(f"body: {expected}")
    for prefix in _prefixes(CANARY):
        assert prefix not in outcome.text, f"{len(prefix)} characters of the key leaked"


def test_the_final_error_line_masks_before_it_cuts():
    register_secret(CANARY)
    line = failure_line(RuntimeError("y" * 590 + CANARY))
    assert all(prefix not in line for prefix in _prefixes(CANARY))
    line = failure_line(ValueError(f"header Klaviyo-API-Key {CANARY}"), "segments")
    assert MASK in line
    assert CANARY not in line


def _edge_scenarios():
    def echo(handler) -> str:
        return handler.headers.get("Authorization", "")

    return {
        "html-on-200": lambda edge: (
            lambda h: send(
                h,
                200,
                body=f"<html>{echo(h)}</html>".encode(),
                headers={"Content-Type": "text/html"},
            )
        ),
        "redirect-off-host": lambda edge: (
            lambda h: send(
                h, 302, {}, headers={"Location": f"http://localhost:1/x?k={echo(h)[16:]}"}
            )
        ),
        "redirect-same-host-loop": lambda edge: (
            lambda h: send(h, 302, {}, headers={"Location": f"/api/segments?k={echo(h)[16:]}"})
        ),
        "429-long": lambda edge: (
            lambda h: send(
                h, 429, {"errors": [{"detail": f"slow {echo(h)}"}]}, headers={"Retry-After": "9999"}
            )
        ),
    }


@pytest.mark.parametrize("scenario", list(_edge_scenarios()))
def test_cli_at_debug_never_prints_the_key_on_the_http_edges(tmp_path, scenario, monkeypatch):
    with EdgeServer() as edge:
        edge.routes[("GET", "/api/segments")] = _edge_scenarios()[scenario](edge)
        config = base_config(
            edge.url,
            api_key=CANARY,
            max_retries=1,
            retry_initial_wait_seconds=0.01,
            max_retry_wait_seconds=5,
        )
        proc = run_cli(tmp_path, config)
    assert "DEBUG" in proc.stderr
    for canary in ALL_CANARIES:
        assert canary not in proc.stdout + proc.stderr
    if scenario != "429-long":
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if "| ERROR" in line]
        assert len(errors) == 1, errors


def test_the_page_cap_error_never_shows_the_key(capfd, monkeypatch):
    monkeypatch.setattr(SameHostPaginator, "max_pages", 3)
    with EdgeServer() as edge:

        def listing(handler):
            key = handler.headers.get("Authorization", "")[16:]
            next_url = f"{edge.url}/api/segments?c={time.monotonic_ns()}&k={key}"
            send(handler, 200, segments_page(["s1"], next_url))

        edge.routes[("GET", "/api/segments")] = listing
        config = base_config(edge.url, api_key=CANARY, segment_ids=["AbC123"])
        outcome = run_captured(capfd, config, select=("segments",))
    assert "after 3 pages" in str(outcome.error)
    assert "/api/segments?c=" in outcome.logs, "the URLs holding the key were logged, masked"
    assert_no_canary(outcome)


def test_cli_at_debug_never_prints_the_key_when_api_url_is_unreachable(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_cli(tmp_path, base_config(f"http://127.0.0.1:{port}", api_key=CANARY))
    assert proc.returncode == 1
    assert "cannot be reached" in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr


def test_a_key_a_header_cannot_carry_is_refused_without_quoting_it(capfd):
    key = f"{CANARY}\u00e9"
    outcome = run_captured(capfd, {"api_key": key, "api_url": "http://127.0.0.1:9"})
    assert outcome.error is not None
    assert any("cannot carry" in e for e in getattr(outcome.error, "errors", []))
    assert CANARY not in outcome.text


def _report_edges():
    def key_of(handler) -> str:
        return handler.headers.get("Authorization", "")[16:]

    return {
        "report-redirect": lambda h: send(
            h, 302, {}, headers={"Location": f"http://localhost:1/?k={key_of(h)}"}
        ),
        "too-large": lambda h: send(h, 200, body=(key_of(h) * 40_000).encode()),
        "trickle": lambda h: trickle(h, key_of(h).encode() * 3, every=0.1),
        "html-on-200": lambda h: send(h, 200, body=f"<p>{key_of(h)}</p>".encode()),
    }


@pytest.mark.parametrize("scenario", list(_report_edges()))
def test_report_edges_never_show_the_key(capfd, monkeypatch, scenario):
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 256 * 1024)
    monkeypatch.setattr("time.sleep", lambda s: None)
    with EdgeServer() as edge:
        edge.routes[("POST", "/api/segment-series-reports")] = _report_edges()[scenario]
        config = base_config(
            edge.url,
            api_key=CANARY,
            segment_ids=["AbC123"],
            start_date="2026-11-20",
            request_timeout=0.3,
            max_retries=1,
        )
        outcome = run_captured(capfd, config, select=("segment_series",))
    assert outcome.error is not None
    assert_no_canary(outcome)
    assert CANARY not in failure_line(outcome.error, "segment_series")
