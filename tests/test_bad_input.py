"""Every kind of bad input gets a clear answer: config, api_url, STATE and API responses.

Config and STATE files go through the real command (click's runner, in-process) pointed at a
stand-in whose request log proves no HTTP call was made. Odd bookmarks are repaired with a
WARNING and the rows still come. Odd API bodies are parsed correctly or stop the run with a
clear error, never yield wrong rows.
"""

from __future__ import annotations

import io
import json
import logging
from contextlib import redirect_stdout
from datetime import date, datetime, timedelta, timezone

import pytest
import requests
import responses
from click.testing import CliRunner

from klaviyo_standin import StandinServer, StandinSettings
from tap_klaviyo_segments.bookmarks import StateError, check_state
from tap_klaviyo_segments.client import MalformedResponseError
from tap_klaviyo_segments.settings import SettingsError, parse_settings
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.tap_runner import API_KEY, base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def standin():
    settings = StandinSettings(segment_count=3, seed=11, now=NOW_LOCAL, rate_limits_enabled=False)
    with StandinServer(settings) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_log(standin):
    standin.clear_log()


class _Logs:
    """Root log records at DEBUG, as text per level."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        outer = self

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.records.append(record)

        self.handler = _Keep(logging.DEBUG)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def logs():
    captured = _Logs()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.DEBUG)
    yield captured
    root.removeHandler(captured.handler)
    root.setLevel(previous)


def run_command(tmp_path, config: dict, *args: str):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return CliRunner().invoke(
        TapKlaviyoSegments.get_singer_command(), ["--config", str(path), *args]
    )


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
    ("start_date", 20240101, ["start_date", "string"]),
    ("start_date", "2024-13-01", ["start_date", "2024-01-31"]),
    ("start_date", "yesterday", ["start_date", "date-time"]),
    ("start_date", "2024/01/01", ["start_date", "date"]),
    ("end_date", "2024-02-30", ["end_date", "2024-01-31"]),
    ("end_date", "2023-01-01", ["start_date", "end_date", "before"]),
    ("include_inactive_segments", "yes", ["include_inactive_segments", "boolean"]),
    ("lookback_days", -1, ["lookback_days", "minimum of 0"]),
    ("lookback_days", 1.5, ["lookback_days", "integer"]),
    ("account_timezone", "Mars/Olympus", ["account_timezone", "IANA", "America/New_York"]),
    ("account_timezone", "", ["account_timezone", "IANA"]),
    ("account_timezone", 5, ["account_timezone", "string"]),
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
    own = {key for key in keys if not key.startswith(("stream_map", "faker", "flattening"))}
    assert own - covered == set()


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
    result = run_command(tmp_path, config)
    assert result.exit_code == 0, result.output
    assert standin.log


# ----- STATE files: unreadable ones stop the run with a message, before any request ------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", ["is not JSON", "--state"]),
        ("", ["is empty"]),
        ('{"bookmarks": ', ["is not JSON"]),
        ("[1, 2]", ["must be a JSON object", "not a list"]),
        ('"bookmarks"', ["must be a JSON object", "not a string"]),
        ("null", ["must be a JSON object", "not null"]),
        ("42", ["must be a JSON object", "not a number"]),
    ],
    ids=["garbage", "empty", "truncated", "list", "string", "null", "number"],
)
def test_unusable_state_file_stops_with_a_clear_message(standin, tmp_path, text, words):
    state = tmp_path / "state.json"
    state.write_text(text)
    config = base_config(standin.url, segment_ids=["AbC123"], start_date="2026-11-20")
    result = run_command(tmp_path, config, "--state", str(state))
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "Invalid value for '--state'" in result.output
    for word in words:
        assert word in result.output
    assert standin.log == []


def test_state_that_is_not_an_object_is_refused_in_process_too():
    with pytest.raises(StateError, match="must be a JSON object"):
        check_state(["x"], streams=("segment_series",), today=date(2026, 11, 28), logger=LOGGER)


LOGGER = logging.getLogger("tests.bad_input")


# ----- odd STATE contents: repaired with a WARNING, and the rows still come --------------------


def _series_state(partitions):
    return {"bookmarks": {"segment_series": {"partitions": partitions}}}


def _partition(sid, value, interval="daily"):
    return {
        "context": {"interval": interval, "segment_id": sid},
        "replication_key": "date_time",
        "replication_key_value": value,
    }


ODD_STATES = {
    "another-taps-streams": (
        lambda sid: {"bookmarks": {"orders": {"replication_key_value": "2026-11-27"}}},
        "streams this tap does not have",
    ),
    "bookmarks-not-object": (lambda sid: {"bookmarks": ["x"]}, "'bookmarks' is a list"),
    "stream-state-a-string": (
        lambda sid: {"bookmarks": {"segment_series": "x"}},
        "STATE of stream segment_series",
    ),
    "partitions-not-a-list": (
        lambda sid: {"bookmarks": {"segment_series": {"partitions": {"a": 1}}}},
        "not a list",
    ),
    "partition-not-object": (lambda sid: _series_state([1, "x"]), "odd segment_series"),
    "context-missing-interval": (
        lambda sid: _series_state([{"context": {"segment_id": sid}, "replication_key_value": "x"}]),
        "context is not",
    ),
    "context-extra-keys": (
        lambda sid: _series_state(
            [
                {
                    "context": {"interval": "daily", "segment_id": sid, "shard": 2},
                    "replication_key_value": "2026-11-27T00:00:00+00:00",
                }
            ]
        ),
        "context is not",
    ),
    "unknown-interval": (
        lambda sid: _series_state([_partition(sid, "2026-11-27T00:00:00+00:00", "yearly")]),
        "interval must be one of",
    ),
    "unparseable-value": (
        lambda sid: _series_state([_partition(sid, "last tuesday")]),
        "not an ISO 8601 date-time",
    ),
    "numeric-value": (lambda sid: _series_state([_partition(sid, 1732752000)]), "ISO 8601"),
    "future-value": (
        lambda sid: _series_state([_partition(sid, "2030-01-01T00:00:00+00:00")]),
        "lies in the future",
    ),
    "stream-level-value": (
        lambda sid: {"bookmarks": {"segment_series": {"replication_key_value": "2026-11-27"}}},
        "per segment and interval",
    ),
}


@pytest.mark.parametrize("case", list(ODD_STATES))
def test_odd_bookmarks_are_repaired_with_a_warning_and_no_data_is_skipped(standin, case):
    sid = standin.account.segment_ids()[0]
    make_state, warning = ODD_STATES[case]
    config = base_config(standin.url, segment_ids=[sid], start_date="2026-11-20")
    result = run_tap(config, state=make_state(sid), now=NOW_UTC, select=("segment_series",))
    warnings = [line for line in result.logs.splitlines() if warning in line]
    assert warnings, result.logs[-2000:]
    days = [r["date_time"][:10] for r in result.records["segment_series"]]
    expected = [(date(2026, 11, 20) + timedelta(days=i)).isoformat() for i in range(9)]
    assert days == expected, "every day from start_date still comes"
    final = result.final_state["bookmarks"]["segment_series"]["partitions"]
    assert [p["context"] for p in final] == [{"interval": "daily", "segment_id": sid}]
    assert "orders" not in result.final_state["bookmarks"]


def test_duplicate_partitions_keep_the_earliest_bookmark(standin):
    sid = standin.account.segment_ids()[0]
    state = _series_state(
        [_partition(sid, "2026-11-27T00:00:00+00:00"), _partition(sid, "2026-11-22T00:00:00+00:00")]
    )
    config = base_config(standin.url, segment_ids=[sid], start_date="2026-11-01")
    result = run_tap(config, state=state, now=NOW_UTC, select=("segment_series",))
    days = [r["date_time"][:10] for r in result.records["segment_series"]]
    assert days[0] == "2026-11-22"
    assert days[-1] == "2026-11-28"


def test_a_good_bookmark_next_to_bad_ones_is_kept(standin):
    good, bad = standin.account.segment_ids()[:2]
    state = _series_state([_partition(good, "2026-11-26T00:00:00+00:00"), _partition(bad, "??")])
    config = base_config(standin.url, segment_ids=[good, bad], start_date="2026-11-20")
    result = run_tap(config, state=state, now=NOW_UTC, select=("segment_series",))
    by_segment = {}
    for row in result.records["segment_series"]:
        by_segment.setdefault(row["segment_id"], []).append(row["date_time"][:10])
    assert by_segment[good][0] == "2026-11-26"
    assert by_segment[bad][0] == "2026-11-20"
    assert len(by_segment[bad]) == 9


@pytest.mark.parametrize(
    ("value", "warning"),
    [("2030-01-01", "lies after today"), ("zzz", "not a date"), (5, "not a date")],
)
def test_odd_segment_values_bookmarks_do_not_crash_the_run(standin, value, warning, monkeypatch):
    monkeypatch.setattr(TapKlaviyoSegments, "now_utc", staticmethod(lambda: NOW_UTC))
    state = {
        "bookmarks": {
            "segment_values": {"replication_key": "as_of_date", "replication_key_value": value}
        }
    }
    sids = standin.account.segment_ids()[:2]
    config = base_config(standin.url, segment_ids=sids, values_timeframes=["last_7_days"])
    result = run_tap(config, state=state, now=NOW_UTC, select=("segment_values",))
    assert warning in result.logs
    assert len(result.records["segment_values"]) == 2
    assert result.final_state["bookmarks"]["segment_values"]["replication_key_value"] == (
        "2026-11-28"
    )


def test_a_good_state_passes_unchanged(standin):
    sid = standin.account.segment_ids()[0]
    state = _series_state([_partition(sid, "2026-11-26T00:00:00+00:00")])
    state["bookmarks"]["segment_values"] = {
        "replication_key": "as_of_date",
        "replication_key_value": "2026-11-27",
    }
    checked = check_state(
        state,
        streams=("segments", "segment_values", "segment_series"),
        today=date(2026, 11, 28),
        logger=LOGGER,
    )
    assert checked == state


# ----- API responses: parsed correctly or a clear stop, never wrong rows -----------------------

URL = "http://127.0.0.1:9"
SERIES = f"{URL}/api/segment-series-reports"
VALUES = f"{URL}/api/segment-values-reports"
SID = "AbC123"
DAYS = [f"2026-11-{d:02d}T00:00:00+00:00" for d in range(20, 29)]


def api_config(**overrides):
    config = base_config(
        URL,
        segment_ids=[SID],
        start_date="2026-11-20",
        retry_initial_wait_seconds=0.001,
        max_retries=1,
        values_timeframes=["last_7_days"],
    )
    config.update(overrides)
    return config


def series_doc(results, date_times=DAYS, **extra):
    return {
        "data": {
            "type": "segment-series-report",
            "id": "r1",
            "attributes": {"results": results, "date_times": date_times},
        },
        **extra,
    }


def result(sid, **stats):
    return {"groupings": {"segment_id": sid}, "statistics": stats}


def full_stats(n=9):
    return {
        "total_members": list(range(100, 100 + n)),
        "members_added": [2] * n,
        "members_removed": [1] * n,
        "net_members_changed": [1] * n,
    }


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def run_series(**overrides):
    return run_tap(api_config(**overrides), now=NOW_UTC, select=("segment_series",))


@responses.activate
def test_unknown_fields_everywhere_are_accepted():
    doc = series_doc(
        [
            {
                **result(SID, **full_stats(), future_statistic=[9] * 9),
                "dimensions": {"x": 1},
            }
        ],
        links={"self": SERIES},
        meta={"cursor": None, "new": True},
    )
    doc["data"]["relationships"] = {"segments": {}}
    doc["data"]["attributes"]["granularity"] = "day"
    responses.post(SERIES, json=doc)
    rows = run_series().records["segment_series"]
    assert [r["date_time"] for r in rows] == DAYS
    assert [r["total_members"] for r in rows] == list(range(100, 109))
    assert all("future_statistic" not in r for r in rows)


@responses.activate
def test_segments_not_asked_for_are_skipped_with_a_warning():
    responses.post(
        SERIES,
        json=series_doc([result(SID, **full_stats()), result("Intruder9", **full_stats())]),
    )
    outcome = run_series()
    assert {r["segment_id"] for r in outcome.records["segment_series"]} == {SID}
    assert "not asked for (Intruder9)" in outcome.logs


def values_doc(*results):
    return {"data": {"type": "segment-values-report", "attributes": {"results": list(results)}}}


VALUES_STATS = {"members_added": 3, "members_removed": 1, "net_members_changed": 2}


@responses.activate
def test_values_report_with_extra_ids_and_float_counts():
    responses.post(
        VALUES,
        json=values_doc(
            result(SID, total_members=79.0, **VALUES_STATS, extra="x"),
            result("Other1", total_members=5),
        ),
    )
    outcome = run_tap(api_config(), now=NOW_UTC, select=("segment_values",))
    rows = outcome.records["segment_values"]
    assert len(rows) == 1
    assert rows[0]["total_members"] == 79
    assert rows[0]["members_added"] == 3
    assert "not asked for (Other1)" in outcome.logs


@pytest.mark.parametrize("how", ["null", "missing"])
@responses.activate
def test_a_values_statistic_null_or_missing_fails_the_run_with_no_row(no_sleep, how):
    stats = {"total_members": 79, **VALUES_STATS}
    if how == "null":
        stats["members_added"] = None
    else:
        del stats["members_added"]
    responses.post(VALUES, json=values_doc(result(SID, **stats)))
    stdout = io.StringIO()
    with redirect_stdout(stdout), pytest.raises(MalformedResponseError) as raised:
        run_tap(api_config(), now=NOW_UTC, select=("segment_values",))
    assert f"statistic members_added of segment {SID} is {how}" in str(raised.value)
    assert '"RECORD"' not in stdout.getvalue()


BROKEN_BODIES = {
    "missing-data": (json.dumps({"links": {}}), 200, "no data.attributes"),
    "data-null": (json.dumps({"data": None}), 200, "no data.attributes"),
    "results-missing": (
        json.dumps({"data": {"attributes": {"date_times": DAYS}}}),
        200,
        "results is missing",
    ),
    "short-statistics": (
        json.dumps(series_doc([result(SID, **full_stats(8))])),
        200,
        "has 8 values for 9 date_times",
    ),
    "long-statistics": (
        json.dumps(series_doc([result(SID, **full_stats(10))])),
        200,
        "has 10 values for 9 date_times",
    ),
    "statistic-not-a-list": (
        json.dumps(series_doc([result(SID, total_members=5)])),
        200,
        "has int values",
    ),
    "text-count": (
        json.dumps(series_doc([result(SID, total_members=["1"] * 9)])),
        200,
        "is not a number",
    ),
    "fractional-count": (
        json.dumps(series_doc([result(SID, total_members=[1.5] * 9)])),
        200,
        "is not whole",
    ),
    "unparseable-date-time": (
        json.dumps(series_doc([result(SID, **full_stats())], date_times=["soon"] * 9)),
        200,
        "not an ISO 8601 date-time",
    ),
    "repeated-date-time": (
        json.dumps(series_doc([result(SID, **full_stats())], date_times=[DAYS[0]] * 9)),
        200,
        "increasing order",
    ),
    # A row without a requested statistic would be written as final: never (issue 9).
    "statistic-null-in-a-bucket": (
        json.dumps(
            series_doc([result(SID, **{**full_stats(), "total_members": [1, 2, None, *[3] * 6]})])
        ),
        200,
        "is not a number: None",
    ),
    "statistic-null": (
        json.dumps(series_doc([result(SID, **{**full_stats(), "members_added": None})])),
        200,
        f"statistic members_added of segment {SID} is null",
    ),
    "statistic-missing": (
        json.dumps(
            series_doc(
                [result(SID, **{k: v for k, v in full_stats().items() if k != "members_removed"})]
            )
        ),
        200,
        f"statistic members_removed of segment {SID} is missing",
    ),
    "leading-buckets-missing": (
        json.dumps(
            series_doc(
                [result(SID, **{k: v[2:] for k, v in full_stats().items()})], date_times=DAYS[2:]
            )
        ),
        200,
        "2 leading daily buckets",
    ),
    "empty-date-times": (
        json.dumps(series_doc([result(SID, **full_stats(0))], date_times=[])),
        200,
        "date_times is empty",
    ),
    "duplicate-segment": (
        json.dumps(series_doc([result(SID, **full_stats()), result(SID, **full_stats())])),
        200,
        "appears twice",
    ),
    "not-json": ("{not json", 200, "body is not JSON"),
    "html-on-200": (
        "<!DOCTYPE html><html><body><h1>Access denied</h1></body></html>",
        200,
        "body is not JSON",
    ),
    "html-on-502": (
        "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
        502,
        "HTTP 502",
    ),
    "empty-on-503": ("", 503, "HTTP 503"),
}


@pytest.mark.parametrize("case", list(BROKEN_BODIES))
@responses.activate
def test_broken_bodies_stop_the_run_with_a_clear_error_and_no_rows(no_sleep, case):
    body, status, words = BROKEN_BODIES[case]
    responses.post(SERIES, body=body, status=status, content_type="text/html")
    stdout = io.StringIO()
    with redirect_stdout(stdout), pytest.raises(Exception) as raised:
        run_series()
    assert words in str(raised.value)
    assert "HTTP" in str(raised.value) or "malformed" in str(raised.value)
    assert len(responses.calls) == 2, "retried once, then stopped"
    assert '"RECORD"' not in stdout.getvalue(), "no rows from a broken answer"
    if status == 200:
        assert isinstance(raised.value, MalformedResponseError)


@responses.activate
def test_a_broken_body_then_a_good_one_gives_exactly_the_good_rows(no_sleep):
    responses.post(SERIES, body="<html>proxy hiccup</html>", status=200)
    responses.post(SERIES, json=series_doc([result(SID, **full_stats())]))
    rows = run_series().records["segment_series"]
    assert [r["total_members"] for r in rows] == list(range(100, 109))


@responses.activate
def test_a_timeout_then_a_good_answer_gives_the_rows(no_sleep):
    responses.post(SERIES, body=requests.Timeout("read timed out"))
    responses.post(SERIES, json=series_doc([result(SID, **full_stats())]))
    assert len(run_series().records["segment_series"]) == 9


def test_settings_errors_name_every_key():
    with pytest.raises(SettingsError) as raised:
        parse_settings({"api_key": API_KEY, "start_date": "x", "account_timezone": "y"})
    assert len(raised.value.errors) == 2


@responses.activate
def test_a_segment_missing_from_the_answer_keeps_its_bookmark_and_is_named():
    other = "Zzz999"
    responses.post(SERIES, json=series_doc([result(SID, **full_stats())]))
    outcome = run_series(segment_ids=[SID, other])
    assert {r["segment_id"] for r in outcome.records["segment_series"]} == {SID}
    partitions = outcome.final_state["bookmarks"]["segment_series"]["partitions"]
    moved = {p["context"]["segment_id"] for p in partitions if p.get("replication_key_value")}
    assert moved == {SID}, "the unanswered segment must be asked again next run"
    assert other in outcome.logs


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
