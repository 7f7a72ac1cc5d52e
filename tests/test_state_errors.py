"""Every kind of bad STATE gets a clear answer.

Unreadable STATE files stop the run with a message before any request (the stand-in's request
log proves it). Odd bookmarks are repaired with a WARNING and the rows still come.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

import pytest

from tap_klaviyo_segments.state_checks import StateError, check_state
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.cli_runner import run_command
from tests.tap_runner import base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)


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
