"""The call plan equals the calls the sync then makes, and never calls the report endpoints."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from datetime import datetime, timezone

import pytest

from klaviyo_standin import StandinSettings
from tap_klaviyo_segments.callplan import plan_sync, plan_to_dict
from tap_klaviyo_segments.plan_command import render_text
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tap_klaviyo_segments.tap import plan_main as main
from tests.plan_math import minimum_series_calls
from tests.tap_runner import base_config, run_tap

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)
NOW_UTC = NOW_LOCAL.replace(tzinfo=timezone.utc)
SERIES = "/api/segment-series-reports"
VALUES = "/api/segment-values-reports"


@pytest.fixture(scope="module")
def standin_settings():
    return StandinSettings(segment_count=130, seed=11, now=NOW_LOCAL, rate_limits_enabled=False)


def plan_for(config, state=None, select=None):
    tap = TapKlaviyoSegments(config=config, state=copy.deepcopy(state) if state else None)
    tap.now_utc = lambda: NOW_UTC  # type: ignore[method-assign]
    if select is not None:
        for name, stream in tap.streams.items():
            stream.selected = name in select
    return plan_sync(tap)


def calls_by_path(server) -> dict[str, int]:
    counts = {SERIES: 0, VALUES: 0}
    for entry in server.report_calls():
        for path in counts:
            if entry.path.endswith(path):
                counts[path] += 1
    return counts


def assert_plan_matches_sync(server, config, state=None):
    """Plan (no report calls), then sync; the counts must agree per stream."""
    plan = plan_for(config, state)
    assert server.report_calls() == [], "planning must not call the report endpoints"
    result = run_tap(config, state=state, now=NOW_UTC)
    made = calls_by_path(server)
    assert plan.calls_this_run == made[VALUES] + made[SERIES]
    if plan.total_calls <= plan.calls_per_day:
        assert plan.values_calls == made[VALUES]
        assert plan.series_calls == made[SERIES]
    else:  # values go first, then the series until the budget stops the run
        assert made[VALUES] == min(plan.values_calls, plan.calls_per_day)
    server.clear_log()
    return plan, result


MODES = ["never", "auto"]


@pytest.mark.parametrize("mode", MODES)
def test_fresh_state_plan_equals_sync_calls(standin, mode):
    config = base_config(
        standin.url,
        start_date="2026-06-01",
        series_intervals=["daily", "weekly"],
        values_timeframes=["last_30_days", "last_7_days"],
        whole_account_calls=mode,
    )
    plan, _ = assert_plan_matches_sync(standin, config)
    segments = plan.segment_count
    assert segments > 100  # listed through GET /api/segments: two batches, or one whole call
    assert plan.segment_source == "GET /api/segments"
    whole = mode == "auto"
    assert plan.values_calls == 2 * (1 if whole else 2)
    by_interval = {p.interval: p for p in plan.series}
    # A fresh backfill is the minimum: ceil(S/100) (or 1 whole-account call) x windows.
    days = (NOW_LOCAL.date() - datetime(2026, 6, 1).date()).days + 1
    assert len(by_interval["daily"].calls) == minimum_series_calls(
        segments, days, "daily", whole_account=whole
    )
    assert by_interval["daily"].never_synced == segments


def test_hourly_and_monthly_plan_equals_sync_calls(standin):
    ids = standin.account.segment_ids()[:2]
    config = base_config(
        standin.url,
        segment_ids=ids,
        start_date="2026-09-15T06:00:00",
        series_intervals=["hourly", "monthly"],
    )
    plan, first = assert_plan_matches_sync(standin, config)
    assert {p.interval: len(p.windows) for p in plan.series} == {"hourly": 11, "monthly": 1}
    assert_plan_matches_sync(standin, config, state=first.final_state)


@pytest.mark.parametrize("mode", MODES)
def test_saved_state_plan_equals_sync_calls(standin, mode):
    ids = standin.account.segment_ids()[:120]
    config = base_config(
        standin.url, segment_ids=ids, start_date="2026-08-01", whole_account_calls=mode
    )
    _, first = assert_plan_matches_sync(standin, config)
    # After a complete sync only the lookback days are re-read: one window per batch.
    plan, _ = assert_plan_matches_sync(standin, config, state=first.final_state)
    assert plan.series_calls == (1 if mode == "auto" else 2)
    assert all(p.segments_up_to_date + p.segments_behind == 120 for p in plan.series)


@pytest.mark.parametrize(
    ("mode", "values", "series", "runs"),
    [("never", 2, 12, 4), ("auto", 1, 6, 2)],  # 12 at 5 - 2 a run; 6 at 5 - 1 a run
)
def test_budget_stopped_state_plan_equals_next_sync(standin, mode, values, series, runs):
    ids = standin.account.segment_ids()[:120]
    config = base_config(
        standin.url,
        segment_ids=ids,
        start_date="2026-01-01",
        report_calls_per_day=5,
        whole_account_calls=mode,
    )
    plan, first = assert_plan_matches_sync(standin, config)
    assert (plan.values_calls, plan.series_calls) == (values, series)
    assert plan.calls_this_run == 5
    assert plan.runs_needed == runs
    # The next run resumes from mixed points; with the budget lifted it makes what the plan says.
    unlimited = {**config, "report_calls_per_day": 225}
    second, _ = assert_plan_matches_sync(standin, unlimited, state=first.final_state)
    assert second.series_calls == plan.series_calls - (5 - values)


def test_plan_respects_stream_selection(standin):
    config = base_config(standin.url, segment_ids=standin.account.segment_ids()[:3])
    plan = plan_for(config, select=("segment_series",))
    assert plan.values is None
    assert plan.values_calls == 0
    assert plan.series_calls > 0


def test_json_and_text_output(standin, tmp_path):
    config = base_config(standin.url, start_date="2026-01-01", series_intervals=["daily", "weekly"])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    plan = plan_for(config)
    data = plan_to_dict(plan)
    assert json.loads(json.dumps(data)) == data
    series = data["streams"]["segment_series"]
    assert series["report_calls"] == sum(i["report_calls"] for i in series["intervals"])
    assert all(len(i["calls"]) == i["report_calls"] for i in series["intervals"])
    text = render_text(plan)
    assert f"Total: {plan.total_calls} report calls" in text
    assert "daily:" in text
    assert "weekly:" in text

    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps({"bookmarks": {}}))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert (
            main(["--config", str(config_path), "--state", str(state_path), "--format", "json"])
            == 0
        )
    printed = json.loads(out.getvalue())
    assert printed["segments"] == plan.segment_count
    assert printed["report_calls"] > 0
    assert printed["pace"]["seconds_per_call"] == pytest.approx(0.001)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--config", str(config_path)]) == 0
    assert out.getvalue().startswith("Call plan (no report calls were made)")
    assert standin.report_calls() == []


def test_unreadable_state_file_is_a_message(tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config("http://127.0.0.1:9", segment_ids=["abc"])))
    state_path = tmp_path / "state.json"
    state_path.write_text("{")
    with pytest.raises(SystemExit, match="cannot read"):
        main(["--config", str(config_path), "--state", str(state_path)])


def test_the_plan_counts_earlier_runs_calls_and_says_when_it_would_finish(standin):
    from datetime import timedelta

    from tap_klaviyo_segments import ledger

    ids = standin.account.segment_ids()[:3]
    config = base_config(standin.url, segment_ids=ids, start_date="2025-01-01")
    record = ledger.CallRecord(()).add(NOW_UTC - timedelta(hours=1), 220)
    state = {ledger.STATE_KEY: record.to_state()}
    plan = plan_for(config, state=state)
    assert plan.calls_left_today == 5
    assert plan.calls_this_run == 5 < plan.total_calls
    # The rest waits until the earlier calls are 24 hours old.
    assert plan.finish_at is not None
    assert plan.finish_at >= NOW_UTC + timedelta(hours=23)
    text = render_text(plan)
    assert "Today: 5 of report_calls_per_day=225 calls left" in text
    assert "Finish: about " in text
    data = plan_to_dict(plan)
    assert data["budget"]["calls_left_today"] == 5
    spent = {ledger.STATE_KEY: ledger.CallRecord(()).add(NOW_UTC, 225).to_state()}
    none_left = plan_for(config, state=spent)
    assert none_left.calls_this_run == 0
    assert none_left.next_call_at is not None
    assert "the next is allowed at" in render_text(none_left)


def test_a_bad_config_is_one_line_naming_the_key(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"api_key": "pk_x_0123456789", "lookback_days": -1}))
    with pytest.raises(SystemExit) as raised:
        main(["--config", str(path)])
    message = str(raised.value.code)
    assert message.startswith("tap-klaviyo-segments-plan: config is not valid:")
    assert "lookback_days" in message
    assert "\n" not in message
    assert "Traceback" not in capsys.readouterr().err


def test_several_config_files_are_merged_later_ones_winning(standin, tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    ids = standin.account.segment_ids()[:2]
    first.write_text(json.dumps(base_config(standin.url, segment_ids=ids, lookback_days=9)))
    second.write_text(json.dumps({"series_intervals": ["weekly"]}))
    assert main(["--config", str(first), "--config", str(second), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    intervals = [i["interval"] for i in printed["streams"]["segment_series"]["intervals"]]
    assert intervals == ["weekly"]


def test_the_plan_from_meltanos_state_equals_the_plan_from_the_bare_state(
    standin, tmp_path, capsys
):
    config = base_config(standin.url, segment_ids=standin.account.segment_ids()[:3])
    config.update(start_date="2026-09-01", report_calls_per_day=225)
    state = run_tap(config, now=NOW_UTC).final_state
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "bare.json").write_text(json.dumps(state))
    (tmp_path / "meltano.json").write_text(json.dumps({"singer_state": state}))
    plans = {}
    for name in ("bare", "meltano"):
        capsys.readouterr()
        args = [
            "--config",
            str(tmp_path / "config.json"),
            "--state",
            str(tmp_path / f"{name}.json"),
        ]
        assert main([*args, "--format", "json"]) == 0
        plans[name] = json.loads(capsys.readouterr().out)
    for plan in plans.values():
        plan.pop("now"), plan.pop("finish_at")
    assert plans["meltano"] == plans["bare"]
    assert plans["bare"]["segments"] == 3
    series = plans["bare"]["streams"]["segment_series"]["intervals"][0]
    assert series["segments_never_synced"] == 0, "the bookmarks were read"


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ({"singer_state": [1]}, "singer_state is not an object"),
        ({"completed": {"x": 1}}, "holds no bookmarks"),
    ],
)
def test_a_state_file_the_plan_cannot_use_is_one_line(tmp_path, state, words):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config("http://127.0.0.1:9", segment_ids=["abc"])))
    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps(state))
    with pytest.raises(SystemExit, match=words) as raised:
        main(["--config", str(config_path), "--state", str(state_path)])
    assert "\n" not in str(raised.value.code)


def test_a_masked_key_is_one_line(tmp_path):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(base_config("http://127.0.0.1:9", api_key="*****")))
    with pytest.raises(SystemExit, match="api_key is masked") as raised:
        main(["--config", str(config_path)])
    assert "\n" not in str(raised.value.code)


def test_the_plan_prints_no_state_even_when_it_drops_a_deleted_segments_bookmarks(
    standin, tmp_path, capsys
):
    config = base_config(standin.url, start_date="2026-11-01")
    state = run_tap(config, now=NOW_UTC, select=("segment_series",)).final_state
    partitions = state["bookmarks"]["segment_series"]["partitions"]
    partitions.append({**partitions[0], "context": {"interval": "daily", "segment_id": "Gone42"}})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "state.json").write_text(json.dumps(state))
    capsys.readouterr()
    args = ["--config", str(tmp_path / "config.json"), "--state", str(tmp_path / "state.json")]
    assert main([*args, "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["segments"] > 0, "stdout is the plan alone"
