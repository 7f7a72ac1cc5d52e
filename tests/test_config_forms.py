"""Config as it really arrives: numbers from the environment, defaults from the schema, SDK keys.

The environment tests run the installed commands in a subprocess with ``--config ENV`` (the way
a user or Meltano's `--config ENV` style would), against an in-process stand-in whose request
log shows whether the run got as far as the API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from klaviyo_standin import StandinServer, StandinSettings
from tap_klaviyo_segments import settings as settings_module
from tap_klaviyo_segments.settings import SettingsError, config_schema, parse_settings
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.tap_runner import API_KEY

BIN = Path(sys.executable).parent
NOW = datetime(2026, 11, 28, 10, 30)
NUMBER_KEYS = [
    key
    for key, spec in config_schema()["properties"].items()
    if {"number", "integer"} & set(spec.get("type", []))
]


@pytest.fixture(scope="module")
def standin():
    settings = StandinSettings(segment_count=2, seed=5, now=NOW, rate_limits_enabled=False)
    with StandinServer(settings) as server:
        yield server


def env_for(config: dict) -> dict[str, str]:
    """The process environment with ``config`` as TAP_KLAVIYO_SEGMENTS_* variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAP_KLAVIYO_SEGMENTS_")}
    for key, value in config.items():
        text = json.dumps(value) if isinstance(value, list) else str(value)
        env[f"TAP_KLAVIYO_SEGMENTS_{key.upper()}"] = text
    return env


def run(command: str, config: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), "--config", "ENV", *args],
        env=env_for(config),
        cwd=cwd,  # no .env file is picked up from the checkout
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_number_settings_from_the_environment_sync(standin, tmp_path):
    """The issue's command: REPORT_CALLS_PER_MINUTE=6000 with --config ENV used to exit 1."""
    config = {
        "api_key": API_KEY,
        "api_url": standin.url,
        "start_date": (NOW - timedelta(days=3)).date().isoformat(),
        "end_date": (NOW - timedelta(days=1)).date().isoformat(),
        "report_calls_per_minute": "6000",
        "report_calls_per_second": "100.5",
        "retry_initial_wait_seconds": "0.01",
        "max_retry_wait_seconds": "1.5",
        "request_timeout": "7.5",
        "report_calls_per_day": "50",
        "lookback_days": "1",
        "max_retries": "1",
    }
    standin.clear_log()
    proc = run("tap-klaviyo-segments", config, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    streams = {m["stream"] for m in records if m["type"] == "RECORD"}
    assert streams == {"segments", "segment_values", "segment_series"}
    assert standin.report_calls(), "the sync reached the report endpoints"


def test_fractional_pace_from_the_environment_is_the_pace_used(tmp_path):
    """The call plan prints the pace the sync keeps: 0.5 a minute from text is 0.5, not 0 or 1."""
    config = {
        "api_key": API_KEY,
        "api_url": "http://127.0.0.1:9",  # never called: segment_ids are given
        "segment_ids": ["AbC123"],
        "start_date": "2026-11-01",
        "report_calls_per_minute": "0.5",
        "report_calls_per_second": "0.25",
        "report_calls_per_day": "12",
    }
    proc = run("tap-klaviyo-segments-plan", config, "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout)
    text = json.dumps(plan)
    assert plan["pace"]["report_calls_per_minute"] == 0.5, text
    assert plan["pace"]["report_calls_per_second"] == 0.25, text
    assert plan["pace"]["seconds_per_call"] == 120, text
    assert plan["budget"]["report_calls_per_day"] == 12, text


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("report_calls_per_minute", "fast", ["report_calls_per_minute", "a number", "> 0"]),
        ("report_calls_per_minute", "0", ["report_calls_per_minute", "> 0"]),
        ("request_timeout", "-1", ["request_timeout", "> 0"]),
        ("max_retry_wait_seconds", "nan", ["max_retry_wait_seconds", "a number", ">= 0"]),
        ("retry_initial_wait_seconds", "1e999", ["retry_initial_wait_seconds", "a number"]),
    ],
)
def test_a_non_number_from_the_environment_is_one_clear_error(standin, tmp_path, key, value, words):
    config = {"api_key": API_KEY, "api_url": standin.url, key: value}
    standin.clear_log()
    proc = run("tap-klaviyo-segments", config, cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "| ERROR" in line]
    named = [line for line in errors if key in line]
    assert len(named) == 1, errors
    for word in words:
        assert word in named[0], named[0]
    assert API_KEY not in proc.stderr + proc.stdout
    assert standin.log == [], "no request reached the API"


@pytest.mark.parametrize("key", NUMBER_KEYS)
def test_each_number_setting_reads_text_decimal_and_number_alike(key):
    schema = config_schema()
    default = schema["properties"][key]["default"]
    value = default + 1
    forms = [value, str(value), Decimal(str(value))]
    got = {
        repr(form): _settings_value(parse_settings({"api_key": API_KEY, key: form}), key)
        for form in forms
    }
    assert set(got.values()) == {value}, got


