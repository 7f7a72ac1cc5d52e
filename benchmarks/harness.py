"""Shared pieces of the benchmarks: a stand-in process, and a tap subprocess measured with wait4.

Every tap runs as its own process with stdout to /dev/null; its CPU (user + sys) and peak RSS
come from ``os.wait4`` on that process alone, so neither the stand-in nor this harness counts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-klaviyo-segments")
API_KEY = "pk_standin_0123456789abcdef"
_RECORD_COUNT = re.compile(
    r'"metric":\s*"record_count",\s*"value":\s*(\d+),\s*"tags":\s*\{"stream":\s*"(\w+)"'
)


class Standin:
    """``benchmarks/standin_proc.py`` as a context manager: warmed before it listens."""

    def __init__(self, segments: int, now: str | None = None, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="bench-standin-"))
        self.ready = self.workdir / f"standin-{segments}.json"
        args = [sys.executable, str(ROOT / "benchmarks" / "standin_proc.py")]
        args += ["--segments", str(segments), "--ready-file", str(self.ready)]
        if now:
            args += ["--now", now]
        self.ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 600
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("stand-in did not start")
            time.sleep(0.1)
        info = json.loads(self.ready.read_text())
        self.url: str = info["url"]
        self.ids: list[str] = info["ids"]

    def counts(self) -> dict[str, int]:
        """Report calls per path since the last call (the stand-in's request log)."""
        counts_file = self.ready.with_name(self.ready.name + ".counts")
        counts_file.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not counts_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("stand-in did not report its counts")
            time.sleep(0.05)
        return json.loads(counts_file.read_text())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def __enter__(self) -> Standin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Run:
    """One measured tap process."""

    wall: float
    user: float
    sys: float
    max_rss_mb: float
    records: dict[str, int]
    returncode: int
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def total_records(self) -> int:
        return sum(self.records.values())


def measure(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` with stdout to /dev/null; wall time, CPU and peak RSS of that process."""
    with tempfile.TemporaryFile() as err, open(os.devnull, "wb") as devnull:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=devnull, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    records: dict[str, int] = {}
    for value, stream in _RECORD_COUNT.findall(stderr):
        records[stream] = records.get(stream, 0) + int(value)
    return Run(
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        records=records,
        returncode=proc.returncode,
        stderr=stderr,
    )


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def series_catalog(workdir: Path, config_path: Path) -> Path:
    """The tap's own catalog (``--discover``) with only segment_series selected."""
    out = subprocess.run(
        [TAP, "--config", str(config_path), "--discover"],
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout
    catalog = json.loads(out)
    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] == "segment_series"
    return write_json(workdir / "catalog.json", catalog)


def tap_config(url: str, **overrides: Any) -> dict[str, Any]:
    """A config for the stand-in with pacing out of the way (unless overridden)."""
    config: dict[str, Any] = {
        "api_key": API_KEY,
        "api_url": url,
        "report_calls_per_minute": 1_000_000,
        "report_calls_per_second": 1_000_000,
        "report_calls_per_day": 100_000,
        "request_timeout": 120,
    }
    config.update(overrides)
    return config


def run_tap(workdir: Path, config: dict[str, Any], catalog: Path, name: str = "tap") -> Run:
    config_path = write_json(workdir / f"{name}-config.json", config)
    return measure([TAP, "--config", str(config_path), "--catalog", str(catalog)])
