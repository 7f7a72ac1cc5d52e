"""The command line starts, writes the ready file, serves, and stops on SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from klaviyo_standin import DEFAULT_API_KEY
from klaviyo_standin.__main__ import build_parser, settings_from_args

from .conftest import HEADERS

REPO_ROOT = Path(__file__).resolve().parents[2]


def _start(tmp_path, *extra):
    ready = tmp_path / "standin.url"
    command = [
        sys.executable,
        "-m",
        "klaviyo_standin",
        "--port",
        "0",
        "--ready-file",
        str(ready),
    ]
    # The stand-in lives in the checkout, not in the installed wheel.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([*command, *extra], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 15
    while not ready.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "stand-in did not become ready"
        time.sleep(0.02)
    return proc, ready, ready.read_text().strip()


def _stop(proc):
    proc.terminate()
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    return stderr


def test_cli_serves_until_terminated(tmp_path):
    proc, ready, url = _start(
        tmp_path,
        "--segments",
        "3",
        "--seed",
        "7",
        "--timezone",
        "America/New_York",
        "--now",
        "2026-11-28T10:00:00",
        "--no-rate-limits",
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        body = requests.get(url + "/api/segments", headers=HEADERS, timeout=10).json()
        assert len(body["data"]) == 3
    finally:
        stderr = _stop(proc)
    assert url in stderr
    assert DEFAULT_API_KEY in stderr
    assert not ready.exists()


def test_cli_never_prints_a_custom_key(tmp_path):
    key = "pk_private_do_not_print"
    proc, _, url = _start(tmp_path, "--api-key", key, "--verbose")
    try:
        headers = {**HEADERS, "Authorization": f"Klaviyo-API-Key {key}"}
        assert requests.get(url + "/api/segments", headers=headers, timeout=10).status_code == 200
    finally:
        stderr = _stop(proc)
    assert key not in stderr
    assert "GET /api/segments" in stderr


def test_flags_map_to_settings():
    args = build_parser().parse_args(
        [
            "--time-scale",
            "50",
            "--error-rate",
            "0.2",
            "--end-exclusive",
            "--shared-daily-budget",
            "--now",
            "2026-01-02T03:04:05",
        ]
    )
    s = settings_from_args(args)
    assert s.time_scale == 50
    assert s.faults.error_rate == 0.2
    assert s.end_inclusive is False
    assert s.shared_daily_budget is True
    assert s.now.isoformat() == "2026-01-02T03:04:05"
    assert s.rate_limits_enabled is True
    assert s.api_key == DEFAULT_API_KEY
