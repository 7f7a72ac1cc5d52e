"""The msgspec message writer writes the same Singer messages as singer-sdk's default one."""

from __future__ import annotations

import contextlib
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.singerlib.encoding import SimpleSingerWriter
from singer_sdk.singerlib.messages import RecordMessage, StateMessage

from klaviyo_standin import StandinServer
from tap_klaviyo_segments.singer_output import SingerWriter
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.tap_runner import API_KEY, base_config
from tests.test_reliability import NOW_UTC, standin_settings

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
#: The keys each Singer message may have (singer-sdk leaves out the ones that are null).
SINGER_KEYS = {
    "SCHEMA": {"type", "stream", "schema", "key_properties", "bookmark_properties"},
    "RECORD": {"type", "stream", "record", "time_extracted"},
    "STATE": {"type", "value"},
}


class SdkWriterTap(TapKlaviyoSegments):
    """The tap as it was, with singer-sdk's default (simplejson) writer."""

    message_writer_class = SimpleSingerWriter


def sync_to_file(tap_class: type[TapKlaviyoSegments], url: str, path: Path) -> list[str]:
    """Sync with stdout on a real file (bytes underneath, as in production); its lines."""
    config = base_config(url, start_date="2026-06-01", series_intervals=["daily", "weekly"])
    with path.open("w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        tap = tap_class(config=config)
        tap.now_utc = lambda: NOW_UTC  # type: ignore[method-assign]
        tap.sync_all()
    return path.read_text(encoding="utf-8").splitlines()


def test_a_sync_writes_the_same_singer_messages_as_with_the_sdk_writer(tmp_path):
    with StandinServer(standin_settings(segment_count=12)) as server:
        before = sync_to_file(SdkWriterTap, server.url, tmp_path / "sdk.jsonl")
        after = sync_to_file(TapKlaviyoSegments, server.url, tmp_path / "msgspec.jsonl")
    assert len(after) == len(before) > 100
    kinds: set[str] = set()
    for old_line, new_line in zip(before, after, strict=True):
        old, new = json.loads(old_line), json.loads(new_line)
        kinds.add(new["type"])
        assert list(new) == list(old), "same keys, same order"
        assert {"type"} < set(new) <= SINGER_KEYS[new["type"]]
        if new["type"] == "RECORD":
            assert RFC3339.match(new.pop("time_extracted"))
            assert RFC3339.match(old.pop("time_extracted"))
        assert new == old
        assert API_KEY not in new_line
    assert kinds == {"SCHEMA", "RECORD", "STATE"}


def test_text_and_byte_stdout_get_the_same_lines():
    message = RecordMessage(
        stream="segments",
        record={"id": "AbC", "name": 'Käufer ✓ "VIP"\n', "count": 3, "none": None},
        time_extracted=datetime(2026, 11, 28, 10, 30, 0, 123456, tzinfo=timezone.utc),
    )
    state = StateMessage(value={"bookmarks": {"s": {"partitions": []}}, "report_calls": {}})
    writer = SingerWriter()
    text = io.StringIO()
    raw = io.BytesIO()
    for out in (text, io.TextIOWrapper(raw, encoding="utf-8")):
        with contextlib.redirect_stdout(out):
            writer.write_message(message)
            writer.write_message(state)
    lines = text.getvalue().splitlines()
    assert lines == raw.getvalue().decode("utf-8").splitlines()
    parsed: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert parsed[0]["record"] == message.record
    assert parsed[0]["time_extracted"] == "2026-11-28T10:30:00.123456Z"
    assert datetime.fromisoformat(parsed[0]["time_extracted"]) == message.time_extracted
    assert parsed[1] == {"type": "STATE", "value": state.value}
    sdk = json.loads(SimpleSingerWriter().format_message(message))
    assert sdk["record"] == parsed[0]["record"]
    assert list(sdk) == list(parsed[0])


def test_a_signal_during_a_line_is_handled_after_the_line(monkeypatch, capsys):
    """SIGTERM's handler writes the final STATE: never in the middle of a half-written line."""
    import signal

    from singer_sdk.singerlib.messages import RecordMessage

    from tap_klaviyo_segments.tap import TapKlaviyoSegments

    tap = TapKlaviyoSegments(
        config={"api_key": "pk_test_0123456789", "segment_ids": ["AbC123"]},
        validate_config=False,
    )
    writer = tap.message_writer
    writer.writing = True  # as if the signal arrived inside write_message
    tap._handle_termination(signal.SIGTERM, None)  # deferred: nothing written, no exit
    assert writer.deferred is not None
    assert capsys.readouterr().out == ""
    writer.writing = False
    with pytest.raises(SystemExit) as raised:
        writer.write_message(RecordMessage(stream="segment_series", record={"a": 1}))
    assert raised.value.code == 143
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0])["type"] == "RECORD", "the line in progress is finished first"
    assert all(json.loads(line) for line in lines)
    assert json.loads(lines[-1])["type"] == "STATE"
