#!/usr/bin/env bash
# The test command: lint, format check, type check and the whole pytest suite (unit + end-to-end).
#   bash scripts/test.sh [--matrix] [pytest args...]
# Creates/uses .venv (the package with its [test] extra, singer-sdk $SDK_PINNED) and, for the
# end-to-end tests, Meltano plus its plugins under the git-ignored .meltano/ (cached after the
# first run; dbt and the growth report's tools are Meltano utilities there too), PostgreSQL's
# server binaries for the PostgreSQL tests and Chromium for the growth report's browser test
# (Debian's postgresql and chromium packages, installed with apt-get when missing).
#
# With --matrix, or when CI=true, the unit tests (everything but tests/e2e) also run on the
# oldest and newest supported Pythons with singer-sdk $SDK_PINNED, and on the newest singer-sdk
# 0.55 (pre-)release with the Python in between, each in its own venv under .venvs/, two at a
# time. With the main run on the machine's Python (3.11 on CI), every supported Python runs the
# unit tests once.
# Every step runs even when an earlier one failed; the exit code is non-zero if any failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
cd "$REPO_ROOT"

SDK_PINNED="0.54.9"
# A specifier naming a pre-release lets pip pick pre-releases of singer-sdk (only).
SDK_NEXT="singer-sdk[msgspec]>=0.55.0a0,<0.56"  # the same extra as pyproject.toml, or pip keeps 0.54.9
# The matrix legs, of the supported 3.10 to 3.13 (pyproject.toml's classifiers): the edge
# Pythons on the pinned singer-sdk, and the next singer-sdk on 3.12.
MATRIX_PYTHONS=(3.10 3.13)
SDK_NEXT_PYTHON=3.12
UNIT_TESTS=(tests --ignore=tests/e2e)

matrix=false
if [[ "${1:-}" == "--matrix" ]]; then
    matrix=true
    shift
fi
[[ "${CI:-}" == "true" ]] && matrix=true

failed=()
# step NAME COMMAND...: run it, remember a failure (pytest's 5, no tests collected, is one).
step() {
    local name="$1" status=0
    shift
    log "$name"
    "$@" || status=$?
    if [[ $status -eq 5 ]]; then
        printf 'error: %s collected no tests: the suite must run tests\n' "$name" >&2
    fi
    [[ $status -eq 0 ]] || failed+=("$name (exit $status)")
}

# venv_with DIR PYTHON SDK_SPEC [EXTRAS]: DIR has the package with [EXTRAS] (default test) and
# singer-sdk from SDK_SPEC.
venv_with() {
    local dir="$1" py="$2" sdk="$3" extras="${4:-test}"
    if [[ ! -x "$dir/bin/python" ]]; then
        "$py" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extras]" "$sdk"
}

if [[ ! -x .venv/bin/python ]]; then
    py="$(find_python)"
    log "Creating .venv with $py"
    "$py" -m venv .venv
fi
log "pip install -e '.[test,e2e]' singer-sdk==$SDK_PINNED into .venv"
venv_with .venv .venv/bin/python "singer-sdk==$SDK_PINNED" test,e2e

ensure_meltano
export MELTANO_BIN="$MELTANO"
ensure_postgres
ensure_chromium

step "ruff check" .venv/bin/ruff check .
step "ruff format --check" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy
step "pytest ($(.venv/bin/python -c 'import platform; print(platform.python_version())'), singer-sdk $SDK_PINNED)" \
    .venv/bin/python -m pytest "$@"

if $matrix; then
    main_py="$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    legs=()
    for version in "${MATRIX_PYTHONS[@]}"; do
        [[ "$version" == "$main_py" ]] && continue
        legs+=("$version|singer-sdk==$SDK_PINNED|py$version-sdk$SDK_PINNED")
    done
    legs+=("$SDK_NEXT_PYTHON|$SDK_NEXT|py$SDK_NEXT_PYTHON-sdk0.55")
    mkdir -p .venvs
    # unit_leg VERSION SDK_SPEC NAME: venv, install, unit tests; output in .venvs/NAME.log and
    # the exit code in .venvs/NAME.rc.
    unit_leg() {
        local version="$1" sdk="$2" name="$3" py status=0
        {
            if py="$(python_for "$version")"; then
                venv_with ".venvs/$name" "$py" "$sdk" &&
                    ".venvs/$name/bin/python" -c 'import sys; from importlib.metadata import version; print("Python", sys.version.split()[0], "singer-sdk", version("singer-sdk"))' &&
                    ".venvs/$name/bin/python" -m pytest -q -p no:cacheprovider "${UNIT_TESTS[@]}" ||
                    status=$?
            else
                echo "no Python $version found (the tap supports it: CI must test it)"
                status=1
            fi
        } >".venvs/$name.log" 2>&1
        echo "$status" >".venvs/$name.rc"
    }
    log "unit tests on ${#legs[@]} more Python / singer-sdk combinations, two at a time (logs in .venvs/)"
    names=()
    for leg in "${legs[@]}"; do
        IFS='|' read -r version sdk name <<<"$leg"
        while (($(jobs -rp | wc -l) >= 2)); do
            wait -n || true
        done
        rm -f ".venvs/$name.rc"
        unit_leg "$version" "$sdk" "$name" &
        names+=("$name")
    done
    wait
    for name in "${names[@]}"; do
        status="$(cat ".venvs/$name.rc" 2>/dev/null || echo 1)"
        summary="$(grep -E '^Python |^[0-9]+ (passed|failed)|[0-9]+ passed' ".venvs/$name.log" | tail -n 2 | tr '\n' ' ' || true)"
        if [[ "$status" == 0 ]]; then
            log "unit tests $name: ok  $summary"
        else
            tail -n 40 ".venvs/$name.log" >&2
            [[ "$status" == 5 ]] && echo "error: unit tests $name collected no tests" >&2
            failed+=("unit tests $name (exit $status, see .venvs/$name.log)")
        fi
    done
fi

if ((${#failed[@]})); then
    printf 'error: failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
log "all steps passed"
