"""The growth models (transform/) and the report page, end to end, against the stand-in's truth.

``meltano run tap-klaviyo-segments <loader> dbt-<warehouse>:build`` extracts from the stand-in,
loads with the real target and builds the models with the real dbt adapter (the venvs
``meltano install`` made); then the models' tests run again with the total-change consistency
test as an error (the stand-in's numbers keep it; Klaviyo does not promise it). Every number of
the daily, weekly, monthly, latest and alerts models is compared with one computed here from
the stand-in's own ground truth (``server.account``). An incremental build after new days must
equal a full refresh. Two accounts carry the ``account`` column through. The report page opens
in Debian's chromium with no console error, no request and drawn charts.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SYS_DIR, MeltanoProject, meltano_env
from e2e_scenario import SEED, SEGMENTS, Scenario, tap_config
from e2e_truth import active_segment_ids, as_date, as_datetime
from postgres_server import PostgresServer
from test_e2e_many_accounts import ACCOUNTS, accounts_env, run_accounts

from klaviyo_standin import StandinServer, StandinSettings
from transform.report.screenshot import CHROMIUM_ARGS  # the flags the screenshot uses

MODELS_SCHEMA = "klaviyo_growth"
MODELS = (
    "segment_growth_daily",
    "segment_growth_weekly",
    "segment_growth_monthly",
    "segment_growth_latest",
    "segment_growth_alerts",
)
#: The model's column contract (issue 18), in order, after `account` where the loads have it.
DAILY_COLUMNS = [
    "segment_id",
    "segment_name",
    "day",
    "total_members",
    "members_added",
    "members_removed",
    "net_members_changed",
    "is_complete",
    "change_7d",
    "change_28d",
    "pct_change_7d",
    "pct_change_28d",
    "added_7d",
    "removed_7d",
    "churn_rate",
]
LATEST_COLUMNS = [
    "segment_id",
    "segment_name",
    "as_of",
    "total_members",
    "change_1d",
    "change_7d",
    "change_30d",
    "pct_change_1d",
    "pct_change_7d",
    "pct_change_30d",
    "trend",
]
#: dbt_project.yml's defaults.
TREND_THRESHOLD = 0.01
ALERT_K = 3
ALERT_MIN_DAYS = 14
ALERT_DROP_SHARE = 0.05
STRICT = json.dumps({"total_change_severity": "error"})
INTERVALS = ["daily", "weekly", "monthly"]

#: A closed window of 70 days (deterministic), loaded in two runs: the first up to FIRST_END.
WINDOW = Scenario(
    name="growth",
    standin_now=datetime(2026, 6, 1, 12, 0),
    start=date(2026, 1, 5),
    end=date(2026, 3, 15),
)
FIRST_END = date(2026, 2, 20)


def utility(name: str, program: str) -> Path:
    path = SYS_DIR / "utilities" / name / "venv" / "bin" / program
    if not path.is_file():
        pytest.fail(
            f"{name} is not installed at {path}: run `bash scripts/test.sh` (it runs "
            "`meltano install` of every plugin)",
            pytrace=False,
        )
    return path


def growth_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """dbt's and the report's settings for a test: the test's DuckDB file, its own dbt target
    and log folders (nothing of the user's output/), and no DBT_ / GROWTH_REPORT_ variables
    from the calling shell."""
    clean = {k: v for k, v in env.items() if not k.startswith(("DBT_", "GROWTH_REPORT_"))}
    clean.update(
        {
            "DBT_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            # Meltano reads a setting from <PLUGIN>_<SETTING>; dbt gets it as DBT_TARGET_PATH...
            **{
                f"{plugin}_{setting}": str(tmp_path / "dbt" / folder)
                for plugin in ("DBT_DUCKDB", "DBT_POSTGRES")
                for setting, folder in (("TARGET_PATH", "target"), ("LOG_PATH", "logs"))
            },
            "GROWTH_REPORT_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
            "GROWTH_REPORT_OUTPUT": str(tmp_path / "growth_report.html"),
        }
    )
    return clean


def window_config(server: StandinServer, end: date) -> dict[str, Any]:
    config = tap_config(server, WINDOW)
    config.update(end_date=end.isoformat(), series_intervals=INTERVALS)
    return config


_DUMP_DUCKDB = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for table in sys.argv[3:]:
    rel = con.sql(f'select * from "{sys.argv[2]}"."{table}"')
    out[table] = {"columns": rel.columns, "rows": [list(row) for row in rel.fetchall()]}
print(json.dumps(out, default=str))
"""


def read_models_duckdb(database: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the models, read with the growth-report utility's duckdb."""
    proc = subprocess.run(
        [
            str(utility("growth-report", "python")),
            "-c",
            _DUMP_DUCKDB,
            str(database),
            MODELS_SCHEMA,
            *MODELS,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    dumped = json.loads(proc.stdout)
    return {
        model: [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
        for model, table in dumped.items()
    }


def read_models_postgres(server: PostgresServer, database: str) -> dict[str, list[dict[str, Any]]]:
    python = SYS_DIR / "loaders" / "target-postgres" / "venv" / "bin" / "python"
    return server.read(python, database, MODELS_SCHEMA, MODELS)["rows"]


# --- the truth -------------------------------------------------------------------------------


def day_truth(
    account: Any, start: datetime, end: datetime
) -> dict[str, dict[date, dict[str, int]]]:
    """Each active segment's daily buckets by day (all complete: the window is closed)."""
    return {
        segment_id: {
            as_datetime(stamp).date(): stats
            for stamp, stats in account.series(segment_id, "daily", start, end, end_inclusive=False)
        }
        for segment_id in active_segment_ids(account)
    }


def fraction(numerator: int | None, denominator: int | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def expected_daily(days: dict[str, dict[date, dict[str, int]]]) -> dict[tuple[str, date], dict]:
    rows = {}
    for segment_id, by_day in days.items():
        for day, stats in by_day.items():

            def total(back: int, by_day: dict = by_day, day: date = day) -> int | None:
                earlier = by_day.get(day - timedelta(days=back))
                return None if earlier is None else earlier["total_members"]

            def change(back: int, stats: dict = stats) -> int | None:
                earlier = total(back)
                return None if earlier is None else stats["total_members"] - earlier

            week = [by_day[d] for d in (day - timedelta(days=n) for n in range(7)) if d in by_day]
            rows[(segment_id, day)] = {
                **stats,
                "is_complete": True,
                "change_7d": change(7),
                "change_28d": change(28),
                "pct_change_7d": fraction(change(7), total(7)),
                "pct_change_28d": fraction(change(28), total(28)),
                "added_7d": sum(s["members_added"] for s in week),
                "removed_7d": sum(s["members_removed"] for s in week),
                "churn_rate": fraction(stats["members_removed"], total(1)),
            }
    return rows


def expected_latest(days: dict[str, dict[date, dict[str, int]]]) -> dict[str, dict]:
    rows = {}
    for segment_id, by_day in days.items():
        as_of = max(by_day)
        now = by_day[as_of]["total_members"]
        row: dict[str, Any] = {"as_of": as_of, "total_members": now}
        for back in (1, 7, 30):
            earlier = by_day.get(as_of - timedelta(days=back))
            change = None if earlier is None else now - earlier["total_members"]
            row[f"change_{back}d"] = change
            row[f"pct_change_{back}d"] = fraction(
                change, None if earlier is None else earlier["total_members"]
            )
        pct = row["pct_change_7d"]
        row["trend"] = (
            "growing"
            if pct is not None and pct > TREND_THRESHOLD
            else "shrinking"
            if pct is not None and pct < -TREND_THRESHOLD
            else "flat"
        )
        rows[segment_id] = row
    return rows


def expected_alerts(days: dict[str, dict[date, dict[str, int]]]) -> dict[tuple[str, date], str]:
    """(segment, day) -> alert kind, by the rules of segment_growth_alerts."""
    alerts = {}
    for segment_id, by_day in days.items():
        for day, stats in by_day.items():
            net = stats["net_members_changed"]
            history = [
                by_day[d]["net_members_changed"]
                for d in (day - timedelta(days=n) for n in range(1, 29))
                if d in by_day
            ]
            unusual = False
            if len(history) >= ALERT_MIN_DAYS:
                mean, sd = statistics.fmean(history), statistics.stdev(history)
                unusual = sd > 0 and abs(net - mean) > ALERT_K * sd
            before = by_day.get(day - timedelta(days=1))
            drop = (
                before is not None
                and before["total_members"] > 0
                and net < 0
                and -net > ALERT_DROP_SHARE * before["total_members"]
            )
            if drop or unusual:
                alerts[(segment_id, day)] = "sharp_drop" if drop else "unusual_change"
    return alerts


def period_truth(account: Any, interval: str, start: datetime, end: datetime) -> dict:
    return {
        (segment_id, as_datetime(stamp).date()): stats
        for segment_id in active_segment_ids(account)
        for stamp, stats in account.series(segment_id, interval, start, end, end_inclusive=False)
    }


def close(got: object, expected: float | None) -> bool:
    if expected is None or got is None:
        return got is None and expected is None
    return math.isclose(float(got), expected, rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]


def assert_models_match(
    models: dict[str, list[dict[str, Any]]], account: Any, end: date, *, account_name: str = ""
) -> None:
    """Every model row equals the one computed from the stand-in's truth up to ``end``."""
    if account_name:
        models = {
            name: [row for row in rows if row["account"] == account_name]
            for name, rows in models.items()
        }
    start = WINDOW.first
    stop = datetime(end.year, end.month, end.day) + timedelta(days=1)
    days = day_truth(account, start, stop)
    names = {row["id"]: row["name"] for row in account.segments()}

    daily = {(r["segment_id"], as_date(r["day"])): r for r in models["segment_growth_daily"]}
    truth = expected_daily(days)
    assert len(daily) == len(models["segment_growth_daily"]), "one row per segment and day"
    assert set(daily) == set(truth), (
        f"daily rows: missing {sorted(set(truth) - set(daily))[:3]}, "
        f"extra {sorted(set(daily) - set(truth))[:3]}"
    )
    for key, expected in truth.items():
        row = daily[key]
        assert row["segment_name"] == names[key[0]], key
        for column, value in expected.items():
            if column.startswith("pct_") or column == "churn_rate":
                assert close(row[column], value), (key, column, row[column], value)
            else:
                assert row[column] == value, (key, column, row[column], value)
    assert any(r["change_28d"] is not None for r in daily.values())
    assert any(r["change_28d"] is None for r in daily.values()), "the first 28 days have none"

    latest = {r["segment_id"]: r for r in models["segment_growth_latest"]}
    expected_last = expected_latest(days)
    assert set(latest) == set(expected_last)
    for segment_id, expected in expected_last.items():
        row = latest[segment_id]
        assert as_date(row["as_of"]) == expected["as_of"] == end
        for column, value in expected.items():
            if column.startswith("pct_"):
                assert close(row[column], value), (segment_id, column, row[column], value)
            elif column != "as_of":
                assert row[column] == value, (segment_id, column, row[column], value)

    alerts = {
        (r["segment_id"], as_date(r["day"])): r["alert_kind"]
        for r in models["segment_growth_alerts"]
    }
    assert alerts == expected_alerts(days)
    assert alerts, "the window's numbers raise some alerts (a test that cannot fail is none)"
    for row in models["segment_growth_alerts"]:
        assert row["reason"]
        assert "standard deviations" in row["reason"] or "lost" in row["reason"]

    for interval, model, column in (
        ("weekly", "segment_growth_weekly", "week_start"),
        ("monthly", "segment_growth_monthly", "month_start"),
    ):
        # Klaviyo answers whole weeks and months (the window is long closed): the truth's
        # buckets run from the period holding the start to the end of the one holding `end`.
        if interval == "weekly":
            first = start - timedelta(days=start.weekday())
            last = stop + timedelta(days=(7 - stop.weekday()) % 7)
        else:
            first = start.replace(day=1)
            last = (stop - timedelta(days=1)).replace(day=28) + timedelta(days=4)
            last = last.replace(day=1)
        expected_periods = period_truth(account, interval, first, last)
        got = {(r["segment_id"], as_date(r[column])): r for r in models[model]}
        assert set(got) == set(expected_periods), model
        for key, stats in expected_periods.items():
            assert {name: got[key][name] for name in stats} == stats, (model, key)


def columns_in_order(models: dict[str, list[dict[str, Any]]], model: str) -> list[str]:
    return list(models[model][0])


# --- DuckDB ----------------------------------------------------------------------------------


def window_settings() -> StandinSettings:
    """The stand-in account of the WINDOW scenario (UTC, no rate limits)."""
    return StandinSettings(
        segment_count=SEGMENTS,
        seed=SEED,
        timezone="UTC",
        now=WINDOW.standin_now,
        rate_limits_enabled=False,
    )


@pytest.fixture
def standin_window() -> Any:
    with StandinServer(window_settings()) as server:
        yield server


def test_duckdb_pipeline_models_match_the_truth_incremental_equals_full_refresh_page_works(
    meltano_bin, plugin_bins, standin_window, tmp_path
):
    server = standin_window
    env = growth_env(meltano_env(tmp_path, server, window_config(server, FIRST_END)), tmp_path)
    project = MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)
    database = tmp_path / "warehouse.duckdb"

    # One command from extract to models (the models' tests run too, at their default severity).
    project.run("run", "tap-klaviyo-segments", "target-duckdb", "dbt-duckdb:build")
    project.run("invoke", "dbt-duckdb", "test", "--vars", STRICT)
    first = read_models_duckdb(database)
    assert columns_in_order(first, "segment_growth_daily") == DAILY_COLUMNS
    assert columns_in_order(first, "segment_growth_latest") == LATEST_COLUMNS
    assert_models_match(first, server.account, FIRST_END)

    # New days arrive: the tap goes on from its bookmarks, dbt builds incrementally.
    project.env["TAP_KLAVIYO_SEGMENTS_END_DATE"] = WINDOW.end.isoformat()
    project.run("run", "tap-klaviyo-segments", "target-duckdb", "dbt-duckdb:build")
    log = (tmp_path / "dbt" / "logs" / "dbt.log").read_text()
    assert "incremental model klaviyo_growth.segment_growth_daily" in log
    incremental = read_models_duckdb(database)
    assert_models_match(incremental, server.account, WINDOW.end)

    project.run("invoke", "dbt-duckdb:full-refresh")
    project.run("invoke", "dbt-duckdb", "test", "--vars", STRICT)
    full = read_models_duckdb(database)
    for model in MODELS:
        assert sorted(map(repr, incremental[model])) == sorted(map(repr, full[model])), model

    # The report page and the summary read the same models.
    report = project.run("invoke", "growth-report:duckdb")
    page = tmp_path / "growth_report.html"
    assert str(page) in report.stdout
    assert_page_works(page, len(full["segment_growth_latest"]), len(full["segment_growth_alerts"]))
    summary = project.run("invoke", "growth-report:summary").stdout
    assert f"as of {WINDOW.end}" in summary
    for row in full["segment_growth_latest"]:
        assert row["segment_name"] in summary


def test_a_revised_day_within_the_lookback_is_remodelled_and_checked(
    meltano_bin, plugin_bins, standin_window, tmp_path
):
    """A loaded day revised after the models were built (as Klaviyo revises recent buckets)
    is picked up by the next incremental build, within the lookback; one whose net change no
    longer matches the totals makes the consistency test warn by default and fail when strict."""
    server = standin_window
    end = WINDOW.start + timedelta(days=9)
    env = growth_env(meltano_env(tmp_path, server, window_config(server, end)), tmp_path)
    project = MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)
    project.run("run", "tap-klaviyo-segments", "target-duckdb", "dbt-duckdb:build")
    revised = end - timedelta(days=1)  # inside growth_lookback_days (3)
    subprocess.run(
        [
            str(plugin_bins["duckdb-python"]),
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute("
            '"update klaviyo.segment_series set net_members_changed = net_members_changed + 1,'
            " members_added = members_added + 1 where interval = 'daily' and bucket_date = ?\","
            " [sys.argv[2]])",
            str(tmp_path / "warehouse.duckdb"),
            revised.isoformat(),
        ],
        check=True,
        timeout=60,
    )
    default = project.run("invoke", "dbt-duckdb:build")
    warned = [
        line
        for line in (default.stdout + default.stderr).splitlines()
        if "total_change_matches_net" in line and "WARN" in line
    ]
    assert warned, "warns by default"
    models = read_models_duckdb(tmp_path / "warehouse.duckdb")
    truth = day_truth(server.account, WINDOW.first, WINDOW.first + timedelta(days=10))
    for row in models["segment_growth_daily"]:
        if as_date(row["day"]) == revised:
            expected = truth[row["segment_id"]][revised]["members_added"] + 1
            assert row["members_added"] == expected, "the revised day was remodelled"
    strict = project.run("invoke", "dbt-duckdb", "test", "--vars", STRICT, check=False)
    assert strict.returncode != 0
    assert "total_change_matches_net" in strict.stdout + strict.stderr


# --- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_pipeline_models_match_the_truth(
    meltano_bin, plugin_bins, standin_window, postgres, tmp_path
):
    server = standin_window
    env = growth_env(meltano_env(tmp_path, server, window_config(server, WINDOW.end)), tmp_path)
    database = postgres.create_database("growth")
    env.update(postgres.target_env(database))
    env.update(
        {
            "DBT_POSTGRES_HOST": "127.0.0.1",
            "DBT_POSTGRES_PORT": str(postgres.port),
            "DBT_POSTGRES_USER": postgres.user,
            "DBT_POSTGRES_PASSWORD": postgres.password,
            "DBT_POSTGRES_DBNAME": database,
        }
    )
    project = MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)
    project.run("run", "tap-klaviyo-segments", "target-postgres", "dbt-postgres:build")
    project.run("invoke", "dbt-postgres", "test", "--vars", STRICT)
    models = read_models_postgres(postgres, database)
    assert_models_match(models, server.account, WINDOW.end)

    # An incremental build (delete+insert of the lookback days, in PostgreSQL's SQL) changes
    # nothing.
    project.run("invoke", "dbt-postgres:run")
    assert "incremental model" in (tmp_path / "dbt" / "logs" / "dbt.log").read_text()
    again = read_models_postgres(postgres, database)
    for model in MODELS:
        assert sorted(map(repr, again[model])) == sorted(map(repr, models[model])), model

    # The report page from PostgreSQL (libpq's PG* variables).
    pg_env = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "PGUSER": postgres.user,
        "PGPASSWORD": postgres.password,
        "PGDATABASE": database,
    }
    project.env.update(pg_env)
    project.run("invoke", "growth-report:postgres")
    assert_page_works(
        tmp_path / "growth_report.html",
        len(models["segment_growth_latest"]),
        len(models["segment_growth_alerts"]),
    )


# --- two accounts ----------------------------------------------------------------------------


@pytest.fixture
def window_standins() -> Any:
    settings = window_settings()
    with StandinServer(settings) as first, StandinServer(settings) as second:
        yield dict(zip(ACCOUNTS, (first, second), strict=True))


def test_two_accounts_keep_their_account_column_in_every_model(
    meltano_bin, plugin_bins, window_standins, tmp_path
):
    env = accounts_env(tmp_path, window_standins, WINDOW)
    env["TAP_KLAVIYO_SEGMENTS_SERIES_INTERVALS"] = json.dumps(INTERVALS)
    env = growth_env(env, tmp_path)
    project = MeltanoProject(bin=meltano_bin, tmp=tmp_path, env=env)
    project.run("state", "list")  # the system database exists before the accounts run
    run_accounts(meltano_bin, env, "target-duckdb", parallel=False)
    # Both accounts have the same segment ids: only `account` keeps the keys unique.
    project.run("invoke", "dbt-duckdb", "build", "--vars", STRICT)
    models = read_models_duckdb(tmp_path / "warehouse.duckdb")
    for model in MODELS:
        assert models[model], model
        assert next(iter(models[model][0])) == "account", f"{model}: account comes first"
        assert {row["account"] for row in models[model]} == set(ACCOUNTS), model
    assert columns_in_order(models, "segment_growth_daily") == ["account", *DAILY_COLUMNS]
    for account, server in window_standins.items():
        assert_models_match(models, server.account, WINDOW.end, account_name=account)

    # Incremental with accounts equals a full refresh too.
    project.run("invoke", "dbt-duckdb:run")
    incremental = read_models_duckdb(tmp_path / "warehouse.duckdb")
    project.run("invoke", "dbt-duckdb", "run", "--full-refresh")
    full = read_models_duckdb(tmp_path / "warehouse.duckdb")
    for model in MODELS:
        assert sorted(map(repr, incremental[model])) == sorted(map(repr, full[model])), model


# --- the page in a real browser --------------------------------------------------------------


def chromium() -> str:
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        pytest.fail(
            f"no chromium at {path}: `bash scripts/test.sh` installs Debian's chromium "
            "(or set CHROMIUM to a Chromium binary)",
            pytrace=False,
        )
    return path


_CHARTS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    id: gd.id,
    traces: gd.data.length,
    points: gd.data.reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
    lines: gd.querySelectorAll('.scatterlayer .trace path.js-line').length,
    bars: gd.querySelectorAll('.barlayer .point path').length,
}))
"""


def open_in_chromium(page: Path, screenshot: Path | None = None) -> dict[str, Any]:
    """Open the page from disk in Debian's chromium (through Playwright, no browser download):
    its console errors, the requests it tried, what each chart drew and the tables' row counts."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(page.as_uri(), wait_until="load")
            tab.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length")
            charts = tab.evaluate(_CHARTS)
            tables = tab.evaluate(
                "() => Object.fromEntries(Array.from(document.querySelectorAll('table'))"
                ".map(t => [t.id, t.querySelectorAll('tbody tr').length]))"
            )
            if screenshot is not None:
                tab.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"errors": errors, "requests": requests, "charts": charts, "tables": tables}


def assert_page_works(page: Path, segments: int, alerts: int) -> None:
    """Loads with no console error and no request but itself; every chart drawn with data."""
    seen = open_in_chromium(page)
    assert seen["errors"] == [], seen["errors"]
    assert seen["requests"] == [page.as_uri()], "the page fetches nothing (works offline)"
    charts = {chart["id"]: chart for chart in seen["charts"]}
    assert set(charts) == {"chart-members", "chart-added-removed", "chart-movers"}
    assert charts["chart-members"]["traces"] == segments
    assert charts["chart-members"]["lines"] == segments, "one line drawn per segment"
    assert charts["chart-added-removed"]["bars"] > 0
    assert charts["chart-movers"]["bars"] == segments
    for chart in charts.values():
        assert chart["points"] > 0, chart
    assert seen["tables"]["movers-7d"] == seen["tables"]["movers-30d"] == segments
    assert seen["tables"].get("alerts", 0) == min(alerts, 100)
