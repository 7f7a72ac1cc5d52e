"""Many Klaviyo accounts into one warehouse: meltano.yml's inherited extractor per account.

Two stand-ins are two accounts with the same seed, so their segment ids, and therefore every
natural key, are the same: only the ``account`` column the stream map adds (and puts in the key
properties) keeps their rows apart. Each account runs as its own ``meltano run``: both at once
into PostgreSQL, one after the other into one DuckDB file (DuckDB lets one process write a file
at a time: a second concurrent target-duckdb fails on the file lock).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, MeltanoProject, meltano_env
from e2e_scenario import RUN_TIMEOUT, SEED, SEGMENTS, Scenario, tap_config
from e2e_truth import (
    assert_segments_match,
    assert_series_match,
    assert_values_match,
    expected_segments,
    expected_series,
    expected_values,
    read_duckdb,
)

from klaviyo_standin import StandinServer, StandinSettings

ACCOUNTS = ("brand-a", "brand-b")
TABLES = ("segments", "segment_series", "segment_values")


def plugin(account: str) -> str:
    """The inherited extractor of an account in meltano.yml."""
    return f"klaviyo-{account}"


@pytest.fixture
def standins(recent: Scenario) -> Iterator[dict[str, StandinServer]]:
    settings = StandinSettings(
        segment_count=SEGMENTS,
        seed=SEED,
        timezone="UTC",
        now=recent.standin_now,
        rate_limits_enabled=False,
    )
    with StandinServer(settings) as first, StandinServer(settings) as second:
        yield dict(zip(ACCOUNTS, (first, second), strict=True))


def accounts_env(
    tmp_path: Path, standins: dict[str, StandinServer], recent: Scenario
) -> dict[str, str]:
    """Shared settings as TAP_KLAVIYO_SEGMENTS_*; each account's URL and key under its own
    plugin name (KLAVIYO_BRAND_A_API_KEY, ...), which Meltano prefers for that extractor."""
    first = standins[ACCOUNTS[0]]
    shared = tap_config(first, recent)
    del shared["api_url"], shared["api_key"]
    env = meltano_env(tmp_path, first, shared)
    for account, server in standins.items():
        prefix = plugin(account).upper().replace("-", "_")
        env[f"{prefix}_API_URL"] = server.url
        env[f"{prefix}_API_KEY"] = server.settings.api_key
    return env


def run_accounts(meltano_bin: Path, env: dict[str, str], loader: str, *, parallel: bool) -> None:
    """One ``meltano run <account extractor> <loader>`` per account, at once or in turn."""
    commands = [
        [str(meltano_bin), "--environment", "dev", "run", plugin(account), loader]
        for account in ACCOUNTS
    ]

    def start(command: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(command: list[str], run: subprocess.Popen[str]) -> None:
        _, err = run.communicate(timeout=RUN_TIMEOUT)
        assert run.returncode == 0, (
            f"{' '.join(command[3:])} exited {run.returncode}:\n{err[-6000:]}"
        )

    if parallel:
        runs = [start(command) for command in commands]
        for command, run in zip(commands, runs, strict=True):
            finish(command, run)
    else:
        for command in commands:
            finish(command, start(command))


def assert_accounts_apart(
    tables: dict[str, list[dict[str, Any]]],
    standins: dict[str, StandinServer],
    recent: Scenario,
) -> None:
    """Each account's rows are exactly its stand-in's truth; none replaced another's."""
    first, second = (standins[account].account for account in ACCOUNTS)
    assert [row["id"] for row in first.segments()] == [row["id"] for row in second.segments()]
    for table in TABLES:
        accounts = {row["account"] for row in tables[table]}
        assert accounts == set(ACCOUNTS), f"{table}: accounts {accounts}"
    for account, server in standins.items():
        mine = {
            table: [row for row in rows if row["account"] == account]
            for table, rows in tables.items()
        }
        assert_series_match(mine["segment_series"], expected_series(server.account, recent), recent)
        assert_values_match(
            mine["segment_values"],
            expected_values(server.account),
            server.account.now_local().date(),
        )
        assert_segments_match(mine["segments"], expected_segments(server.account))
    for server in standins.values():
        assert server.report_calls(), "each account's extractor called its own stand-in"


def test_two_accounts_into_one_duckdb(
    meltano_bin, plugin_bins, standins, recent: Scenario, tmp_path
):
    env = accounts_env(tmp_path, standins, recent)
    MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env).run("state", "list")  # system DB
    run_accounts(meltano_bin, env, "target-duckdb", parallel=False)
    tables = read_duckdb(plugin_bins["duckdb-python"], tmp_path / "warehouse.duckdb")
    assert_accounts_apart(tables, standins, recent)

    # Own state per account: a second round re-reads only each account's lookback.
    project = MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)
    for account in ACCOUNTS:
        state = project.state(f"dev:{plugin(account)}-to-target-duckdb")
        assert state["singer_state"]["bookmarks"]["segment_series"]["partitions"], account
    run_accounts(meltano_bin, env, "target-duckdb", parallel=False)
    again = read_duckdb(plugin_bins["duckdb-python"], tmp_path / "warehouse.duckdb")
    assert {t: len(rows) for t, rows in again.items()} == {t: len(r) for t, r in tables.items()}
    assert_accounts_apart(again, standins, recent)


def test_two_accounts_in_parallel_into_one_postgres(
    meltano_bin, plugin_bins, standins, recent: Scenario, postgres, tmp_path
):
    env = accounts_env(tmp_path, standins, recent)
    env.update(postgres.target_env(postgres.create_database("accounts")))
    # The system database exists before the accounts run, as in any project (two first runs at
    # once would both try to create it).
    MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env).run("state", "list")
    run_accounts(meltano_bin, env, "target-postgres", parallel=True)
    loaded = postgres.read(plugin_bins["postgres-python"], "accounts", "klaviyo", TABLES)
    assert_accounts_apart(loaded["rows"], standins, recent)
    # The primary keys include the account (the target lists key columns in table order).
    keys = {table: set(columns) for table, columns in loaded["keys"].items()}
    assert keys == {
        "segments": {"account", "id"},
        "segment_values": {"account", "segment_id", "timeframe", "as_of_date"},
        "segment_series": {"account", "segment_id", "interval", "date_time"},
    }
