"""Fixtures of the end-to-end tests: Meltano, the plugins it installed, and a local stand-in.

These tests drive the real programs (``meltano run``, the tap's CLI, target-jsonl and
target-duckdb, each in the venv ``meltano install`` made) against the Klaviyo stand-in running
in this process on 127.0.0.1, with rate limits off and a fixed clock, so the expected rows come
from the stand-in's ground truth (``server.account``).

``bash scripts/test.sh`` installs Meltano and the plugins first. When they are missing these
tests fail (they never skip): run that command, or set MELTANO_BIN.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_scenario import (
    BOUNDED,
    RUN_TIMEOUT,
    SEED,
    SEGMENTS,
    Scenario,
    recent_scenario,
    tap_config,
)
from postgres_server import PostgresServer, PostgresUnavailableError

from klaviyo_standin import StandinServer, StandinSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
SYS_DIR = Path(os.environ.get("MELTANO_SYS_DIR_ROOT", REPO_ROOT / ".meltano"))

SETUP_HINT = "run `bash scripts/test.sh` (it installs Meltano and the plugins under .meltano/)"


def _executable(path: Path, what: str) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"{what} is not installed at {path}: {SETUP_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def meltano_bin() -> Path:
    """The Meltano executable (its own venv): MELTANO_BIN, else .meltano/meltano-venv."""
    configured = os.environ.get("MELTANO_BIN")
    if configured:
        return _executable(Path(configured), "meltano (MELTANO_BIN)")
    local = SYS_DIR / "meltano-venv" / "bin" / "meltano"
    if local.exists():
        return _executable(local, "meltano")
    found = shutil.which("meltano")
    if found is None:
        pytest.fail(f"meltano is not installed: {SETUP_HINT}", pytrace=False)
    return Path(found)


@pytest.fixture(scope="session")
def plugin_bins(meltano_bin: Path) -> dict[str, Path]:
    """Executables and Pythons of the plugins installed by ``meltano install``."""
    return {
        "target-jsonl": _executable(
            SYS_DIR / "loaders" / "target-jsonl" / "venv" / "bin" / "target-jsonl", "target-jsonl"
        ),
        "target-duckdb": _executable(
            SYS_DIR / "loaders" / "target-duckdb" / "venv" / "bin" / "target-duckdb",
            "target-duckdb",
        ),
        "duckdb-python": _executable(
            SYS_DIR / "loaders" / "target-duckdb" / "venv" / "bin" / "python",
            "target-duckdb's python",
        ),
        "target-postgres": _executable(
            SYS_DIR / "loaders" / "target-postgres" / "venv" / "bin" / "target-postgres",
            "target-postgres",
        ),
        "postgres-python": _executable(
            SYS_DIR / "loaders" / "target-postgres" / "venv" / "bin" / "python",
            "target-postgres's python",
        ),
        "tap": _executable(
            Path(sys.executable).parent / "tap-klaviyo-segments", "tap-klaviyo-segments"
        ),
    }


@pytest.fixture(scope="session")
def about_json(plugin_bins: dict[str, Path]) -> dict[str, Any]:
    """The tap's own ``--about --format=json`` (capabilities and settings)."""
    proc = subprocess.run(
        [str(plugin_bins["tap"]), "--about", "--format=json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def _serve(scenario: Scenario) -> Iterator[StandinServer]:
    settings = StandinSettings(
        segment_count=SEGMENTS,
        seed=SEED,
        timezone="UTC",
        now=scenario.standin_now,
        rate_limits_enabled=False,
    )
    with StandinServer(settings) as server:
        yield server


@pytest.fixture
def recent() -> Scenario:
    """The production-like scenario: stand-in frozen at this hour, no end_date."""
    return recent_scenario()


@pytest.fixture
def standin(recent: Scenario) -> Iterator[StandinServer]:
    """A fresh stand-in per test (its request log counts that test's calls only)."""
    yield from _serve(recent)


@pytest.fixture
def standin_bounded() -> Iterator[StandinServer]:
    """A stand-in for the bounded scenario (a window long closed)."""
    yield from _serve(BOUNDED)


@dataclass
class MeltanoProject:
    """Runs ``meltano`` on this repository's meltano.yml with a private system DB and outputs."""

    bin: Path
    tmp: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``meltano --environment dev ARGS`` and return the finished process."""
        proc = subprocess.run(
            [str(self.bin), "--environment", "dev", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"meltano {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}",
                pytrace=False,
            )
        return proc

    def state(self, state_id: str) -> dict[str, Any]:
        """The state Meltano saved under ``state_id``."""
        proc = self.run("state", "get", state_id)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def meltano_env(tmp_path: Path, server: StandinServer, config: dict[str, Any]) -> dict[str, str]:
    """The environment of a ``meltano`` run: this process's, minus any TAP_/TARGET_/MELTANO_
    variables, plus a private system DB and outputs in ``tmp_path`` and ``config`` as
    TAP_KLAVIYO_SEGMENTS_* variables (the way a user overrides meltano.yml)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            (
                "TAP_KLAVIYO_SEGMENTS_",
                "TARGET_JSONL_",
                "TARGET_DUCKDB_",
                "TARGET_POSTGRES_",
                "MELTANO_",
            )
        )
    }
    env.update(
        {
            "MELTANO_PROJECT_ROOT": str(REPO_ROOT),
            "MELTANO_SYS_DIR_ROOT": str(SYS_DIR),
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_CLI_LOG_LEVEL": "warning",
            "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(SYS_DIR / ".uv-cache")),
            "KLAVIYO_STANDIN_PORT": str(server.port),
            "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "jsonl"),
            "TARGET_DUCKDB_FILEPATH": str(tmp_path / "warehouse.duckdb"),
        }
    )
    for key, value in config.items():
        env[f"TAP_KLAVIYO_SEGMENTS_{key.upper()}"] = (
            json.dumps(value) if isinstance(value, list) else str(value)
        )
    (tmp_path / "jsonl").mkdir(exist_ok=True)
    return env


@pytest.fixture
def meltano(
    meltano_bin: Path,
    plugin_bins: dict[str, Path],
    standin: StandinServer,
    recent: Scenario,
    tmp_path: Path,
) -> MeltanoProject:
    """The repo's Meltano project aimed at ``standin``; state and outputs live in tmp_path."""
    env = meltano_env(tmp_path, standin, tap_config(standin, recent))
    return MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server on a free loopback port for the session (a database per test)."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
