"""Run the tap in-process and collect the Singer messages it writes."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tap_klaviyo_segments.tap import TapKlaviyoSegments

API_KEY = "pk_standin_0123456789abcdef"


@dataclass
class SyncResult:
    """What one run wrote: records per stream, every STATE, and the log text."""

    messages: list[dict[str, Any]]
    logs: str
    stdout: str
    tap: TapKlaviyoSegments
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: What ended a run made with ``allow_error=True`` (None when it ended well).
    error: BaseException | None = None

    def __post_init__(self) -> None:
        for message in self.messages:
            if message["type"] == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return copy.deepcopy(self.states[-1]) if self.states else {}


def base_config(url: str, **overrides: Any) -> dict[str, Any]:
    """A config for a local stand-in, paced fast enough for tests."""
    config: dict[str, Any] = {
        "api_key": API_KEY,
        "api_url": url,
        "report_calls_per_minute": 60_000,
        "report_calls_per_second": 1_000,
        "retry_initial_wait_seconds": 0.01,
        "request_timeout": 5,
    }
    config.update(overrides)
    return config


@contextlib.contextmanager
def _captured_logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def run_tap(
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    now: datetime | None = None,
    select: tuple[str, ...] | None = None,
    allow_error: bool = False,
) -> SyncResult:
    """Sync all (or the selected) streams; ``now`` freezes the tap's clock.

    With ``allow_error`` a failing run returns what it wrote, with the exception in ``error``.
    """
    stdout = io.StringIO()
    error: BaseException | None = None
    with _captured_logs() as logs, contextlib.redirect_stdout(stdout):
        tap = TapKlaviyoSegments(config=config, state=copy.deepcopy(state) if state else None)
        if now is not None:
            frozen = now.astimezone(timezone.utc)
            tap.now_utc = lambda: frozen  # type: ignore[method-assign]
        if select is not None:
            for name, stream in tap.streams.items():
                stream.selected = name in select
        try:
            tap.sync_all()
        except Exception as exc:
            if not allow_error:
                raise
            error = exc
    text = stdout.getvalue()
    messages = [json.loads(line) for line in text.splitlines() if line.strip()]
    return SyncResult(messages=messages, logs=logs.getvalue(), stdout=text, tap=tap, error=error)
