"""The pinned target-duckdb + duckdb pair loads every record the tap writes.

target-duckdb 0.8.0 with a newer duckdb (2.0.1, which pip picks when duckdb is not pinned) loses
rows and still exits 0: the target logged 12 / 10 / 1110 rows while the tables held 11 / 9 / 1109.
So meltano.yml pins duckdb next to target-duckdb, and this test runs the pair Meltano installed
from that pin: the tap's output through ``meltano invoke`` is kept, counted per stream, and fed
to ``meltano invoke target-duckdb``; every table must then hold exactly as many rows as the tap
wrote RECORD messages. The tests in test_e2e_meltano.py compare the rows with the stand-in's
truth; this one compares the target with the tap, the comparison that shows a loader losing rows.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO_ROOT
from e2e_scenario import RUN_TIMEOUT
from e2e_truth import read_duckdb

#: The key columns of each stream, to show the RECORD count is a count of distinct rows (the
#: target upserts on them, so a repeated key would make a smaller table look like a loss).
KEYS = {
    "segments": ("id",),
    "segment_values": ("segment_id", "timeframe", "as_of_date"),
    "segment_series": ("segment_id", "interval", "date_time"),
}

_VERSIONS = """
import json
from importlib.metadata import version
print(json.dumps({name: version(name) for name in ("target-duckdb", "duckdb")}))
"""


def pinned_pair() -> dict[str, str]:
    """``{"target-duckdb": ..., "duckdb": ...}`` from the loader's pip_url in meltano.yml."""
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    (loader,) = [p for p in project["plugins"]["loaders"] if p["name"] == "target-duckdb"]
    pins = {}
    for requirement in loader["pip_url"].split():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", requirement)
        assert match, f"meltano.yml's target-duckdb pip_url has {requirement!r}, not name==version"
        pins[match.group(1).lower()] = match.group(2)
    assert set(pins) == {"target-duckdb", "duckdb"}, pins
    return pins


def meltano_invoke(
    meltano: Any, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``meltano --environment dev invoke ARGS`` in the repository's project; must exit 0."""
    proc = subprocess.run(
        [str(meltano.bin), "--environment", "dev", "invoke", *args],
        cwd=REPO_ROOT,
        env=meltano.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, (
        f"meltano invoke {' '.join(args)} exited {proc.returncode}\n{proc.stderr[-6000:]}"
    )
    return proc


def installed_pair(plugin_bins: dict[str, Path]) -> dict[str, str]:
    """The target-duckdb and duckdb versions in the venv `meltano install` made."""
    proc = subprocess.run(
        [str(plugin_bins["duckdb-python"]), "-c", _VERSIONS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    versions: dict[str, str] = json.loads(proc.stdout)
    return versions


def test_the_installed_pair_is_the_pinned_pair(plugin_bins: dict[str, Path]) -> None:
    """What `meltano install` put in target-duckdb's venv is what meltano.yml pins."""
    assert installed_pair(plugin_bins) == pinned_pair()


def test_the_pinned_pair_loads_every_record_the_tap_wrote(
    meltano: Any, plugin_bins: dict[str, Path]
) -> None:
    """Every table holds as many rows as the tap wrote records: none lost, none made up."""
    tap = meltano_invoke(meltano, "tap-klaviyo-segments")
    records = [
        message
        for message in (json.loads(line) for line in tap.stdout.splitlines() if line.strip())
        if message["type"] == "RECORD"
    ]
    written = Counter(message["stream"] for message in records)
    assert set(written) == set(KEYS), written
    for stream, key in KEYS.items():
        distinct = {
            tuple(m["record"][column] for column in key) for m in records if m["stream"] == stream
        }
        assert len(distinct) == written[stream], f"{stream}: repeated keys in one run"
    # Enough rows that a lost row per batch or per stream shows (the reported loss was one each).
    assert written["segment_series"] > 100, written

    meltano_invoke(meltano, "target-duckdb", stdin=tap.stdout)

    tables = read_duckdb(plugin_bins["duckdb-python"], meltano.tmp / "warehouse.duckdb")
    loaded = {stream: len(rows) for stream, rows in tables.items()}
    assert loaded == dict(written), (
        f"{installed_pair(plugin_bins)} loaded {loaded} of the tap's {dict(written)} records"
    )
