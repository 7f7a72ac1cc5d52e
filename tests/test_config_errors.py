"""Every bad config value gets one clear message, exit non-zero, and no HTTP call.

Config files go through the real command (click's runner, in-process) pointed at a stand-in
whose request log proves no HTTP call was made.
"""

from __future__ import annotations

import logging

import pytest

from tap_klaviyo_segments.settings import SettingsError, parse_settings
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.cli_runner import run_command
from tests.tap_runner import API_KEY, base_config

URL = "http://127.0.0.1:9"


# ----- api_url: https only, plain http only to loopback ----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://a.klaviyo.com",
        "https://a.klaviyo.com/",
        "http://127.0.0.1:8765",
        "http://localhost",
        "http://localhost:9000",
        "http://127.0.0.2",
        "http://[::1]:8080",
    ],
)
def test_https_and_loopback_http_are_accepted(url):
    assert parse_settings({"api_key": API_KEY, "api_url": url}).api_url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://a.klaviyo.com",
        "http://10.0.0.1",
        "http://192.168.1.5:8765",
        "http://0.0.0.0:8765",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "ftp://a.klaviyo.com",
        "a.klaviyo.com",
        "https://",
        "file:///etc/passwd",
    ],
)
def test_other_urls_are_refused_before_any_request(tmp_path, logs, url):
    result = run_command(tmp_path, {"api_key": API_KEY, "api_url": url})
    assert result.exit_code != 0
    errors = [m for m in logs.at(logging.ERROR) if m != "Config validation failed"]
    assert len(errors) == 1, errors
    assert "api_url must" in errors[0]
    assert "https://" in errors[0]
    assert not [r for r in logs.records if r.name.startswith("urllib3")], "no connection opened"


# ----- config: one clear message per bad key, exit non-zero, no HTTP call ----------------------

# (key, bad value, words the one message must contain)
BAD_CONFIG = [
    ("api_key", 123, ["api_key", "string"]),
    ("api_key", "", ["api_key", "non-empty"]),
    ("api_key", "pk_live abc", ["api_key", "without spaces"]),
    ("api_key", None, ["api_key", "string"]),
    ("api_key", "pk_cl\u00e9_0123456789", ["api_key", "HTTP header cannot carry", "character 6"]),
    ("start_date", 20240101, ["start_date", "string"]),
    ("start_date", "2024-13-01", ["start_date", "2024-01-31"]),
    ("start_date", "yesterday", ["start_date", "date-time"]),
    ("start_date", "2024/01/01", ["start_date", "date"]),
    ("end_date", "2024-02-30", ["end_date", "2024-01-31"]),
    ("end_date", "2023-01-01", ["start_date", "end_date", "before"]),
    ("end_date", "2023-05-31", ["end_date", "before 2023-06-01", "leave it out"]),
    ("include_inactive_segments", "yes", ["include_inactive_segments", "boolean"]),
    ("lookback_days", -1, ["lookback_days", "minimum of 0"]),
    ("lookback_days", 1.5, ["lookback_days", "integer"]),
    ("account_timezone", "Mars/Olympus", ["account_timezone", "IANA", "America/New_York"]),
    ("account_timezone", "", ["account_timezone", "IANA"]),
    ("account_timezone", 5, ["account_timezone", "string"]),
    ("whole_account_calls", "always", ["whole_account_calls", "auto", "never"]),
    ("revision", "latest", ["revision", "YYYY-MM-DD"]),
    ("revision", "2024-1-1", ["revision", "YYYY-MM-DD"]),
    ("revision", 20241015, ["revision", "string"]),
    ("api_url", 5, ["api_url", "string"]),
    ("report_calls_per_minute", 0, ["report_calls_per_minute", "minimum of 0"]),
    ("report_calls_per_minute", "fast", ["report_calls_per_minute", "number"]),
    ("report_calls_per_second", -1, ["report_calls_per_second", "minimum"]),
    ("report_calls_per_day", 2.5, ["report_calls_per_day", "integer"]),
    ("report_calls_per_day", -5, ["report_calls_per_day", "minimum of 0"]),
    ("max_retry_wait_seconds", -1, ["max_retry_wait_seconds", "minimum of 0"]),
    ("request_timeout", 0, ["request_timeout", "minimum of 0"]),
    ("max_retries", "x", ["max_retries", "integer"]),
    ("retry_initial_wait_seconds", -0.5, ["retry_initial_wait_seconds", "minimum"]),
    ("segment_ids", [], ["segment_ids", "non-empty"]),
    ("segment_ids", "AbC123", ["segment_ids", "array"]),
    ("segment_ids", [1], ["segment_ids", "string"]),
    ("segment_ids", ["a b"], ["segment_ids", "letters, digits", "'a b'"]),
    ("segment_ids", ['ab"c'], ["segment_ids", "letters, digits"]),
    ("segment_ids", ["ab'c"], ["segment_ids", "letters, digits"]),
    ("segment_ids", ["AbC", "AbC"], ["segment_ids", "non-unique"]),
    ("segment_ids", ["AbC", "Xyz", "AbC"], ["segment_ids", "'AbC' listed more than once"]),
    ("statistics", [], ["statistics", "non-empty"]),
    ("statistics", ["members"], ["statistics", "total_members", "net_members_changed"]),
    ("statistics", "total_members", ["statistics", "array"]),
    ("series_intervals", ["yearly"], ["series_intervals", "hourly", "monthly"]),
    ("series_intervals", [], ["series_intervals", "non-empty"]),
    ("values_timeframes", ["last_2_days"], ["values_timeframes", "last_7_days", "yesterday"]),
    ("values_timeframes", [], ["values_timeframes", "non-empty"]),
    ("apikey", API_KEY, ["'apikey'", "unknown", "did you mean 'api_key'", "accepted keys"]),
    ("start", "2024-01-01", ["'start'", "unknown", "start_date"]),
]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    BAD_CONFIG,
    ids=[f"{key}={value!r}" for key, value, _ in BAD_CONFIG],
)
def test_each_bad_config_value_gets_one_message_and_no_http_call(
    standin, tmp_path, logs, key, value, words
):
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-01")
    config[key] = value
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    errors = [m for m in logs.at(logging.ERROR) if m != "Config validation failed"]
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0], errors[0]
    assert standin.log == [], "no request reached the API"


