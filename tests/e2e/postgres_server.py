"""A real PostgreSQL server for the end-to-end tests, started and stopped by the tests themselves.

It runs the distribution's server binaries (Debian's ``postgresql`` package, which ``.ci/run``
installs when they are missing) on a free port of 127.0.0.1 only, from a throw-away data
directory, with a random password for the ``postgres`` user (target-postgres insists on one) and
durability switched off (the data is deleted afterwards anyway).

PostgreSQL refuses to run as root; when the tests run as root (CI containers), the server runs
as the unprivileged ``nobody`` user instead, owning its data directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

_DUMP = """
import json, sys
import psycopg
port, database, schema, *tables = sys.argv[1:]
out = {"rows": {}, "types": {}, "keys": {}}
with psycopg.connect(host="127.0.0.1", port=int(port), user="postgres", dbname=database,
                     password=sys.stdin.read()) as conn:
    for table in tables:
        cur = conn.execute(f'select * from "{schema}"."{table}"')
        names = [column.name for column in cur.description]
        out["rows"][table] = [dict(zip(names, row)) for row in cur.fetchall()]
    for table, column, kind in conn.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = %s", (schema,)
    ):
        out["types"].setdefault(table, {})[column] = kind
    for table, column in conn.execute(
        "select tc.table_name, k.column_name from information_schema.table_constraints tc "
        "join information_schema.key_column_usage k on k.constraint_name = tc.constraint_name "
        "and k.constraint_schema = tc.constraint_schema and k.table_name = tc.table_name "
        "where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = %s "
        "order by tc.table_name, k.ordinal_position", (schema,)
    ):
        out["keys"].setdefault(table, []).append(column)
print(json.dumps(out, default=str))
"""


SERVER_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found: `bash scripts/test.sh` installs "
    "Debian's postgresql package; locally `apt-get install postgresql`, or set PG_BIN to the "
    "folder holding initdb"
)


class PostgresUnavailableError(RuntimeError):
    """No server binaries, or the server did not start (the message says why)."""


def find_bin_dir() -> Path:
    """PG_BIN, else the newest /usr/lib/postgresql/<major>/bin, else initdb on the PATH."""
    configured = os.environ.get("PG_BIN")
    candidates = [Path(configured)] if configured else []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        majors = [p for p in debian.iterdir() if re.fullmatch(r"\d+", p.name)]
        candidates += [p / "bin" for p in sorted(majors, key=lambda p: -int(p.name))]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise PostgresUnavailableError(SERVER_HINT)


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """``with PostgresServer() as pg:`` a server at ``pg.port``, stopped and deleted after."""

    user = "postgres"

    def __init__(self) -> None:
        self.bin = find_bin_dir()
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="klaviyo-e2e-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_hex(16)
        self._as: dict[str, int] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid}
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
        self._started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC", "PGPASSWORD": self.password},
            **self._as,  # type: ignore[arg-type]
        )
        if proc.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise PostgresUnavailableError(
                f"{args[0]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
                f"{proc.stderr[-2000:]}\n{log}"
            )
        return proc

    def start(self) -> PostgresServer:
        """initdb, then pg_ctl start on a free loopback port (waits until it accepts)."""
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if self._as:
            os.chown(password_file, self._as["user"], self._as["group"])
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            self.user,
            "--auth-host",
            "scram-sha-256",
            "--auth-local",
            "trust",
            "--pwfile",
            str(password_file),
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories='{self.root}'",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c TimeZone=UTC",
            ]
        )
        for _attempt in range(3):  # a port taken between free_port() and the bind: try another
            self.port = free_port()
            try:
                self._run(
                    "pg_ctl",
                    "--pgdata",
                    str(self.data),
                    "--log",
                    str(self.log),
                    "--wait",
                    "--timeout",
                    "60",
                    "-o",
                    f"-p {self.port} {options}",
                    "start",
                )
            except PostgresUnavailableError:
                if "could not bind" not in (self.log.read_text() if self.log.exists() else ""):
                    raise
                continue
            self._started = True
            return self
        raise PostgresUnavailableError(
            f"no free port for PostgreSQL:\n{self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its data directory.

        If pg_ctl cannot stop it, the postmaster named in postmaster.pid is killed: a test run
        must not leave a server behind.
        """
        pid_file = self.data / "postmaster.pid"
        try:
            if self._started or pid_file.exists():
                try:
                    self._run(
                        "pg_ctl", "--pgdata", str(self.data), "--mode", "fast", "--wait", "stop"
                    )
                except (PostgresUnavailableError, subprocess.TimeoutExpired):
                    if pid_file.exists():
                        with contextlib.suppress(ValueError, ProcessLookupError):
                            os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its name."""
        self._run(
            "createdb", "--host", "127.0.0.1", "--port", str(self.port), "-U", self.user, name
        )
        return name

    def target_env(self, database: str) -> dict[str, str]:
        """TARGET_POSTGRES_* variables pointing target-postgres at ``database`` here."""
        return {
            "TARGET_POSTGRES_HOST": "127.0.0.1",
            "TARGET_POSTGRES_PORT": str(self.port),
            "TARGET_POSTGRES_USER": self.user,
            "TARGET_POSTGRES_PASSWORD": self.password,
            "TARGET_POSTGRES_DATABASE": database,
        }

    def read(
        self, python: Path, database: str, schema: str, tables: Sequence[str]
    ) -> dict[str, Any]:
        """Rows, column types and primary keys of ``tables``, read with ``python``'s psycopg
        (target-postgres' venv has it; the tests' own venv need not)."""
        proc = subprocess.run(
            [str(python), "-c", _DUMP, str(self.port), database, schema, *tables],
            input=self.password,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, f"reading {database} failed:\n{proc.stderr[-4000:]}"
        return json.loads(proc.stdout)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
