#!/usr/bin/env bash
# The test command: lint, format check and the whole pytest suite (unit + end-to-end).
#   bash scripts/test.sh [pytest args...]
# Creates/uses .venv (the package with its [test] extra) and, for the end-to-end tests,
# Meltano plus its plugins under the git-ignored .meltano/ (cached after the first run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

if [[ ! -x .venv/bin/python ]]; then
    py="$(find_python)"
    log "Creating .venv with $py"
    "$py" -m venv .venv
fi
log "pip install -e '.[test]' into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

ensure_meltano
export MELTANO_BIN="$MELTANO"

log "ruff check"
.venv/bin/ruff check .
log "ruff format --check"
.venv/bin/ruff format --check .

log "pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
    die "pytest collected no tests: the suite must run tests"
fi
exit $status
