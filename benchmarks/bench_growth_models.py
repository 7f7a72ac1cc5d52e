"""The growth models' build time: a full build, then a daily incremental build.

    .meltano/utilities/dbt-duckdb/venv/bin/python benchmarks/bench_growth_models.py \
        --segments 250 --days 1096 --rounds 3

Runs with the dbt-duckdb utility's Python (dbt-core, dbt-duckdb and the loader's duckdb). The
data is generated directly in a DuckDB file, in target-duckdb's layout (bucket_date as text,
statistics as HUGEINT), not extracted through the tap: the tap's own speed is measured in the
other benchmarks, and 274,000 buckets through the stand-in would take minutes that measure the
tap, not dbt. Rows are stored by day by default, as a project's daily runs append them
(``--order segment``: as one backfill of the whole history loads them). Each round:

1. full: ``dbt build --full-refresh`` over ``--days`` days of daily buckets per segment;
2. daily: one new day is appended for every segment and the day before is revised (as the
   tap's lookback re-reads it), then ``dbt build`` (incremental) runs, as a daily pipeline does.

Wall time is the dbt command's (start-up and parsing included: ``--partial-parse`` is on, as in a
project that ran before); "models" and "tests" are the sums of dbt's own execution times from
run_results.json. Medians over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_DAY = date(2023, 12, 1)

SCHEMA_SQL = """
create schema if not exists klaviyo;
create or replace table klaviyo.segments (
    id varchar primary key, name varchar, created timestamp, updated timestamp,
    is_active boolean, is_processing boolean, is_starred boolean);
create or replace table klaviyo.segment_series (
    segment_id varchar not null, "interval" varchar not null, date_time timestamp not null,
    bucket_date varchar, total_members hugeint, members_added hugeint,
    members_removed hugeint, net_members_changed hugeint, is_complete boolean,
    primary key (segment_id, "interval", date_time));
"""

# Per segment and day: random additions and removals (seeded), the total a running sum from a
# base size, so total(d) - total(d-1) = net(d) as in Klaviyo's numbers.
SERIES_SQL = """
insert into klaviyo.segment_series
with days as (
    select s.seg, d.i
    from range({segments}) as s(seg), range({days}) as d(i)
),
changes as (
    select seg, i,
        cast(floor(random() * (20 + seg % 50)) as bigint) as added,
        cast(floor(random() * (15 + seg % 40)) as bigint) as removed
    from days
)
select
    'seg' || lpad(cast(seg as varchar), 5, '0') as segment_id,
    'daily' as "interval",
    cast(date '{first}' + cast(i as integer) as timestamp) as date_time,
    cast(date '{first}' + cast(i as integer) as varchar) as bucket_date,
    1000 + seg * 37 + sum(added - removed) over (partition by seg order by i) as total_members,
    added, removed, added - removed,
    true as is_complete