def test_every_config_key_is_covered_by_the_table():
    keys = set(TapKlaviyoSegments.config_jsonschema["properties"])
    covered = {key for key, _, _ in BAD_CONFIG}
    builtin = {"emit_activate_version_messages"}  # singer-sdk's, declared for 0.54 (settings.py)
    own = {key for key in keys if not key.startswith(("stream_map", "faker", "flattening"))}
    assert own - builtin - covered == set()


def test_several_bad_keys_are_all_reported_at_once(standin, tmp_path, logs):
    config = base_config(standin.url, account_timezone="Nowhere", revision="v3")
    config["start_date"] = "soon"
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    errors = " | ".join(logs.at(logging.ERROR))
    for key in ("account_timezone", "revision", "start_date"):
        assert key in errors
    assert standin.log == []


def test_a_good_config_does_reach_the_api(standin, tmp_path):
    """The control: the same harness with a valid config makes requests and exits 0."""
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-20")
    config["series_intervals"] = ["weekly"]
    # The CLI runs on the real clock, the stand-in's is frozen on 2026-11-28: ask only for the
    # Monday week that ended before it, so the answer never lacks a week the tap sees closed.
    config["end_date"] = "2026-11-22"
    result = run_command(tmp_path, config)
    assert result.exit_code == 0, result.output
    assert standin.log


# ----- settings in process --------------------------------------------------------------------


def test_settings_errors_name_every_key():
    with pytest.raises(SettingsError) as raised:
        parse_settings({"api_key": API_KEY, "start_date": "x", "account_timezone": "y"})
    assert len(raised.value.errors) == 2


def test_a_start_date_in_the_future_is_named_in_a_warning(logs):
    TapKlaviyoSegments(config={"api_key": API_KEY, "api_url": URL, "start_date": "2099-01-01"})
    assert any("is in the future" in m for m in logs.at(logging.WARNING))


@pytest.mark.parametrize(
    "key",
    ["lookback_days", "report_calls_per_minute", "max_retries", "account_timezone", "start_date"],
)
def test_a_null_optional_key_means_its_default(key):
    settings = parse_settings({"api_key": API_KEY, key: None})
    assert settings == parse_settings({"api_key": API_KEY})


def test_repeated_segment_ids_are_named_not_the_whole_list(standin, tmp_path, logs):
    ids = [f"Seg{n:05d}" for n in range(5000)] + ["Seg00042", "Seg04999"]
    config = base_config(standin.url, segment_ids=ids, start_date="2026-11-01")
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    errors = [m for m in logs.at(logging.ERROR) if m != "Config validation failed"]
    assert len(errors) == 1, errors
    assert "'Seg00042', 'Seg04999' listed more than once" in errors[0]
    assert "Seg00041" not in errors[0]
    assert len(errors[0]) < 300
    assert standin.log == []


def test_an_end_date_before_klaviyos_data_is_refused_even_after_an_early_start_date():
    with pytest.raises(SettingsError) as raised:
        parse_settings({"api_key": API_KEY, "start_date": "2022-01-01", "end_date": "2023-03-01"})
    assert raised.value.errors == [
        "end_date (2023-03-01) is before 2023-06-01, when Klaviyo's segment data begins, so the "
        "run would report nothing: set end_date to a later day than start_date, or leave it out "
        "to report up to now"
    ]


def test_an_end_date_on_the_first_data_day_is_accepted():
    settings = parse_settings(
        {"api_key": API_KEY, "start_date": "2022-01-01", "end_date": "2023-06-01"}
    )
    assert settings.end is not None


def test_a_key_a_header_cannot_carry_never_reaches_http(standin, tmp_path, logs):
    config = base_config(
        standin.url, api_key="pk_\u2603snowman_0123456789", start_date="2026-11-01"
    )
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    assert "UnicodeEncodeError" not in result.output
    assert not [r for r in logs.records if r.exc_info and "UnicodeEncodeError" in repr(r.exc_info)]
    assert standin.log == []
