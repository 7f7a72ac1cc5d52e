#!/usr/bin/env bash
# The main job, in one command on a fresh machine with Python 3.10+:
#   bash scripts/demo.sh
# 1. installs Meltano (own venv) and the plugins (the tap from -e ., target-duckdb) under .meltano/
# 2. without TAP_KLAVIYO_SEGMENTS_API_KEY: starts the local Klaviyo stand-in on a free port
#    (fast demo rate limits) and stops it on exit; with the key set: uses the real Klaviyo
# 3. meltano run tap-klaviyo-segments target-duckdb dbt-duckdb:build growth-report:duckdb
#    extracts (incremental: state in .meltano/meltano.db), loads, builds and tests the growth
#    models (transform/, docs/growth.md) and writes the growth report page
# 4. prints, per segment from the models, members now, change over 7 and 30 days and added
#    against removed, shrinking first, and the report page's path
#
# Environment knobs: DEMO_SEGMENTS (stand-in segment count, default 12), DEMO_SEED (default 7),
# DEMO_DAYS (days of history for the first stand-in run, default 90).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

ensure_meltano tap-klaviyo-segments target-duckdb dbt-duckdb growth-report
TAP_PY="$MELTANO_SYS_DIR_ROOT/extractors/tap-klaviyo-segments/venv/bin/python"
REPORT_PY="$MELTANO_SYS_DIR_ROOT/utilities/growth-report/venv/bin/python"
mkdir -p output

if [[ -n "${TAP_KLAVIYO_SEGMENTS_API_KEY:-}" ]]; then
    # A real account: environment `prod` points api_url at https://a.klaviyo.com and keeps its
    # own state and DuckDB file; Meltano reads the key from the environment variable.
    ENVIRONMENT=prod
    DB_FILE="$REPO_ROOT/output/klaviyo_prod.duckdb"
    REPORT_FILE="$REPO_ROOT/output/growth_report.html"
    log "TAP_KLAVIYO_SEGMENTS_API_KEY is set: extracting from the real Klaviyo (Klaviyo's rate limits apply)"
else
    ENVIRONMENT=dev
    DB_FILE="$REPO_ROOT/output/klaviyo_dev.duckdb"
    REPORT_FILE="$REPO_ROOT/output/growth_report_dev.html"
    work="$(mktemp -d "${TMPDIR:-/tmp}/klaviyo-standin.XXXXXX")"
    standin_pid=""
    cleanup() {
        if [[ -n "$standin_pid" ]] && kill -0 "$standin_pid" 2>/dev/null; then
            kill "$standin_pid" 2>/dev/null || true
            wait "$standin_pid" 2>/dev/null || true
        fi
        rm -rf "$work"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    log "Starting the Klaviyo stand-in on a free local port"
    # The stand-in is not part of the tap's wheel: it runs from this checkout.
    PYTHONPATH="$REPO_ROOT" "$TAP_PY" -m klaviyo_standin \
        --port 0 \
        --segments "${DEMO_SEGMENTS:-12}" \
        --seed "${DEMO_SEED:-7}" \
        --no-rate-limits \
        --verbose \
        --ready-file "$work/ready" >"$work/standin.log" 2>&1 &
    standin_pid=$!
    for _ in $(seq 1 300); do
        [[ -s "$work/ready" ]] && break
        if ! kill -0 "$standin_pid" 2>/dev/null; then
            cat "$work/standin.log" >&2
            die "the stand-in exited before it was ready"
        fi
        sleep 0.1
    done
    if [[ ! -s "$work/ready" ]]; then
        cat "$work/standin.log" >&2 # the log is deleted on exit: show it, not its path
        die "the stand-in was not ready after 30 s"
    fi
    standin_url="$(head -n 1 "$work/ready")"
    # meltano.yml's dev environment points api_url at http://127.0.0.1:${KLAVIYO_STANDIN_PORT}.
    export KLAVIYO_STANDIN_PORT="${standin_url##*:}"
    log "Stand-in ready at $standin_url"

    # Demo pacing: the stand-in runs without rate limits, so the tap need not wait either.
    export TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_MINUTE="${TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_MINUTE:-6000}"
    export TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_SECOND="${TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_SECOND:-100}"
    export TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_DAY="${TAP_KLAVIYO_SEGMENTS_REPORT_CALLS_PER_DAY:-100000}"
    # Klaviyo's own weekly and monthly series too (free here), for the weekly and monthly models.
    export TAP_KLAVIYO_SEGMENTS_SERIES_INTERVALS="${TAP_KLAVIYO_SEGMENTS_SERIES_INTERVALS:-[\"daily\", \"weekly\", \"monthly\"]}"
    if [[ -z "${TAP_KLAVIYO_SEGMENTS_START_DATE:-}" ]]; then
        TAP_KLAVIYO_SEGMENTS_START_DATE="$("$TAP_PY" -c "import datetime as d; print(d.date.today() - d.timedelta(days=${DEMO_DAYS:-90}))")"
        export TAP_KLAVIYO_SEGMENTS_START_DATE
    fi
fi

PIPELINE=(tap-klaviyo-segments target-duckdb dbt-duckdb:build growth-report:duckdb)
log "meltano --environment $ENVIRONMENT run ${PIPELINE[*]}"
started=$SECONDS
"$MELTANO" --environment "$ENVIRONMENT" --log-level=warning run "${PIPELINE[@]}"
log "Extract, load, models and report took $((SECONDS - started)) s; Meltano saved the state (see: $MELTANO --environment $ENVIRONMENT state list)"

if [[ "$ENVIRONMENT" == dev ]]; then
    # The stand-in's access log (--verbose) shows what this run cost in report calls.
    series_calls="$(grep -c 'POST /api/segment-series-reports' "$work/standin.log" || true)"
    values_calls="$(grep -c 'POST /api/segment-values-reports' "$work/standin.log" || true)"
    log "Report calls this run: $series_calls series, $values_calls values (a re-run reads only the lookback)"
fi

echo
"$REPORT_PY" "$REPO_ROOT/scripts/summary.py" "$DB_FILE"
echo
echo "Growth report: $REPORT_FILE  (open it in a browser; it works offline)"
echo "DuckDB file:   $DB_FILE"
echo "               schema klaviyo: the loaded tables; schema klaviyo_growth: the growth models (docs/growth.md)"
echo "Query it:      $REPORT_PY -c \"import duckdb; con = duckdb.connect('${DB_FILE#"$REPO_ROOT"/}', read_only=True); con.sql('select segment_name, as_of, total_members, change_7d, change_30d, trend from klaviyo_growth.segment_growth_latest order by pct_change_7d').show()\""
echo "Run again:     bash scripts/demo.sh   (incremental: fetches the days after the saved bookmarks, models only new and revised days)"
