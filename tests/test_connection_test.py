"""``--test`` checks the key, its scope and the API with GET /api/segments only (issue 19)."""

from __future__ import annotations

import logging

from tests.cli_runner import run_command
from tests.tap_runner import API_KEY, base_config


def test_test_lists_segments_and_makes_no_report_call(standin, tmp_path, logs):
    result = run_command(tmp_path, base_config(standin.url), "--test")
    assert result.exit_code == 0, result.output
    verdict = [m for m in logs.at(logging.INFO) if "Connection test passed" in m]
    assert len(verdict) == 1, logs.at(logging.INFO)
    total = len(standin.account.segments())
    active = sum(1 for s in standin.account.segments() if s["is_active"])
    assert f"lists {total} segments ({active} active)" in verdict[0]
    assert standin.report_calls() == []
    assert all(entry.path.endswith("/api/segments") for entry in standin.log)
    assert not [r for r in logs.records if API_KEY in r.getMessage()]


def test_test_with_a_wrong_key_is_one_error_line(standin, tmp_path, logs):
    config = base_config(standin.url, api_key="pk_wrong_0123456789")
    result = run_command(tmp_path, config, "--test")
    assert result.exit_code == 1
    errors = logs.at(logging.ERROR)
    assert len(errors) == 1, errors
    assert "api_key was not accepted" in errors[0]
    assert "pk_wrong_0123456789" not in errors[0]
    assert standin.report_calls() == []