from changes
order by {order}
"""


ORDERS = {"day": "i, seg", "segment": "seg, i"}


def generate(database: Path, segments: int, days: int, order: str = "day") -> None:
    con = duckdb.connect(str(database))
    con.execute("select setseed(0.42)")
    con.execute(SCHEMA_SQL)
    con.execute(
        "insert into klaviyo.segments select 'seg' || lpad(cast(i as varchar), 5, '0'), "
        "'Segment ' || i, timestamp '2023-01-01', timestamp '2023-01-01', true, false, false "
        f"from range({segments}) as t(i)"
    )
    con.execute(
        SERIES_SQL.format(
            segments=segments, days=days, first=FIRST_DAY.isoformat(), order=ORDERS[order]
        )
    )
    con.close()


def add_day(database: Path, day: date) -> None:
    """The next day for every segment, and the day before revised (one more member added)."""
    con = duckdb.connect(str(database))
    before = (day - timedelta(days=1)).isoformat()
    con.execute(
        "update klaviyo.segment_series set members_added = members_added + 1, "
        "net_members_changed = net_members_changed + 1, total_members = total_members + 1 "
        "where bucket_date = ?",
        [before],
    )
    con.execute(
        "insert into klaviyo.segment_series select segment_id, 'daily', "
        "date_time + interval 1 day, cast(cast(bucket_date as date) + 1 as varchar), "
        "total_members + 5, 10, 5, 5, true from klaviyo.segment_series where bucket_date = ?",
        [before],
    )
    con.close()


def dbt(args: list[str], env: dict[str, str], target: Path) -> dict[str, float]:
    dbt_bin = Path(sys.executable).parent / "dbt"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(dbt_bin), *args], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"dbt {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    if args[0] == "parse":
        return {"wall": wall, "models": 0.0, "tests": 0.0}
    results = json.loads((target / "run_results.json").read_text())["results"]
    models = sum(r["execution_time"] for r in results if r["unique_id"].startswith("model."))
    tests = sum(r["execution_time"] for r in results if r["unique_id"].startswith("test."))
    per_model = {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in results
        if r["unique_id"].startswith("model.")
    }
    return {"wall": wall, "models": models, "tests": tests, **per_model}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=250)
    parser.add_argument("--days", type=int, default=1096, help="days of history (3 years)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--order",
        choices=sorted(ORDERS),
        default="day",
        help="row order in the table: day (as daily runs append them; default) or segment "
        "(as one backfill of the whole history loads them)",
    )
    parser.add_argument("--json", type=Path, help="write the samples here")
    args = parser.parse_args()

    samples: dict[str, list[dict[str, float]]] = {"full": [], "daily": []}
    with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
        work = Path(tmp)
        database = work / "bench.duckdb"
        target = work / "target"
        env = {
            **os.environ,
            "DBT_PROJECT_DIR": str(REPO_ROOT / "transform"),
            "DBT_PROFILES_DIR": str(REPO_ROOT / "transform" / "profiles"),
            "DBT_TARGET": "duckdb",
            "DBT_DUCKDB_PATH": str(database),
            "DBT_TARGET_PATH": str(target),
            "DBT_LOG_PATH": str(work / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        started = time.perf_counter()
        generate(database, args.segments, args.days, args.order)
        with duckdb.connect(str(database), read_only=True) as con:
            rows = con.sql("select count(*) from klaviyo.segment_series").fetchone()
        took = time.perf_counter() - started
        print(
            f"generated {rows[0] if rows else 0:,} daily buckets "
            f"({args.segments} segments x {args.days} days, by {args.order}) in {took:.1f} s"
        )
        dbt(["parse"], env, target)  # the project was parsed before, as in a running pipeline
        day = FIRST_DAY + timedelta(days=args.days)
        for round_ in range(args.rounds):
            full = dbt(["build", "--full-refresh"], env, target)
            add_day(database, day)
            day += timedelta(days=1)
            daily = dbt(["build"], env, target)
            samples["full"].append(full)
            samples["daily"].append(daily)
            print(
                f"round {round_ + 1}: full {full['wall']:.1f} s "
                f"(models {full['models']:.2f} s, tests {full['tests']:.2f} s); "
                f"daily {daily['wall']:.1f} s "
                f"(models {daily['models']:.2f} s, tests {daily['tests']:.2f} s)"
            )
    print()
    print(f"{'build':<8} {'wall s':>8} {'models s':>9} {'tests s':>8}   (medians of {args.rounds})")
    medians = {
        kind: {key: statistics.median(s[key] for s in runs) for key in ("wall", "models", "tests")}
        for kind, runs in samples.items()
    }
    for kind, median in medians.items():
        print(f"{kind:<8} {median['wall']:>8.2f} {median['models']:>9.2f} {median['tests']:>8.2f}")
    print()
    model_names = [key for key in samples["full"][0] if key not in ("wall", "models", "tests")]
    print(f"{'model (median s)':<28} {'full':>6} {'daily':>6}")
    for name in model_names:
        full_s = statistics.median(s[name] for s in samples["full"])
        daily_s = statistics.median(s[name] for s in samples["daily"])
        print(f"{name:<28} {full_s:>6.2f} {daily_s:>6.2f}")
    ratio = medians["daily"]["models"] / medians["full"]["models"]
    print(f"daily / full, model time: {ratio:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
