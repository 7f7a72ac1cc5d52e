"""A plain Singer pipe, no Meltano: `tap-klaviyo-segments --config cfg.json | target-jsonl`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from e2e_scenario import BOUNDED, RUN_TIMEOUT, tap_config
from e2e_truth import (
    assert_segments_match,
    assert_series_match,
    assert_values_match,
    expected_segments,
    expected_series,
    expected_values,
    read_jsonl,
)


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

    tap = subprocess.Popen(
        [str(plugin_bins["tap"]), "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "tap.log").open("w"),
    )
    target = subprocess.run(
        [str(plugin_bins["target-jsonl"]), "--config", str(target_config)],
        stdin=tap.stdout,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert tap.stdout is not None
    tap.stdout.close()
    tap_status = tap.wait(timeout=RUN_TIMEOUT)
    tap_log = (tmp_path / "tap.log").read_text()
    assert tap_status == 0, f"tap exited {tap_status}:\n{tap_log[-6000:]}"
    assert target.returncode == 0, (
        f"target-jsonl exited {target.returncode}:\n{target.stderr[-4000:]}"
    )

    assert_series_match(
        read_jsonl(out / "segment_series.jsonl"), expected_series(standin.account, BOUNDED), BOUNDED
    )
    assert_values_match(read_jsonl(out / "segment_values.jsonl"), expected_values(standin.account))
    assert_segments_match(read_jsonl(out / "segments.jsonl"), expected_segments(standin.account))

    # target-jsonl prints the last state it received: the series bookmarks are in it.
    state_lines = [line for line in target.stdout.splitlines() if line.strip()]
    assert state_lines, "target-jsonl emitted no state"
    state = json.loads(state_lines[-1])
    assert state["bookmarks"]["segment_series"]["partitions"]
