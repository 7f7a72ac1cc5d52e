"""Config messages as a user meets them: each problem said once, in one line that says the fix.

Meltano runs the tap twice for one `meltano run`: ``--discover`` (for the catalog), then the sync
with that catalog. Both go through the real command here (click's runner, in-process), against
the stand-in, whose request log shows whether a run got as far as the API.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tap_klaviyo_segments import settings as settings_module
from tap_klaviyo_segments.settings import SETTINGS, SettingsError
from tests.cli_runner import run_command
from tests.tap_runner import API_KEY, base_config

SDK_SUMMARY = "Config validation failed"  # singer-sdk's closing line after the tap's own


def as_meltano_runs(tmp_path: Path, config: dict[str, Any]) -> tuple[int, int]:
    """``--discover`` then the sync with its catalog, as `meltano run` does; their exit codes."""
    discovery = run_command(tmp_path, config, "--discover")
    codes = [discovery.exit_code]
    if discovery.exit_code == 0:
        catalog = tmp_path / "catalog.json"
        catalog.write_text(discovery.stdout)
        json.loads(discovery.stdout)  # discovery still writes its catalog
        codes.append(run_command(tmp_path, config, "--catalog", str(catalog)).exit_code)
    return codes[0], codes[-1]


def lines_naming(logs: Any, words: str) -> list[tuple[str, str]]:
    """(level, message) of every log line, at WARNING or above, that contains ``words``."""
    return [
        (record.levelname, record.getMessage())
        for record in logs.records
        if record.levelno >= logging.WARNING and words in record.getMessage()
    ]


# ----- said once, across Meltano's discovery and run ---------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("start_date", "soon"), ("api_url", "a.klaviyo.com"), ("account_timezone", "Mars/Base")],
)
def test_a_bad_value_is_one_error_across_discovery_and_run(standin, tmp_path, logs, key, value):
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-01")
    config[key] = value
    discovered, ran = as_meltano_runs(tmp_path, config)
    assert discovered == 0, "discovery needs no valid config"
    assert ran != 0
    assert lines_naming(logs, key) == [("ERROR", lines_naming(logs, key)[0][1])]
    assert standin.log == [], "no request reached the API"


def test_an_early_start_date_is_one_warning_across_discovery_and_run(standin, tmp_path, logs):
    config = base_config(
        standin.url, segment_ids=["AbC123"], start_date="2022-01-01", end_date="2023-06-03"
    )
    config["series_intervals"] = ["weekly"]
    discovered, ran = as_meltano_runs(tmp_path, config)
    assert (discovered, ran) == (0, 0)
    assert lines_naming(logs, "start_date 2022-01-01") == [
        (
            "WARNING",
            "start_date 2022-01-01 is before 2023-06-01, when Klaviyo's segment data begins; "
            "reporting from 2023-06-01",
        )
    ]


def test_the_config_is_parsed_once_per_run(standin, tmp_path, monkeypatch):
    parsed = []
    original = settings_module.parse_settings

    def counted(config):
        parsed.append(config)
        return original(config)

    monkeypatch.setattr(settings_module, "parse_settings", counted)
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-20")
    config["series_intervals"] = ["weekly"]
    result = run_command(tmp_path, config)
    assert result.exit_code == 0, result.output
    assert standin.report_calls(), "the run reached the report endpoints"
    assert len(parsed) == 1


# ----- an unknown key: the key, the closest match, where the accepted ones are ------------------


@pytest.mark.parametrize(
    ("key", "closest"),
    [("apikey", "api_key"), ("report_calls_per_mintue", "report_calls_per_minute")],
)
def test_an_unknown_key_names_the_closest_and_about_not_every_key(
    standin, tmp_path, logs, key, closest
):
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-01")
    config[key] = 3
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    errors = [m for m in logs.at(logging.ERROR) if m != SDK_SUMMARY]
    assert errors == [
        f"config key {key!r} is unknown (did you mean {closest!r}?); "
        "`tap-klaviyo-segments --about` lists the accepted keys"
    ]
    others = [s.key for s in SETTINGS if s.key not in (key, closest)]
    assert not [other for other in others if other in errors[0]], "no list of keys"
    assert standin.log == []


def test_an_unknown_key_like_no_other_gets_no_guess(standin, tmp_path, logs):
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-01")
    config["zzz"] = 1
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    errors = [m for m in logs.at(logging.ERROR) if m != SDK_SUMMARY]
    assert errors == [
        "config key 'zzz' is unknown; `tap-klaviyo-segments --about` lists the accepted keys"
    ]


# ----- api_url: the scheme, and no /api at the end --------------------------------------------


def test_an_api_url_without_a_scheme_says_http_is_allowed_to_loopback(standin, tmp_path, logs):
    config = base_config("a.klaviyo.com", segment_ids=["AbC123"], start_date="2026-11-01")
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    errors = [m for m in logs.at(logging.ERROR) if m != SDK_SUMMARY]
    assert errors == [
        "api_url must be a URL with its scheme, such as https://a.klaviyo.com (plain http:// "
        "only to 127.0.0.1 or localhost, for a local stand-in), not 'a.klaviyo.com'"
    ]


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("https://a.klaviyo.com/api", "https://a.klaviyo.com"),
        ("https://a.klaviyo.com/api/", "https://a.klaviyo.com"),
        ("https://a.klaviyo.com/API", "https://a.klaviyo.com"),
        ("http://127.0.0.1:8765/api", "http://127.0.0.1:8765"),
    ],
)
def test_an_api_url_ending_in_api_is_refused_with_the_base_to_use(url, base):
    """In process: a regression must not send a test to a.klaviyo.com."""
    with pytest.raises(SettingsError) as raised:
        settings_module.parse_settings({"api_key": API_KEY, "api_url": url})
    (error,) = raised.value.errors
    assert error == (
        "api_url is the address before /api (the tap adds /api/segments and the rest): "
        f"drop /api and set {base!r}, not {url.rstrip('/')!r}"
    )


def test_an_api_url_ending_in_api_never_reaches_api_api(standin, tmp_path, logs):
    """Before: a 404 on /api/api/segments. Now: one line, and no request at all."""
    config = base_config(standin.url + "/api", start_date="2026-11-01")
    result = run_command(tmp_path, config)
    assert result.exit_code != 0
    assert standin.log == []
    errors = [m for m in logs.at(logging.ERROR) if m != SDK_SUMMARY]
    assert len(errors) == 1, errors
    assert f"set {standin.url!r}" in errors[0]


def test_an_api_url_with_a_path_not_ending_in_api_is_kept(standin):
    """A proxy's path prefix is not /api: it stays (only the doubled /api is refused)."""
    got = settings_module.parse_settings(
        {"api_key": API_KEY, "api_url": "https://proxy.example.com/klaviyo/"}
    )
    assert got.api_url == "https://proxy.example.com/klaviyo"
