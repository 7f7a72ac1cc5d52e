# Shared helpers for scripts/demo.sh and scripts/test.sh (sourced, not run).
# Everything is installed inside the repository's git-ignored .meltano/ folder:
#   .meltano/meltano-venv/   Meltano itself (its own venv: its pins may clash with singer-sdk)
#   .meltano/extractors/..., .meltano/loaders/...   plugin venvs made by `meltano install`
#   .meltano/.uv-cache/      uv's download cache (Meltano 4 installs plugins with uv)
#   .meltano/meltano.db      Meltano's system database (state / bookmarks of `meltano run`)

MELTANO_VERSION="4.4.1"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MELTANO_PROJECT_ROOT="$REPO_ROOT"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
export MELTANO_SYS_DIR_ROOT="${MELTANO_SYS_DIR_ROOT:-$REPO_ROOT/.meltano}"
export UV_CACHE_DIR="${UV_CACHE_DIR:-$MELTANO_SYS_DIR_ROOT/.uv-cache}"
MELTANO_VENV="$MELTANO_SYS_DIR_ROOT/meltano-venv"
MELTANO="$MELTANO_VENV/bin/meltano"

log() { printf '\033[1m==> [%ss] %s\033[0m\n' "$SECONDS" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# find_python: print a Python >= 3.10 interpreter ($PYTHON wins if set).
find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3.10 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    die "need Python 3.10 or newer (set PYTHON=/path/to/python3.x)"
}

# python_for X.Y: print an interpreter of Python X.Y: pythonX.Y on the PATH if it runs (a pyenv
# shim of a version not selected does not), else pyenv's own copy of X.Y, else none (status 1).
python_for() {
    local want="$1" candidate
    for candidate in "python$want" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/"python$want"; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# ensure_meltano [PLUGIN...]: Meltano $MELTANO_VERSION in its own venv, then `meltano install`
# of the named plugins (default: every plugin of meltano.yml: the tap from `-e .`,
# target-jsonl, target-duckdb, target-postgres, and the utilities dbt-duckdb, dbt-postgres and
# growth-report of the growth models). Re-running takes seconds.
ensure_meltano() {
    local py
    if [[ ! -x "$MELTANO" ]] || [[ "$("$MELTANO" --version 2>/dev/null)" != *"$MELTANO_VERSION"* ]]; then
        py="$(find_python)"
        log "Installing meltano==$MELTANO_VERSION into ${MELTANO_VENV#"$REPO_ROOT"/}"
        rm -rf "$MELTANO_VENV"
        mkdir -p "$MELTANO_SYS_DIR_ROOT"
        "$py" -m venv "$MELTANO_VENV"
        "$MELTANO_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            "meltano==$MELTANO_VERSION"
    fi
    log "meltano install ${*:-(every plugin of meltano.yml)}"
    (cd "$REPO_ROOT" && "$MELTANO" --log-level=warning install "$@")
}

# has_postgres: PostgreSQL's server binaries are there (PG_BIN, Debian's layout, or the PATH),
# the way tests/e2e/postgres_server.py looks for them.
has_postgres() {
    [[ -n "${PG_BIN:-}" && -x "$PG_BIN/initdb" ]] && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
    command -v initdb >/dev/null 2>&1
}

# ensure_postgres: install Debian's postgresql package (the server binaries the end-to-end tests
# start on a free loopback port) when they are missing and apt-get can run (as root or with sudo).
ensure_postgres() {
    has_postgres && return 0
    local sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "the PostgreSQL tests need PostgreSQL's server: install Debian's postgresql package (or set PG_BIN to the folder holding initdb)"
        sudo="sudo"
    fi
    command -v apt-get >/dev/null 2>&1 || die "the PostgreSQL tests need PostgreSQL's server (initdb, pg_ctl): install it, or set PG_BIN to the folder holding initdb"
    log "Installing PostgreSQL (Debian's postgresql package) for the end-to-end tests"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    has_postgres || die "PostgreSQL's initdb is still missing after installing postgresql"
}

# apt_install PACKAGE...: Debian packages with apt-get (as root, or with sudo); dies with WHY
# ($APT_WHY) when apt-get cannot run.
apt_install() {
    local sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "$APT_WHY: install Debian's $*"
        sudo="sudo"
    fi
    command -v apt-get >/dev/null 2>&1 || die "$APT_WHY: install $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_chromium: Debian's chromium for the growth report's browser test
# (tests/e2e/test_growth_models.py drives it through Playwright; no browser download).
ensure_chromium() {
    [[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] && return 0
    log "Installing Chromium (Debian's chromium package) for the growth report's browser test"
    APT_WHY="the growth report's browser test needs Chromium (or set CHROMIUM to its binary)" \
        apt_install chromium
    [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium is still missing after installing chromium"
}
