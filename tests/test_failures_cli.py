"""The real command: every fatal error ends with one ERROR line naming cause and fix, exit 1.

Tracebacks appear only at DEBUG. SIGINT and SIGTERM end with STATE last and exit 130 and 143,
so a scheduler does not record an interrupted run as a success. Each test runs
``python -m tap_klaviyo_segments.tap`` against a server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from klaviyo_standin import FaultSettings, StandinServer, StandinSettings
from tests.edge_server import EdgeServer, send
from tests.tap_runner import base_config

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
COMMAND = [sys.executable, "-m", "tap_klaviyo_segments.tap"]


def write_config(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def run_cli(tmp_path: Path, config: dict, *, debug: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_SEGMENTS_")}
    if debug:
        env["TAP_KLAVIYO_SEGMENTS_LOGLEVEL"] = "DEBUG"
    return subprocess.run(
        [*COMMAND, "--config", str(write_config(tmp_path, config))],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR" in line]


def assert_one_clear_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, errors
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last == errors[0], "the ERROR line is the last word"
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def standin_settings():
    return StandinSettings(segment_count=3, seed=11, now=NOW_LOCAL, rate_limits_enabled=False)


def test_a_401_is_one_error_line_without_a_traceback(standin, tmp_path):
    config = base_config(standin.url, api_key="pk_wrong_0123456789", start_date="2026-11-20")
    line = assert_one_clear_error(run_cli(tmp_path, config), "HTTP 401", "set api_key")
    assert "Stream segments failed" in line


def test_a_403_names_the_scope(standin, tmp_path):
    key = standin.settings.scopeless_api_key
    config = base_config(standin.url, api_key=key, start_date="2026-11-20")
    assert_one_clear_error(run_cli(tmp_path, config), "HTTP 403", "segments:read")


def test_the_traceback_is_there_at_debug(standin, tmp_path):
    config = base_config(standin.url, api_key="pk_wrong_0123456789", start_date="2026-11-20")
    proc = run_cli(tmp_path, config, debug=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, errors
    assert "set api_key" in errors[0]


def test_connection_refused_is_one_line_and_quick(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = base_config(f"http://127.0.0.1:{port}", max_retries=5, retry_initial_wait_seconds=1)
    started = time.monotonic()
    proc = run_cli(tmp_path, config)
    assert_one_clear_error(proc, "cannot be reached", "stand-in may not be running")
    assert time.monotonic() - started < 15, "no minute of retries"
    assert "Retrying" not in proc.stderr


def test_html_from_segments_is_one_line_that_says_what_to_check(tmp_path):
    with EdgeServer() as edge:
        edge.routes[("GET", "/api/segments")] = lambda h: send(
            h, 200, body=b"<html>sign in</html>", headers={"Content-Type": "text/html"}
        )
        config = base_config(edge.url, max_retries=1, retry_initial_wait_seconds=0.01)
        assert_one_clear_error(run_cli(tmp_path, config), "not JSON", "check api_url")


@contextlib.contextmanager
def tap_process(tmp_path: Path, config: dict) -> Iterator[subprocess.Popen]:
    """The tap's command with piped stdout and stderr; killed if the test leaves it running."""
    process = subprocess.Popen(
        [*COMMAND, "--config", str(write_config(tmp_path, config))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _slow_standin() -> StandinServer:
    settings = StandinSettings(
        segment_count=30,
        seed=3,
        now=NOW_LOCAL,
        rate_limits_enabled=False,
        faults=FaultSettings(slow_rate=1.0, slow_seconds=0.05),
    )
    return StandinServer(settings)


def test_a_target_that_stops_reading_gets_one_line_about_the_broken_pipe(tmp_path):
    with _slow_standin() as server:
        config = base_config(server.url, start_date="2025-01-01", series_intervals=["daily"])
        with tap_process(tmp_path, config) as process:
            assert process.stdout is not None
            process.stdout.readline()
            process.stdout.close()  # the target is gone
            _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, errors
    assert "the target stopped reading" in errors[0]
    assert "An unhandled error occurred" not in stderr


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_ends_with_state_last_and_a_non_zero_exit(tmp_path, signum, code):
    with _slow_standin() as server:
        config = base_config(server.url, start_date="2025-01-01", series_intervals=["daily"])
        with tap_process(tmp_path, config) as process:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                message = json.loads(line)
                if message["type"] == "RECORD" and message["stream"] == "segment_series":
                    process.send_signal(signum)
                    break
            # The rest through the same text stream: communicate() reads the pipe itself and
            # would skip what readline had already buffered (half a line, seen as a flaky test).
            rest = process.stdout.read()
            _, stderr = process.communicate(timeout=60)
    lines += rest.splitlines()
    messages = [json.loads(line) for line in lines if line.strip()]
    assert process.returncode == code, stderr[-3000:]
    assert messages[-1]["type"] == "STATE"
    assert "Traceback" not in stderr
    assert f"Interrupted by {signal.Signals(signum).name}" in stderr
    assert f"exiting {code}" in stderr


def test_labels_in_another_timezone_are_one_error_line_that_says_what_to_set(tmp_path):
    settings = StandinSettings(
        segment_count=2, seed=11, now=NOW_LOCAL, rate_limits_enabled=False, timezone="Europe/Berlin"
    )
    with StandinServer(settings) as server:
        config = base_config(
            server.url,
            segment_ids=server.account.segment_ids(),
            start_date="2026-11-20",
            end_date="2026-11-27",  # the CLI runs on the real clock; the stand-in's is fixed
            values_timeframes=["last_7_days"],
        )
        proc = run_cli(tmp_path, config)
    line = assert_one_clear_error(proc, "UTC offset +01:00", "Set account_timezone")
    assert "unexpected" not in line
    series = [json.loads(x) for x in proc.stdout.splitlines() if '"segment_series"' in x]
    assert not [m for m in series if m.get("type") == "RECORD"], "no row of that answer"


def test_an_answer_that_stays_incomplete_is_one_error_line_after_the_state(tmp_path):
    # Scripted answers go to report calls in order: the values call takes the first.
    faults = FaultSettings(script=[("leading-missing", 2.0)] * 4)
    settings = StandinSettings(
        segment_count=2, seed=11, now=NOW_LOCAL, rate_limits_enabled=False, faults=faults
    )
    with StandinServer(settings) as server:
        config = base_config(
            server.url,
            segment_ids=server.account.segment_ids(),
            start_date="2026-11-20",
            end_date="2026-11-27",
            values_timeframes=["last_7_days"],
            max_retries=2,
            retry_initial_wait_seconds=0.01,
        )
        proc = run_cli(tmp_path, config)
    line = assert_one_clear_error(
        proc, "2 leading daily buckets", "rerun resumes from the last STATE"
    )
    assert "unexpected" not in line
    assert "proxy" not in line, "a Klaviyo answer that fails a check is not a proxy's page"


def test_a_whole_number_setting_from_the_environment_that_is_not_one_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_SEGMENTS_")}
    env.update(
        TAP_KLAVIYO_SEGMENTS_API_KEY="pk_canary_env_0123456789",
        TAP_KLAVIYO_SEGMENTS_API_URL="http://127.0.0.1:9",
        TAP_KLAVIYO_SEGMENTS_MAX_RETRIES="abc",
    )
    proc = subprocess.run(
        [*COMMAND, "--config", "ENV"], capture_output=True, text=True, env=env, timeout=60
    )
    line = assert_one_clear_error(proc, "TAP_KLAVIYO_SEGMENTS_MAX_RETRIES (max_retries)")
    assert "whole number" in line
    assert "pk_canary_env" not in proc.stderr
