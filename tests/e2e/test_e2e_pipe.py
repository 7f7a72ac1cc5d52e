"""A plain Singer pipe, no Meltano: `tap-klaviyo-segments --config cfg.json | target-jsonl`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from e2e_scenario import BOUNDED, RUN_TIMEOUT, tap_config
from e2e_truth import (
    SERIES_REPORTS,
    assert_segments_match,
    assert_series_match,
    assert_values_match,
    expected_segments,
    expected_series,
    expected_values,
    read_jsonl,
)


def pipe(
    plugin_bins: dict[str, Path],
    config: Path,
    target_config: Path,
    log: Path,
    state: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``tap --config CONFIG [--state STATE] | target-jsonl``; both must exit 0."""
    command = [str(plugin_bins["tap"]), "--config", str(config)]
    if state is not None:
        command += ["--state", str(state)]
    with log.open("w") as tap_stderr:
        tap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=tap_stderr)
        assert tap.stdout is not None
        with tap.stdout:
            target = subprocess.run(
                [str(plugin_bins["target-jsonl"]), "--config", str(target_config)],
                stdin=tap.stdout,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        tap_status = tap.wait(timeout=RUN_TIMEOUT)
    assert tap_status == 0, f"tap exited {tap_status}:\n{log.read_text()[-6000:]}"
    assert target.returncode == 0, (
        f"target-jsonl exited {target.returncode}:\n{target.stderr[-4000:]}"
    )
    return target


def test_plain_pipe_into_target_jsonl(
    standin_bounded: Any, plugin_bins: dict[str, Path], tmp_path: Path
) -> None:
    """The tap's CLI piped into target-jsonl lands exactly the ground truth and a final state.

    Uses the bounded scenario (end_date set, a window long closed): fully deterministic.
    """
    standin = standin_bounded
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(standin, BOUNDED)))
    out = tmp_path / "out"
    out.mkdir()
    target_config = tmp_path / "target.json"
    target_config.write_text(json.dumps({"destination_path": str(out), "do_timestamp_file": False}))

    target = pipe(plugin_bins, config, target_config, tmp_path / "tap.log")

    assert_series_match(
        read_jsonl(out / "segment_series.jsonl"), expected_series(standin.account, BOUNDED), BOUNDED
    )
    assert_values_match(
        read_jsonl(out / "segment_values.jsonl"),
        expected_values(standin.account),
        standin.account.now_local().date(),
    )
    assert_segments_match(read_jsonl(out / "segments.jsonl"), expected_segments(standin.account))

    # target-jsonl prints the last state it received: the series bookmarks are in it.
    state_lines = [line for line in target.stdout.splitlines() if line.strip()]
    assert state_lines, "target-jsonl emitted no state"
    state = json.loads(state_lines[-1])
    assert state["bookmarks"]["segment_series"]["partitions"]

    # Again with that state: the window was long closed, so no series call is repeated.
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))
    series_calls = len(series_report_calls(standin))
    pipe(plugin_bins, config, target_config, tmp_path / "tap2.log", state=state_file)
    assert len(series_report_calls(standin)) == series_calls
    rows = read_jsonl(out / "segment_series.jsonl")
    assert len(rows) == len(expected_series(standin.account, BOUNDED)), "second run added rows"


def series_report_calls(server: Any) -> list[Any]:
    """Series report requests the stand-in answered (200)."""
    return [e for e in server.report_calls() if e.path.rstrip("/") == SERIES_REPORTS]
