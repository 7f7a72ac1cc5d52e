"""Pacing and budgeting of report calls, shared by both report streams.

Klaviyo allows each report endpoint 1 call a second, 2 a minute and 225 a day. A 429 costs a
wait and retries, so the tap spaces its calls evenly instead of provoking one, listens to the
``RateLimit-*`` headers Klaviyo sends on success, and counts the calls of a run against a
budget so that a spent budget stops the run cleanly instead of failing it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


class ReportBudgetSpent(Exception):  # noqa: N818 - a signal to stop, not an error
    """No more report calls may be made in this run; the sync stops cleanly with state saved."""


@dataclass
class ReportGate:
    """Decides when the next report call may go out, and whether it may go out at all.

    ``calls_per_minute`` and ``calls_per_second`` set an even spacing between calls (Klaviyo's
    steady and burst limits); ``calls_per_run`` is the day's budget for this run.
    """

    calls_per_minute: float
    calls_per_second: float
    calls_per_run: int
    #: The longest wait a ``RateLimit-Reset`` may impose (``max_retry_wait_seconds``).
    max_wait: float = 300.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = lambda seconds: time.sleep(seconds)  # looked up per call
    calls_made: int = 0
    stop_reason: str | None = None
    #: Report calls the streams stopped on this run still need (summed over the streams).
    calls_still_needed: int = 0
    _next_allowed: float = 0.0
    _first_call_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spacing(self) -> float:
        """Seconds between two calls at the configured pace."""
        return max(60.0 / self.calls_per_minute, 1.0 / self.calls_per_second)

    @property
    def seconds_per_call(self) -> float:
        """Seconds per call so far, never below the configured spacing.

        Waits for ``RateLimit-Reset`` and retries are included: it is the pace of this run.
        """
        if self._first_call_at is None or self.calls_made < 2:
            return self.spacing
        observed = (self.clock() - self._first_call_at) / (self.calls_made - 1)
        return max(self.spacing, observed)

    @property
    def calls_left(self) -> int:
        """Calls this run may still make."""
        return 0 if self.stop_reason else max(self.calls_per_run - self.calls_made, 0)

    def before_call(self) -> None:
        """Wait until a call is allowed and count it; raise when the budget is spent."""
        with self._lock:
            if self.calls_left <= 0:
                self.stop_reason = self.stop_reason or (
                    f"the run's budget of {self.calls_per_run} report calls "
                    "(report_calls_per_day) is spent"
                )
                raise ReportBudgetSpent(self.stop_reason)
            wait = self._next_allowed - self.clock()
            if wait > 0:
                self.sleep(wait)
            self.calls_made += 1
            now = self.clock()
            if self._first_call_at is None:
                self._first_call_at = now
            self._next_allowed = now + self.spacing

    def after_response(self, status: int, headers: Mapping[str, str]) -> None:
        """Hold the next call until Klaviyo's window resets if it says none are left.

        A 429 is handled by the retry (which waits ``Retry-After``); here we only read the
        successful responses' ``RateLimit-Remaining`` and ``RateLimit-Reset``. The reset is
        rounded to its last digit (whole seconds at Klaviyo), possibly down, so the wait adds
        one unit of that digit: arriving a fraction early would earn the 429 we wait to avoid.
        """
        if status >= 400:
            return
        remaining = _number(headers.get("RateLimit-Remaining"))
        raw_reset = headers.get("RateLimit-Reset")
        reset = _number(raw_reset)
        if remaining is not None and remaining <= 0 and reset is not None:
            # Klaviyo's reset covers the steady (per-minute) window; a huge value is not a wait
            # we trust, so it is capped like a Retry-After would be.
            wait = min(max(reset, 0.0) + _resolution(raw_reset), self.max_wait)
            with self._lock:
                self._next_allowed = max(self._next_allowed, self.clock() + wait)

    def stop(self, reason: str) -> None:
        """Refuse every further call in this run (Klaviyo said the day's quota is spent)."""
        with self._lock:
            self.stop_reason = reason


def _resolution(value: str | None) -> float:
    """One unit of the last digit of a number as written: 1 for "40", 0.001 for "0.150"."""
    _, dot, decimals = (value or "").strip().partition(".")
    return 10.0 ** -len(decimals) if dot and decimals.isdigit() else 1.0


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