def _settings_value(settings, key):
    if key == "lookback_days":
        return settings.lookback.days
    return getattr(settings, key)


@pytest.mark.parametrize("key", ["max_retries", "report_calls_per_day", "lookback_days"])
def test_a_whole_number_setting_rejects_a_fraction(key):
    with pytest.raises(SettingsError, match=f"{key} must be a whole number"):
        parse_settings({"api_key": API_KEY, key: "1.5"})


def test_defaults_come_from_the_config_schema():
    """Settings has no defaults of its own: what the schema says is what leaving a key out gives."""
    schema = config_schema()
    plain = parse_settings({"api_key": API_KEY})
    assert plain.report_calls_per_day == schema["properties"]["report_calls_per_day"]["default"]
    assert plain.api_url == schema["properties"]["api_url"]["default"]
    defaults = {
        key: spec["default"] for key, spec in schema["properties"].items() if "default" in spec
    }
    defaults.pop("emit_activate_version_messages")  # singer-sdk's, not read into Settings
    assert len(defaults) == 17
    assert parse_settings({"api_key": API_KEY, **defaults}) == plain


def test_a_default_changed_in_the_table_moves_the_schema_and_settings_alike(monkeypatch):
    """One declaration per key: change a default in the table and both outputs follow."""
    overrides = {
        "report_calls_per_day": 7,
        "report_calls_per_minute": 3.5,
        "lookback_days": 9,
        "revision": "2030-01-01",
        "account_timezone": "Europe/Berlin",
        "series_intervals": ["weekly"],
        "values_timeframes": ["today"],
        "include_inactive_segments": True,
        "start_date": "2024-02-03",
    }
    table = tuple(
        dataclasses.replace(setting, default=overrides.get(setting.key, setting.default))
        for setting in settings_module.SETTINGS
    )
    monkeypatch.setattr(settings_module, "SETTINGS", table)
    schema = config_schema()
    for key, value in overrides.items():
        assert schema["properties"][key]["default"] == value
    moved = parse_settings({"api_key": API_KEY})
    assert moved.report_calls_per_day == 7
    assert moved.report_calls_per_minute == 3.5
    assert moved.lookback == timedelta(days=9)
    assert moved.revision == "2030-01-01"
    assert moved.timezone.key == "Europe/Berlin"
    assert moved.series_intervals == ("weekly",)
    assert moved.values_timeframes == ("today",)
    assert moved.include_inactive_segments is True
    assert moved.start == datetime(2024, 2, 3)


def _validation_errors(config: dict) -> list[str]:
    tap = TapKlaviyoSegments(config=config, validate_config=False, setup_mapper=False)
    return tap._validate_config(raise_errors=False)


def test_an_unknown_key_is_the_only_error_whatever_the_sdk_adds():
    """singer-sdk 0.55 fills in defaults of its own settings; they are not 'unknown' keys."""
    errors = _validation_errors({"api_key": API_KEY, "report_calls_per_mintue": 3})
    assert len(errors) == 1, errors
    assert "'report_calls_per_mintue' is unknown" in errors[0]
    assert "did you mean 'report_calls_per_minute'" in errors[0]


def test_every_setting_about_advertises_is_accepted():
    """What --about lists (the tap's own and singer-sdk's built-in settings) passes validation."""
    about = json.loads(
        subprocess.run(
            [str(BIN / "tap-klaviyo-segments"), "--about", "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    assert "activate-version" in about["capabilities"]
    advertised = set(about["settings"]["properties"])
    assert "emit_activate_version_messages" in advertised
    sample = {
        "emit_activate_version_messages": True,
        "stream_maps": {},
        "stream_map_config": {},
        "flattening_enabled": False,
        "flattening_max_depth": 1,
    }
    assert set(sample) <= advertised
    assert _validation_errors({"api_key": API_KEY, **sample}) == []


def test_sample_config_is_valid_and_aims_at_the_readme_stand_in():
    """docs/singer.md runs sample_config.json against `python -m klaviyo_standin --port 8765`."""
    sample = json.loads((Path(__file__).resolve().parents[1] / "sample_config.json").read_text())
    assert sample["api_url"] == "http://127.0.0.1:8765"
    assert set(sample) <= set(config_schema()["properties"])
    assert _validation_errors(sample) == []
    defaults = {
        key: spec["default"]
        for key, spec in config_schema()["properties"].items()
        if "default" in spec
    }
    paced = ("report_calls_per_minute", "report_calls_per_second", "report_calls_per_day")
    assert {key: sample[key] for key in paced} == {key: defaults[key] for key in paced}, (
        "the sample keeps Klaviyo's real pace (docs/singer.md's run time depends on it)"
    )
