"""Run the tap's real command in-process (click's runner) on a config written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from tap_klaviyo_segments.tap import TapKlaviyoSegments


def run_command(tmp_path: Path, config: dict[str, Any], *args: str) -> Result:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return CliRunner().invoke(
        TapKlaviyoSegments.get_singer_command(), ["--config", str(path), *args]
    )
